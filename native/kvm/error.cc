#include "error.h"

#include <cstdio>
#include <cstring>

namespace vmm {

namespace {
std::string Describe(const std::string& call, int err, const std::string& context) {
  std::string text = call + " failed: " + ErrnoName(err) + " (" + std::strerror(err) + ")";
  if (!context.empty()) text += ": " + context;
  return text;
}
}  // namespace

SysError::SysError(std::string call, int err, const std::string& context)
    : VmmError(Describe(call, err, context)), call_(std::move(call)), err_(err) {}

const char* ErrnoName(int err) {
  switch (err) {
#define NAME(e) \
  case e:       \
    return #e;
    NAME(EPERM) NAME(ENOENT) NAME(ESRCH) NAME(EINTR) NAME(EIO) NAME(ENXIO) NAME(E2BIG)
    NAME(EBADF) NAME(EAGAIN) NAME(ENOMEM) NAME(EACCES) NAME(EFAULT) NAME(EBUSY) NAME(EEXIST)
    NAME(ENODEV) NAME(ENOTDIR) NAME(EISDIR) NAME(EINVAL) NAME(ENFILE) NAME(EMFILE)
    NAME(ENOTTY) NAME(EFBIG) NAME(ENOSPC) NAME(ERANGE) NAME(ENOSYS) NAME(EOPNOTSUPP)
#undef NAME
    default: {
      static thread_local char buf[16];
      std::snprintf(buf, sizeof buf, "E%d", err);
      return buf;
    }
  }
}

}  // namespace vmm
