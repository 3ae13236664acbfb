// Errors of the VMM. A failed system call carries its name and errno so that the JS side can say
// exactly which ioctl failed and why; a bad request (wrong input) carries just a message.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>

namespace vmm {

class VmmError : public std::runtime_error {
 public:
  explicit VmmError(const std::string& message) : std::runtime_error(message) {}
};

// /dev/kvm is missing, inaccessible or cannot run standard guests; the message says how to fix it.
class KvmUnavailable : public VmmError {
 public:
  using VmmError::VmmError;
};

// A system call or ioctl that failed: `call` is its name ("KVM_CREATE_VM"), `err` its errno.
class SysError : public VmmError {
 public:
  SysError(std::string call, int err, const std::string& context = "");
  // One described already (by a VMM process, over its control channel): `what` is the message.
  enum Described { kDescribed };
  SysError(std::string call, int err, const std::string& what, Described)
      : VmmError(what), call_(std::move(call)), err_(err) {}
  const std::string& call() const { return call_; }
  int err() const { return err_; }

 private:
  std::string call_;
  int err_;
};

// Throws SysError(call, errno) when `result` is negative; returns `result` otherwise.
inline long CheckSys(long result, const char* call, const std::string& context = "") {
  if (result < 0) throw SysError(call, errno, context);
  return result;
}

// The symbolic name of an errno value ("EINVAL"), or "E<number>" for one we do not know.
const char* ErrnoName(int err);

}  // namespace vmm
