#pragma once
// The fault-injection seam: tests make the Nth libvirt operation of a given kind fail, to check
// that every step of a job can fail and be rolled back or resumed.
//
// Enabled only in builds with GITVIRT_FAULT_INJECTION (test builds; the release preset turns it
// off) and only when the environment variable GITVIRT_FAULTS is set, e.g.
//   GITVIRT_FAULTS="define:3"          the 3rd define fails
//   GITVIRT_FAULTS="start:1,create-volume:2"
//   GITVIRT_FAULTS="define:2+"         the 2nd define and every later one fail (retries that
//                                      keep failing: the controller's back-off)
//   GITVIRT_FAULTS="any:7"             the 7th mutating operation of any kind fails
//   GITVIRT_FAULTS="lost:7"            the 7th mutating operation is carried out, and then its
//                                      answer is lost (as when libvirtd restarts in the middle
//                                      of a call): the operation is asked again, as after a
//                                      reconnect
//   GITVIRT_FAULTS="kill:7"            the process SIGKILLs itself right after the 7th mutating
//                                      operation was carried out, before it looks at the answer
//                                      (kill sweeps inside a step, e.g. between a migration's
//                                      define on the target and its undefine on the source)
// Kinds are the operation names the fault decorator gives the ports' changes (faulty_node.h:
// define, undefine, start, destroy, shutdown, suspend, resume, create-volume, delete-volume,
// upload-volume, resize-volume, set-vcpus, set-memory, snapshot-create, snapshot-delete, ...).
// Counting is per process. Thread-safe.
// GITVIRT_FAULTS_REPORT=FILE (same builds) writes, at exit, how many mutating operations of each
// kind the process asked for ("kind N" lines, then "any N"), so a test can sweep any:1..N.

#include <optional>
#include <string_view>

#include "gitvirt/core/error.h"

namespace gitvirt {

// The injected error for this operation, if it is the one chosen to fail.
std::optional<Error> InjectedFault(std::string_view kind);

// Whether the answer to this (carried out) operation is to be lost with the connection.
bool InjectedConnectionLoss(std::string_view kind);

// Called after every mutating operation was carried out: kills the process if it is the one
// chosen ("kill:N").
void InjectedKill(std::string_view kind);

// Re-reads GITVIRT_FAULTS and resets the counters (for tests that change it in-process).
void ResetFaultInjection();

}  // namespace gitvirt
