// The vsock directory is the one piece of the host a jailed VMM sees: it binds its socket there
// and connects to the host's `<socket>_<port>` listeners. A VMM started by root runs as a uid of
// its own, so that uid is let in by POSIX ACLs, on the directory and on the sockets already in
// it; nobody else gains anything. (A default ACL cannot do it for sockets made later: bind()
// applies the umask, which masks the ACL's write bit. Their maker must open them, chmod 0666:
// the private directory still keeps everyone else out.)
#pragma once

#include <cstdint>

namespace vmm::control {

// Throws SysError (a filesystem without ACLs: EOPNOTSUPP, named in the message).
void GrantVsockDirectory(int dir_fd, uint32_t uid);

}  // namespace vmm::control
