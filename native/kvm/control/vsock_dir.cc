#include "control/vsock_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "error.h"
#include "fd.h"

namespace vmm::control {

namespace {
// An ACL giving the owner and `uid` `perm`, the owning group and others what `mode` gives them.
std::vector<uint8_t> Acl(uint32_t uid, uint16_t perm, mode_t mode) {
  constexpr uint32_t kNoId = static_cast<uint32_t>(ACL_UNDEFINED_ID);
  const posix_acl_xattr_entry entries[] = {
      {ACL_USER_OBJ, 07, kNoId},
      {ACL_USER, perm, uid},
      {ACL_GROUP_OBJ, static_cast<uint16_t>((mode >> 3) & 07), kNoId},
      {ACL_MASK, 07, kNoId},
      {ACL_OTHER, static_cast<uint16_t>(mode & 07), kNoId},
  };
  const posix_acl_xattr_header header{POSIX_ACL_XATTR_VERSION};
  std::vector<uint8_t> bytes(sizeof header + sizeof entries);
  std::memcpy(bytes.data(), &header, sizeof header);
  std::memcpy(bytes.data() + sizeof header, entries, sizeof entries);
  return bytes;
}

void SetAcl(int fd, const char* name, const std::vector<uint8_t>& acl, const std::string& what) {
  CheckSys(fsetxattr(fd, name, acl.data(), acl.size(), 0), "fsetxattr", what + " (ACLs let the VMM's uid in)");
}
}  // namespace

void GrantVsockDirectory(int dir_fd, uint32_t uid) {
  Fd dir(CheckSys(openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), "openat", "the vsock directory"));
  struct stat st;
  CheckSys(fstat(dir.get(), &st), "fstat", "the vsock directory");
  SetAcl(dir.get(), "system.posix_acl_access", Acl(uid, 07, st.st_mode), "the vsock directory");
  // Sockets the host listens on already (it listens before it boots the VM).
  Fd listing(CheckSys(openat(dir.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), "openat", "the vsock directory"));
  DIR* d = fdopendir(listing.Release());
  if (!d) throw SysError("fdopendir", errno, "the vsock directory");
  while (dirent* e = readdir(d)) {
    if (e->d_type != DT_SOCK) continue;
    Fd sock(openat(dir.get(), e->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!sock.valid() || fstat(sock.get(), &st) < 0 || !S_ISSOCK(st.st_mode)) continue;
    // fsetxattr refuses O_PATH descriptors; the magic link reaches the socket inode itself.
    const std::string path = "/proc/self/fd/" + std::to_string(sock.get());
    const std::vector<uint8_t> acl = Acl(uid, 06, st.st_mode);
    if (setxattr(path.c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0) < 0) {
      const int err = errno;
      closedir(d);
      throw SysError("setxattr", err, std::string("the vsock socket ") + e->d_name);
    }
  }
  closedir(d);
}

}  // namespace vmm::control
