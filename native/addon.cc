// The Node face of the VMM: a thin N-API layer over vmm::control::VmmProcess, which runs each VM
// in a jailed process of its own (native/vmm/). Everything here converts between JS values and
// the VMM's types; no guest memory and no vCPU is ever in this process.
#include <napi.h>

#include <time.h>

#include <memory>

#include "control/vmm_process.h"
#include "error.h"
#include "kvm.h"

namespace {

// vmm::MachineExit::Kind, by number.
const char* ExitKindName(uint32_t kind) {
  static const char* const names[] = {"reset", "stopped", "triple-fault", "error", "snapshotted"};
  return kind < 5 ? names[kind] : "error";
}

// Runs `body`, turning VMM exceptions into JS errors: a SysError keeps its call and errno.
template <typename F>
auto Guard(Napi::Env env, F body) -> decltype(body()) {
  try {
    return body();
  } catch (const vmm::SysError& e) {
    Napi::Error error = Napi::Error::New(env, e.what());
    error.Set("code", Napi::String::New(env, vmm::ErrnoName(e.err())));
    error.Set("syscall", Napi::String::New(env, e.call()));
    error.Set("errno", Napi::Number::New(env, e.err()));
    throw error;
  } catch (const vmm::KvmUnavailable& e) {
    Napi::Error error = Napi::Error::New(env, e.what());
    error.Set("code", Napi::String::New(env, "ERR_KVM_UNAVAILABLE"));
    throw error;
  } catch (const vmm::VmmError& e) {
    Napi::Error error = Napi::Error::New(env, e.what());
    error.Set("code", Napi::String::New(env, "ERR_VMM"));
    throw error;
  }
}

std::string StringField(const Napi::Object& o, const char* key, bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && !required) return "";
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

uint64_t IntField(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d >= 18446744073709551616.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::RangeError::New(o.Env(), std::string(key) + " must be a non-negative integer");
  }
  return static_cast<uint64_t>(d);
}

class NativeMachine : public Napi::ObjectWrap<NativeMachine> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeMachine",
                       {InstanceMethod<&NativeMachine::Start>("start"),
                        InstanceMethod<&NativeMachine::Stop>("stop"),
                        InstanceMethod<&NativeMachine::Destroy>("destroy"),
                        InstanceMethod<&NativeMachine::TakeConsole>("takeConsole"),
                        InstanceMethod<&NativeMachine::Memory>("memory"),
                        InstanceMethod<&NativeMachine::Process>("process"),
                        InstanceMethod<&NativeMachine::BootTimer>("bootTimer")});
  }

  // new NativeMachine({ vmm, kernel, initrd?, cmdline, memoryMiB, vcpus,
  //                     drives?: [{ parts: [{ path, offset }], readOnly }], vsock?: { cid, path },
  //                     net?: { socket, mac }, filesystems?: [{ socket, tag }],
  //                     snapshot?: { mode: 'take' | 'restore', state, memory, fingerprint } },
  //                   onExit({kind, detail}))
  explicit NativeMachine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeMachine>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "NativeMachine(config, onExit) expects an object and a function");
    }
    Napi::Object o = info[0].As<Napi::Object>();
    vmm::control::LaunchConfig config;
    config.vmm_path = StringField(o, "vmm", true);
    config.kernel = StringField(o, "kernel", true);
    config.initrd = StringField(o, "initrd", false);
    config.cmdline = StringField(o, "cmdline", true);
    config.memory_mib = IntField(o, "memoryMiB");
    config.vcpus = static_cast<uint32_t>(IntField(o, "vcpus"));
    if (o.Has("drives")) {
      if (!o.Get("drives").IsArray()) throw Napi::TypeError::New(env, "drives must be an array");
      Napi::Array drives = o.Get("drives").As<Napi::Array>();
      for (uint32_t i = 0; i < drives.Length(); ++i) {
        if (!drives.Get(i).IsObject()) throw Napi::TypeError::New(env, "each drive must be an object");
        Napi::Object d = drives.Get(i).As<Napi::Object>();
        if (!d.Get("parts").IsArray()) throw Napi::TypeError::New(env, "each drive needs an array of parts");
        Napi::Array parts = d.Get("parts").As<Napi::Array>();
        vmm::control::Config::Drive drive{{}, d.Get("readOnly").ToBoolean().Value()};
        for (uint32_t j = 0; j < parts.Length(); ++j) {
          if (!parts.Get(j).IsObject()) throw Napi::TypeError::New(env, "each drive part must be an object");
          Napi::Object part = parts.Get(j).As<Napi::Object>();
          drive.parts.push_back({StringField(part, "path", true), IntField(part, "offset")});
        }
        config.drives.push_back(std::move(drive));
      }
    }
    if (o.Has("net") && !o.Get("net").IsUndefined()) {
      if (!o.Get("net").IsObject()) throw Napi::TypeError::New(env, "net must be an object");
      Napi::Object n = o.Get("net").As<Napi::Object>();
      config.net_socket = StringField(n, "socket", true);
      if (!n.Get("mac").IsBuffer() || n.Get("mac").As<Napi::Buffer<uint8_t>>().Length() != 6) {
        throw Napi::TypeError::New(env, "net.mac must be a Buffer of 6 bytes");
      }
      Napi::Buffer<uint8_t> mac = n.Get("mac").As<Napi::Buffer<uint8_t>>();
      config.net_mac.assign(reinterpret_cast<const char*>(mac.Data()), mac.Length());
    }
    if (o.Has("filesystems") && !o.Get("filesystems").IsUndefined()) {
      if (!o.Get("filesystems").IsArray()) throw Napi::TypeError::New(env, "filesystems must be an array");
      Napi::Array filesystems = o.Get("filesystems").As<Napi::Array>();
      for (uint32_t i = 0; i < filesystems.Length(); ++i) {
        if (!filesystems.Get(i).IsObject()) throw Napi::TypeError::New(env, "each filesystem must be an object");
        Napi::Object f = filesystems.Get(i).As<Napi::Object>();
        config.filesystems.push_back({StringField(f, "socket", true), StringField(f, "tag", true)});
      }
    }
    if (o.Has("vsock") && !o.Get("vsock").IsUndefined()) {
      if (!o.Get("vsock").IsObject()) throw Napi::TypeError::New(env, "vsock must be an object");
      Napi::Object v = o.Get("vsock").As<Napi::Object>();
      config.has_vsock = true;
      config.vsock_cid = IntField(v, "cid");
      config.vsock_path = StringField(v, "path", true);
    }

    if (o.Has("snapshot") && !o.Get("snapshot").IsUndefined()) {
      if (!o.Get("snapshot").IsObject()) throw Napi::TypeError::New(env, "snapshot must be an object");
      Napi::Object snap = o.Get("snapshot").As<Napi::Object>();
      const std::string mode = StringField(snap, "mode", true);
      if (mode != "take" && mode != "restore") throw Napi::TypeError::New(env, "snapshot.mode must be take or restore");
      config.snapshot = mode == "take" ? vmm::control::Config::Snapshot::kTake : vmm::control::Config::Snapshot::kRestore;
      config.snapshot_state = StringField(snap, "state", true);
      config.snapshot_memory = StringField(snap, "memory", true);
      config.snapshot_fingerprint = StringField(snap, "fingerprint", true);
    }

    on_exit_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "vmrun-exit", 0, 1);
    try {
      Guard(env, [&] {
        machine_ = std::make_unique<vmm::control::VmmProcess>(config, [this](const vmm::control::Exit& exit) {
          on_exit_.BlockingCall(new vmm::control::Exit(exit), DeliverExit);
        });
      });
    } catch (...) {
      on_exit_.Release();
      throw;
    }
  }

  ~NativeMachine() override { Teardown(); }

 private:
  static void DeliverExit(Napi::Env env, Napi::Function callback, vmm::control::Exit* exit) {
    std::unique_ptr<vmm::control::Exit> owned(exit);
    if (!env) return;  // the function is being torn down
    // Runs on the JS thread from libuv, outside any JS call: a C++ exception leaving it would
    // terminate the process, so each becomes a JS exception (the CLI's last-resort handler).
    try {
      Napi::Object result = Napi::Object::New(env);
      result.Set("kind", ExitKindName(exit->kind));
      result.Set("detail", exit->detail);
      callback.Call({result});
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    } catch (const std::exception& e) {
      Napi::Error::New(env, std::string("delivering the VM's exit failed: ") + e.what()).ThrowAsJavaScriptException();
    }
  }

  void Start(const Napi::CallbackInfo& info) {
    if (!machine_) throw Napi::Error::New(info.Env(), "the machine was destroyed");
    Guard(info.Env(), [&] { machine_->Start(); });
  }

  void Stop(const Napi::CallbackInfo&) {
    if (machine_) machine_->Stop();
  }

  // Stops the VM if it runs and waits for its process to end. Safe to call more than once.
  void Destroy(const Napi::CallbackInfo&) { Teardown(); }

  Napi::Value TakeConsole(const Napi::CallbackInfo& info) {
    if (!machine_) throw Napi::Error::New(info.Env(), "the machine was destroyed");
    Napi::Object fds = Napi::Object::New(info.Env());
    fds.Set("output", machine_->TakeConsoleOutput());
    fds.Set("input", machine_->TakeConsoleInput());
    return fds;
  }

  // Asks the VMM process; its last answer after destroy().
  vmm::control::Status Status() {
    if (machine_) last_status_ = machine_->QueryStatus();
    return last_status_;
  }

  Napi::Value Memory(const Napi::CallbackInfo& info) {
    const vmm::control::Status status = Status();
    Napi::Object m = Napi::Object::New(info.Env());
    m.Set("guestBytes", static_cast<double>(status.guest_bytes));
    m.Set("guestResidentBytes", static_cast<double>(status.guest_resident_bytes));
    return m;
  }

  // Host CLOCK_MONOTONIC ns of the guest's boot-timer write, or null.
  Napi::Value BootTimer(const Napi::CallbackInfo& info) {
    const uint64_t ns = Status().boot_timer_ns;
    return ns ? Napi::Number::New(info.Env(), static_cast<double>(ns)) : info.Env().Null();
  }

  // { pid, jail }: the jailed VMM process (null before it reported) and what its jail applied.
  Napi::Value Process(const Napi::CallbackInfo& info) {
    if (machine_) pid_ = machine_->vmm_pid(), jail_ = machine_->jail_summary();
    Napi::Object p = Napi::Object::New(info.Env());
    p.Set("pid", pid_ > 0 ? Napi::Number::New(info.Env(), pid_) : info.Env().Null());
    p.Set("jail", jail_);
    return p;
  }

  void Teardown() {
    if (!machine_) return;
    last_status_ = machine_->QueryStatus();
    pid_ = machine_->vmm_pid(), jail_ = machine_->jail_summary();
    machine_.reset();
    // Its exit, if any, is queued by now and still delivered; releasing lets Node's loop end.
    on_exit_.Release();
  }

  std::unique_ptr<vmm::control::VmmProcess> machine_;
  vmm::control::Status last_status_;
  pid_t pid_ = -1;
  std::string jail_;
  Napi::ThreadSafeFunction on_exit_;
};

// CLOCK_BOOTTIME minus CLOCK_MONOTONIC, read back to back: converts the agent's PHASE stamps in a
// container (the host's own CLOCK_BOOTTIME) to the monotonic clock Node's timers run on.
Napi::Value BoottimeOffsetNs(const Napi::CallbackInfo& info) {
  timespec mono, boot;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_BOOTTIME, &boot);
  const double ns = (boot.tv_sec - mono.tv_sec) * 1e9 + (boot.tv_nsec - mono.tv_nsec);
  return Napi::Number::New(info.Env(), ns);
}

// probe() -> { usable, error?, apiVersion, maxVcpus, recommendedVcpus }
Napi::Value Probe(const Napi::CallbackInfo& info) {
  vmm::KvmProbe probe = vmm::Kvm::Probe();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("usable", probe.usable);
  if (!probe.usable) o.Set("error", probe.error);
  o.Set("apiVersion", probe.api_version);
  o.Set("maxVcpus", probe.max_vcpus);
  o.Set("recommendedVcpus", probe.recommended_vcpus);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeMachine", NativeMachine::Define(env));
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("boottimeOffsetNs", Napi::Function::New(env, BoottimeOffsetNs));
  return exports;
}

}  // namespace

NODE_API_MODULE(vmrun_kvm, Init)
