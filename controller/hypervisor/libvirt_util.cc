#include "libvirt_util.h"

#include <atomic>
#include <mutex>
#include <thread>

namespace gitvirt::libvirt {

std::string TakeString(char* s) {
  String owned(s);
  return owned ? std::string(owned.get()) : std::string();
}

int LastErrorCode() {
  virErrorPtr e = virGetLastError();
  return e == nullptr ? VIR_ERR_OK : e->code;
}

Error LastError(std::string context) {
  virErrorPtr e = virGetLastError();
  if (e == nullptr) return Error{ErrorCode::kInternal, "unknown libvirt error", std::move(context)};
  ErrorCode code = ErrorCode::kInternal;
  switch (e->code) {
    case VIR_ERR_NO_DOMAIN:
    case VIR_ERR_NO_STORAGE_POOL:
    case VIR_ERR_NO_STORAGE_VOL:
    case VIR_ERR_NO_NETWORK:
    case VIR_ERR_NO_DOMAIN_SNAPSHOT:
    case VIR_ERR_NO_DOMAIN_METADATA:
      code = ErrorCode::kNotFound;
      break;
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_ARGUMENT_UNSUPPORTED:
    case VIR_ERR_OPERATION_UNSUPPORTED:
      code = ErrorCode::kUnsupported;
      break;
    case VIR_ERR_INVALID_ARG:
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_XML_DETAIL:
    case VIR_ERR_CONFIG_UNSUPPORTED:
      code = ErrorCode::kInvalidArgument;
      break;
    case VIR_ERR_OPERATION_INVALID:
      code = ErrorCode::kFailedPrecondition;
      break;
    case VIR_ERR_OPERATION_TIMEOUT:
      code = ErrorCode::kTimeout;
      break;
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_RPC:
    case VIR_ERR_AUTH_FAILED:
      code = ErrorCode::kUnavailable;
      break;
    case VIR_ERR_SYSTEM_ERROR:
      // "client socket is closed", "Cannot recv data": the daemon went away.
      code = e->domain == VIR_FROM_RPC || e->domain == VIR_FROM_REMOTE ? ErrorCode::kUnavailable
                                                                       : ErrorCode::kIo;
      break;
    default:
      if (e->domain == VIR_FROM_RPC || e->domain == VIR_FROM_REMOTE) code = ErrorCode::kUnavailable;
      break;
  }
  if (e->code == VIR_ERR_STORAGE_VOL_EXIST || e->code == VIR_ERR_DOM_EXIST ||
      (e->code == VIR_ERR_OPERATION_FAILED && e->message != nullptr &&
       std::string_view(e->message).find("already exists") != std::string_view::npos)) {
    code = ErrorCode::kAlreadyExists;
  }
  return Error{code, e->message != nullptr ? e->message : "libvirt error", std::move(context)};
}

bool IsConnectionLost(const Error& error) { return error.code == ErrorCode::kUnavailable; }

void EnsureEventLoop() {
  static std::once_flag once;
  std::call_once(once, [] {
    virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});
    virInitialize();
    if (virEventRegisterDefaultImpl() < 0) return;
    // A periodic no-op timer keeps the loop turning; the thread lives as long as the process.
    virEventAddTimeout(500, [](int, void*) {}, nullptr, nullptr);
    std::thread([] {
      while (true) virEventRunDefaultImpl();
    }).detach();
  });
}

}  // namespace gitvirt::libvirt
