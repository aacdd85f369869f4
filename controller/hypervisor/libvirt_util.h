#pragma once
// libvirt handles and errors (internal to the hypervisor folder: the only code that includes
// libvirt headers). Every handle lives in a unique_ptr with its free function; errors are read
// in the calling thread right after the failing call, as libvirt's errors are thread-local.

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <memory>
#include <string>

#include "gitvirt/core/error.h"

namespace gitvirt::libvirt {

struct ConnectDeleter {
  void operator()(virConnectPtr c) const { virConnectClose(c); }
};
struct DomainDeleter {
  void operator()(virDomainPtr d) const { virDomainFree(d); }
};
struct PoolDeleter {
  void operator()(virStoragePoolPtr p) const { virStoragePoolFree(p); }
};
struct VolumeDeleter {
  void operator()(virStorageVolPtr v) const { virStorageVolFree(v); }
};
struct NetworkDeleter {
  void operator()(virNetworkPtr n) const { virNetworkFree(n); }
};
struct InterfaceDeleter {
  void operator()(virInterfacePtr i) const { virInterfaceFree(i); }
};
struct SnapshotDeleter {
  void operator()(virDomainSnapshotPtr s) const { virDomainSnapshotFree(s); }
};
struct StreamDeleter {
  void operator()(virStreamPtr s) const { virStreamFree(s); }
};
struct StringDeleter {
  void operator()(char* s) const { free(s); }  // strings libvirt returns are malloc'ed
};

using Connection = std::unique_ptr<virConnect, ConnectDeleter>;
using Domain = std::unique_ptr<virDomain, DomainDeleter>;
using Pool = std::unique_ptr<virStoragePool, PoolDeleter>;
using Volume = std::unique_ptr<virStorageVol, VolumeDeleter>;
using Network = std::unique_ptr<virNetwork, NetworkDeleter>;
using Interface = std::unique_ptr<virInterface, InterfaceDeleter>;
using Snapshot = std::unique_ptr<virDomainSnapshot, SnapshotDeleter>;
using Stream = std::unique_ptr<virStream, StreamDeleter>;
using String = std::unique_ptr<char, StringDeleter>;

// Takes ownership of a malloc'ed string; "" for null.
std::string TakeString(char* s);

// The calling thread's last libvirt error as an Error (with code mapped: no domain -> kNotFound,
// no support -> kUnsupported, closed connection -> kUnavailable...).
Error LastError(std::string context);
// The raw libvirt error code of the calling thread's last error (VIR_ERR_OK if none).
int LastErrorCode();
// True when the error means the connection is gone and a reconnect may help.
bool IsConnectionLost(const Error& error);

// Registers libvirt's default event loop and runs it in a background thread, once per process;
// silences libvirt's default error printer. Call before opening any connection.
void EnsureEventLoop();

}  // namespace gitvirt::libvirt
