#pragma once
// The status API as a pure function: HandleRequest(request, context) turns one HTTP request
// into one response, reading only the StatusSource (the published StatusSnapshot and the
// journal). No sockets, no Beast types: tests call it directly, and the server's session
// (server.h) only moves bytes. Like Beast's examples, the session owns I/O and the handler owns
// meaning.
//
// Routes (GET and HEAD; any other method answers 405 with `Allow: GET, HEAD` on every path):
//   /                                 the dashboard page (static; open even with tokens)
//   /healthz                          liveness (always open)
//   /readyz                           503 until the first reconcile pass (snapshot.ready)
//   /metrics                          Prometheus text format 0.0.4
//   /api/v1/status                    repository, revision, last sync, counts, policies, job
//   /api/v1/resources                 ?kind= &selector= &status= &health= &node= &name=(glob)
//                                     &limit= &offset= (or &page= &per_page=)
//   /api/v1/resources/{kind}/{name}   desired, observed, drift, conditions
//   /api/v1/nodes, /api/v1/nodes/{name}
//   /api/v1/clusters, /api/v1/clusters/{name}
//   /api/v1/jobs                      ?status= &kind= &limit= &offset=
//   /api/v1/jobs/{id}                 steps, progress, current steps, per-target state, rollback
//   /api/v1/jobs/{id}/events          Server-Sent Events (see EventStreamRequest), or the
//                                     events as JSON when the client accepts only JSON
//   /api/v1/plans/{id|latest}         the plan a job executes, or the loop's latest plan
//   /api/v1/snapshots, /api/v1/backups  ?vm= &node= &policy= (&status= for backups), paginated
// Errors are JSON: {"error": {"code": 404, "message": "..."}}. Field names are camelCase.
//
// Thread-safety: HandleRequest may run on many threads at once with the same context.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gitvirt/api/tokens.h"
#include "gitvirt/core/status.h"

namespace gitvirt {

struct HttpRequest {
  std::string method;  // "GET"
  std::string target;  // origin form: "/api/v1/resources?kind=VirtualMachine"
  std::vector<std::pair<std::string, std::string>> headers;

  // The first header with this name (case-insensitive); "" when absent.
  std::string_view Header(std::string_view name) const;
};

// Set on a response the handler cannot finish by itself: the session sends the headers, then
// streams the job's events from the journal (PollEventStream) until the job has finished.
struct EventStreamRequest {
  std::string job_id;
  std::int64_t after_seq = 0;  // replay events with a greater seq (Last-Event-ID or ?after=)
  friend bool operator==(const EventStreamRequest&, const EventStreamRequest&) = default;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  // Shared, never null: hot responses are serialized once and then only referenced (by the
  // cache and by every session writing them).
  std::shared_ptr<const std::string> body = std::make_shared<const std::string>();
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type/Length
  std::optional<EventStreamRequest> event_stream;
  // The same body will be sent again (it is in the ResponseCache, or a constant page): the
  // session may keep a kernel-side copy of it to send without copying (sendfile).
  bool reusable = false;

  std::string_view text() const { return *body; }
  // The first extra header with this name (case-insensitive); "" when absent.
  std::string_view Header(std::string_view name) const;
};

// Memoizes responses that depend only on the snapshot (resource lists, nodes, metrics...), keyed
// by request target, for as long as the same snapshot object is published. The first request
// after a new snapshot clears it. Bounded; thread-safe.
class ResponseCache {
 public:
  explicit ResponseCache(std::size_t capacity = 256) : capacity_(capacity) {}

  std::optional<HttpResponse> Find(const std::shared_ptr<const StatusSnapshot>& snapshot,
                                   std::string_view target);
  void Store(const std::shared_ptr<const StatusSnapshot>& snapshot, std::string target,
             const HttpResponse& response);

 private:
  std::mutex mutex_;
  std::size_t capacity_;
  // Held so the address cannot be reused by a newer snapshot while entries refer to it.
  std::shared_ptr<const StatusSnapshot> snapshot_;
  std::map<std::string, HttpResponse, std::less<>> entries_;
};

// Everything the handler reads. The referenced objects must outlive every call.
struct ApiContext {
  const StatusSource& source;
  BearerTokens tokens;             // empty: no authentication
  ResponseCache* cache = nullptr;  // optional
  int default_page_size = 100;
  int max_page_size = 1000;  // larger `limit`s are clamped (the answer says the limit)
};

HttpResponse HandleRequest(const HttpRequest& request, const ApiContext& context);

// {"error": {"code": status, "message": message}}: every error the API answers, including the
// ones the session produces itself (431 headers too large, 413, 500).
HttpResponse MakeErrorResponse(int status, std::string_view message);

// The state of one event stream between polls.
struct EventStreamState {
  std::string job_id;
  std::int64_t after_seq = 0;  // the last event id sent
  std::string last_progress;   // the last `progress` payload sent, to send only changes
  bool started = false;        // the `retry:` preamble has been sent
  // The job was seen finished: the stream ends at the next poll, so that events the executor
  // appends right after recording the final status are still sent.
  bool saw_finished = false;
  bool finished = false;  // the `end` event has been produced: close after sending
};

// One poll of a job's event stream: the SSE text to send now (possibly empty). New journal
// events become `id: <seq>` + `data: {...}` messages; a change of progress becomes an
// `event: progress` message; one poll after the job was first seen finished, an `event: end`
// message carrying the final job summary, and state.finished is set. A job that
// disappears also ends the stream; a transient journal error becomes an SSE comment.
std::string PollEventStream(JobHistory& journal, EventStreamState& state);

}  // namespace gitvirt
