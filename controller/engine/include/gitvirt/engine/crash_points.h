#pragma once
// Crash points: where the crash tests (tests/crash) kill or slow down a running job, so that
// every step boundary of an apply can be hit on purpose rather than by luck.
//
// Compiled only in builds with GITVIRT_FAULT_INJECTION (test builds; the release preset leaves
// them out, and then both functions do nothing), and active only when the environment asks:
//   GITVIRT_KILL_AT_STEP=N        the process raises SIGKILL on itself at the Nth step boundary
//                                 it passes (counting from 1, across every thread): no
//                                 destructor, no flush, exactly like `kill -9` at that instant;
//   GITVIRT_CRASH_POINTS_LOG=FILE each boundary appends "N BOUNDARY STEP-ID" to FILE before
//                                 anything else happens (so a killed run's last line says where
//                                 it died, and a clean run's lines count the boundaries);
//   GITVIRT_STEP_DELAY_MS=MS      every step waits MS milliseconds after it is journaled started
//                                 and before its side effect (to slow a job down enough for a
//                                 test to cancel, signal or restart something in the middle).
// Boundaries are named by the executor: job-created, step-started (journaled, nothing done
// yet), step-ran (its side effect done, not yet journaled), step-finished (journaled),
// step-skipped, undo-started, undo-ran, step-undone, job-finished. Counting is per process.
// Thread-safe.

#include <string_view>

namespace gitvirt {

// Passes a step boundary: logs it and kills the process when it is the chosen one.
void CrashPoint(std::string_view boundary, std::string_view step_id = {});

// Sleeps GITVIRT_STEP_DELAY_MS, if set.
void StepDelay();

}  // namespace gitvirt
