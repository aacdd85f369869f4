#include "gitvirt/api/handler.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <set>

#include "dashboard.h"
#include "gitvirt/core/selector.h"
#include "metrics.h"
#include "gitvirt/api/views.h"

namespace gitvirt {
namespace {

using api_views::Json;

constexpr const char* kJsonType = "application/json";
constexpr const char* kAllow = "GET, HEAD";

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view FindHeader(const std::vector<std::pair<std::string, std::string>>& headers,
                            std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (IEquals(key, name)) return value;
  }
  return {};
}

// ---- responses ----

HttpResponse TextResponse(int status, std::string content_type, std::string body) {
  HttpResponse response;
  response.status = status;
  response.content_type = std::move(content_type);
  response.body = std::make_shared<const std::string>(std::move(body));
  return response;
}

HttpResponse JsonResponse(int status, const Json& json) {
  return TextResponse(status, kJsonType, api_views::Dump(json));
}

HttpResponse ErrorResponse(int status, std::string_view message) {
  return JsonResponse(status, Json{{"error", Json{{"code", status}, {"message", message}}}});
}

HttpResponse JournalError(const Error& error) {
  return ErrorResponse(error.code == ErrorCode::kNotFound ? 404 : 500,
                       "journal: " + error.ToString());
}

// ---- the request target ----

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; `plus_is_space` for query components (form encoding).
std::optional<std::string> Decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      const int high = i + 1 < text.size() ? HexValue(text[i + 1]) : -1;
      const int low = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

struct Target {
  std::vector<std::string> segments;  // "/api/v1/jobs/x" -> {"api", "v1", "jobs", "x"}
  std::map<std::string, std::string, std::less<>> query;  // the last value of each key wins

  std::string_view Param(std::string_view key) const {
    const auto it = query.find(key);
    return it == query.end() ? std::string_view{} : std::string_view(it->second);
  }
  bool Has(std::string_view key) const { return query.contains(key); }
};

std::optional<Target> ParseTarget(std::string_view target) {
  if (target.empty() || target.front() != '/') return std::nullopt;
  const auto question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
  Target parsed;
  std::size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view raw = path.substr(start, end - start);
    // Empty segments ("//", a trailing "/") carry no meaning.
    if (!raw.empty()) {
      auto segment = Decode(raw, false);
      if (!segment) return std::nullopt;
      parsed.segments.push_back(std::move(*segment));
    }
    start = end + 1;
  }
  std::size_t pos = 0;
  while (pos < query.size()) {
    auto end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view pair = query.substr(pos, end - pos);
    if (!pair.empty()) {
      const auto eq = pair.find('=');
      auto key = Decode(pair.substr(0, eq), true);
      auto value = Decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
      if (!key || !value) return std::nullopt;
      parsed.query[std::move(*key)] = std::move(*value);
    }
    pos = end + 1;
  }
  return parsed;
}

// ---- query parameters ----

std::optional<long long> ParseCount(std::string_view text) {
  long long value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

struct Page {
  int offset = 0;
  int limit = 0;
};

// limit/offset, or page/per_page (1-based pages). Limits above the maximum are clamped.
Result<Page> ParsePage(const Target& target, const ApiContext& context) {
  auto number = [&](std::string_view key, long long fallback) -> Result<long long> {
    if (!target.Has(key)) return fallback;
    const auto value = ParseCount(target.Param(key));
    if (!value) {
      return Fail(ErrorCode::kInvalidArgument, std::string(key) +
                                                   ": expected a non-negative integer, got '" +
                                                   std::string(target.Param(key)) + "'");
    }
    return *value;
  };
  const bool paged = target.Has("page") || target.Has("per_page");
  auto limit = number(paged ? "per_page" : "limit", context.default_page_size);
  if (!limit) return std::unexpected(limit.error());
  Page page;
  page.limit = static_cast<int>(std::min<long long>(*limit, context.max_page_size));
  if (paged) {
    auto index = number("page", 1);
    if (!index) return std::unexpected(index.error());
    if (*index < 1) return Fail(ErrorCode::kInvalidArgument, "page: pages start at 1");
    // (index - 1) * limit would overflow for a page like 99999999999999999: clamp before
    // multiplying (an offset past every item is an empty page, not page 1).
    constexpr long long kMaxOffset = 1LL << 30;
    const long long before = std::min<long long>(*index - 1, kMaxOffset);
    page.offset = static_cast<int>(std::min<long long>(before * page.limit, kMaxOffset));
  } else {
    auto offset = number("offset", 0);
    if (!offset) return std::unexpected(offset.error());
    page.offset = static_cast<int>(std::min<long long>(*offset, 1LL << 30));
  }
  return page;
}

template <typename E>
std::optional<E> ParseEnumLoose(std::string_view text) {
  for (const auto& [value, name] : EnumTable<E>::kNames) {
    if (IEquals(name, text)) return value;
  }
  return std::nullopt;
}

// "OutOfSync,Missing": the set of accepted values; empty when the parameter is absent.
template <typename E>
Result<std::set<E>> ParseEnumSet(const Target& target, std::string_view key) {
  std::set<E> values;
  const std::string_view text = target.Param(key);
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find(',', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view item = text.substr(pos, end - pos);
    if (!item.empty()) {
      const auto value = ParseEnumLoose<E>(item);
      if (!value) {
        return Fail(ErrorCode::kInvalidArgument, std::string(key) + ": unknown value '" +
                                                     std::string(item) + "' (" + EnumChoices<E>() +
                                                     ")");
      }
      values.insert(*value);
    }
    pos = end + 1;
  }
  return values;
}

template <typename T>
Json PageOf(const std::vector<const T*>& matches, const Page& page, Json (*view)(const T&)) {
  Json items = Json::array();
  const std::size_t first = std::min<std::size_t>(page.offset, matches.size());
  const std::size_t last = std::min<std::size_t>(first + page.limit, matches.size());
  for (std::size_t i = first; i < last; ++i) items.push_back(view(*matches[i]));
  return Json{{"total", matches.size()},
              {"offset", page.offset},
              {"limit", page.limit},
              {"items", std::move(items)}};
}

// ---- endpoints ----

struct Call {
  const HttpRequest& request;
  const Target& target;
  const ApiContext& context;
  const StatusSnapshot& snapshot;
};

HttpResponse Resources(const Call& call) {
  const Target& t = call.target;
  auto page = ParsePage(t, call.context);
  if (!page) return ErrorResponse(400, page.error().message);
  auto kinds = ParseEnumSet<Kind>(t, "kind");
  if (!kinds) return ErrorResponse(400, kinds.error().message);
  auto statuses = ParseEnumSet<SyncStatus>(t, "status");
  if (!statuses) return ErrorResponse(400, statuses.error().message);
  auto health = ParseEnumSet<Health>(t, "health");
  if (!health) return ErrorResponse(400, health.error().message);
  auto selector = ParseLabelSelector(t.Param("selector"));
  if (!selector) return ErrorResponse(400, "selector: " + selector.error().message);
  const std::string_view node = t.Param("node");
  const std::string_view name = t.Param("name");

  std::vector<const ResourceStatus*> matches;
  matches.reserve(call.snapshot.resources.size());
  for (const ResourceStatus& r : call.snapshot.resources) {
    if (!kinds->empty() && !kinds->contains(r.kind)) continue;
    if (!statuses->empty() && !statuses->contains(r.sync)) continue;
    if (!health->empty() && !health->contains(r.health)) continue;
    if (!node.empty() && r.node != node) continue;
    if (!name.empty() && !GlobMatch(name, r.name)) continue;
    if (!selector->Matches(r.labels)) continue;
    matches.push_back(&r);
  }
  return JsonResponse(200, PageOf(matches, *page, &api_views::ResourceSummary));
}

HttpResponse Resource(const Call& call, std::string_view kind_text, std::string_view name) {
  const auto kind = ParseEnumLoose<Kind>(kind_text);
  if (!kind) {
    return ErrorResponse(
        404, "unknown kind '" + std::string(kind_text) + "' (" + EnumChoices<Kind>() + ")");
  }
  for (const ResourceStatus& r : call.snapshot.resources) {
    if (r.kind == *kind && r.name == name) return JsonResponse(200, api_views::ResourceDetail(r));
  }
  return ErrorResponse(
      404, std::string(EnumName(*kind)) + "/" + std::string(name) + " is not a known resource");
}

template <typename T>
HttpResponse List(const std::vector<T>& values, Json (*view)(const T&)) {
  Json items = Json::array();
  for (const T& value : values) items.push_back(view(value));
  return JsonResponse(200, Json{{"total", values.size()}, {"items", std::move(items)}});
}

template <typename T>
HttpResponse One(const std::vector<T>& values, std::string_view name, Json (*view)(const T&),
                 std::string_view what) {
  for (const T& value : values) {
    if (value.name == name) return JsonResponse(200, view(value));
  }
  return ErrorResponse(404, std::string(what) + " '" + std::string(name) + "' not found");
}

// Pagination and `field=value` filters over a catalog list (snapshots, backups).
template <typename T>
HttpResponse Catalog(const Call& call, const std::vector<T>& values, Json (*view)(const T&),
                     const std::vector<std::pair<std::string_view, std::string T::*>>& filters) {
  auto page = ParsePage(call.target, call.context);
  if (!page) return ErrorResponse(400, page.error().message);
  std::vector<const T*> matches;
  for (const T& value : values) {
    const bool keep = std::all_of(filters.begin(), filters.end(), [&](const auto& filter) {
      const std::string_view wanted = call.target.Param(filter.first);
      return wanted.empty() || value.*filter.second == wanted;
    });
    if (keep) matches.push_back(&value);
  }
  return JsonResponse(200, PageOf(matches, *page, view));
}

HttpResponse Jobs(const Call& call) {
  auto page = ParsePage(call.target, call.context);
  if (!page) return ErrorResponse(400, page.error().message);
  JobFilter filter;
  if (call.target.Has("status") && !call.target.Param("status").empty()) {
    filter.status = ParseEnumLoose<JobStatus>(call.target.Param("status"));
    if (!filter.status) {
      return ErrorResponse(400, "status: unknown value '" +
                                    std::string(call.target.Param("status")) + "' (" +
                                    EnumChoices<JobStatus>() + ")");
    }
  }
  filter.kind = std::string(call.target.Param("kind"));
  filter.limit = page->limit;
  filter.offset = page->offset;
  JobHistory& journal = call.context.source.history();
  auto total = journal.CountJobs(filter);
  if (!total) return JournalError(total.error());
  Json items = Json::array();
  if (page->limit > 0) {
    auto jobs = journal.ListJobs(filter);
    if (!jobs) return JournalError(jobs.error());
    for (const JobRecord& job : *jobs) items.push_back(api_views::JobSummary(job));
  }
  return JsonResponse(200, Json{{"total", *total},
                                {"offset", page->offset},
                                {"limit", page->limit},
                                {"items", std::move(items)}});
}

HttpResponse JobDetail(const Call& call, const std::string& id) {
  JobHistory& journal = call.context.source.history();
  auto job = journal.GetJob(id);
  if (!job) return JournalError(job.error());
  auto steps = journal.GetSteps(id);
  if (!steps) return JournalError(steps.error());
  return JsonResponse(200, api_views::JobDetail(*job, *steps));
}

HttpResponse JobEvents(const Call& call, const std::string& id) {
  std::int64_t after = 0;
  const std::string_view last_id = call.request.Header("Last-Event-ID");
  const std::string_view after_text = !last_id.empty() ? last_id : call.target.Param("after");
  if (!after_text.empty()) {
    const auto value = ParseCount(after_text);
    if (!value) return ErrorResponse(400, "after: expected an event id (a non-negative integer)");
    after = *value;
  }
  JobHistory& journal = call.context.source.history();
  auto job = journal.GetJob(id);
  if (!job) return JournalError(job.error());

  const std::string_view accept = call.request.Header("Accept");
  if (accept.find("application/json") != std::string_view::npos &&
      accept.find("text/event-stream") == std::string_view::npos) {
    auto events = journal.GetEvents(id, after);
    if (!events) return JournalError(events.error());
    Json items = Json::array();
    for (const EventRecord& event : *events) items.push_back(api_views::Event(event));
    return JsonResponse(
        200,
        Json{{"jobId", id}, {"finished", IsFinished(job->status)}, {"items", std::move(items)}});
  }
  HttpResponse response = TextResponse(200, "text/event-stream", "");
  response.headers = {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}};
  if (call.request.method == "GET") response.event_stream = EventStreamRequest{id, after};
  return response;
}

HttpResponse Plan(const Call& call, const std::string& id) {
  if (id == "latest" ||
      (!call.snapshot.latest_plan_id.empty() && id == call.snapshot.latest_plan_id)) {
    if (call.snapshot.latest_plan_json.empty()) {
      return ErrorResponse(404, "no plan has been computed yet");
    }
    return TextResponse(200, kJsonType, call.snapshot.latest_plan_json);
  }
  auto job = call.context.source.history().GetJob(id);
  if (!job) {
    if (job.error().code == ErrorCode::kNotFound) {
      return ErrorResponse(404, "no plan '" + id + "': not a job id, nor latest");
    }
    return JournalError(job.error());
  }
  if (job->plan_json.empty()) return ErrorResponse(404, "job " + id + " has no plan");
  return TextResponse(200, kJsonType, job->plan_json);
}

// The job to show as running: the controller's own, else one a CLI process is running against
// the same state file (an interrupted job waits for a restart: it is not running).
std::optional<JobRecord> CurrentJob(const Call& call) {
  JobHistory& journal = call.context.source.history();
  if (!call.snapshot.current_job.empty()) {
    if (auto job = journal.GetJob(call.snapshot.current_job)) return *job;
  }
  auto unfinished = journal.UnfinishedJobs();
  if (!unfinished) return std::nullopt;
  std::optional<JobRecord> newest;
  for (JobRecord& job : *unfinished) {
    const bool active = job.status == JobStatus::kPending || job.status == JobStatus::kRunning ||
                        job.status == JobStatus::kRollingBack;
    if (active && (!newest || job.created_at >= newest->created_at)) newest = std::move(job);
  }
  return newest;
}

HttpResponse Status(const Call& call) {
  return JsonResponse(200, api_views::Status(call.snapshot, CurrentJob(call)));
}

HttpResponse Ready(const Call& call) {
  if (!call.snapshot.ready) {
    return JsonResponse(
        503,
        Json{{"ready", false},
             {"error", Json{{"code", 503}, {"message", "no reconcile pass has completed yet"}}}});
  }
  return JsonResponse(200, Json{{"ready", true}, {"generation", call.snapshot.generation}});
}

HttpResponse Dashboard() {
  // Built once: the page is a constant.
  static const std::shared_ptr<const std::string> page =
      std::make_shared<const std::string>(DashboardHtml());
  HttpResponse response;
  response.content_type = "text/html; charset=utf-8";
  response.body = page;
  response.reusable = true;
  response.headers = {{"Content-Security-Policy",
                       "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                       "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                       "frame-ancestors 'none'"},
                      {"Cache-Control", "no-cache"}};
  return response;
}

struct Route {
  std::function<HttpResponse(const Call&)> run;
  bool cacheable = false;  // depends on the snapshot alone
};

std::optional<Route> Match(const std::vector<std::string>& s) {
  const std::size_t n = s.size();
  if (n < 2 || s[0] != "api" || s[1] != "v1") return std::nullopt;
  const std::string_view what = n > 2 ? std::string_view(s[2]) : std::string_view{};
  using C = const Call&;
  if (n == 3 && what == "status") return Route{[](C c) { return Status(c); }};
  if (what == "resources") {
    if (n == 3) return Route{[](C c) { return Resources(c); }, true};
    if (n == 5) return Route{[a = s[3], b = s[4]](C c) { return Resource(c, a, b); }, true};
  }
  if (what == "nodes") {
    if (n == 3) return Route{[](C c) { return List(c.snapshot.nodes, &api_views::Node); }, true};
    if (n == 4) {
      return Route{
          [name = s[3]](C c) { return One(c.snapshot.nodes, name, &api_views::Node, "node"); },
          true};
    }
  }
  if (what == "clusters") {
    if (n == 3) {
      return Route{[](C c) { return List(c.snapshot.clusters, &api_views::Cluster); }, true};
    }
    if (n == 4) {
      return Route{[name = s[3]](C c) {
                     return One(c.snapshot.clusters, name, &api_views::Cluster, "cluster");
                   },
                   true};
    }
  }
  if (what == "jobs") {
    if (n == 3) return Route{[](C c) { return Jobs(c); }};
    if (n == 4) return Route{[id = s[3]](C c) { return JobDetail(c, id); }};
    if (n == 5 && s[4] == "events") return Route{[id = s[3]](C c) { return JobEvents(c, id); }};
  }
  if (what == "plans" && n == 4) {
    return Route{[id = s[3]](C c) { return Plan(c, id); }, s[3] == "latest"};
  }
  if (what == "snapshots" && n == 3) {
    return Route{[](C c) {
                   return Catalog<SnapshotEntry>(c, c.snapshot.snapshots, &api_views::Snapshot,
                                                 {{"vm", &SnapshotEntry::vm},
                                                  {"node", &SnapshotEntry::node},
                                                  {"policy", &SnapshotEntry::policy}});
                 },
                 true};
  }
  if (what == "backups" && n == 3) {
    return Route{[](C c) {
                   return Catalog<BackupEntry>(c, c.snapshot.backups, &api_views::Backup,
                                               {{"vm", &BackupEntry::vm},
                                                {"node", &BackupEntry::node},
                                                {"policy", &BackupEntry::policy},
                                                {"status", &BackupEntry::status}});
                 },
                 true};
  }
  return std::nullopt;
}

HttpResponse Unauthorized(bool token_given) {
  HttpResponse response = ErrorResponse(
      401, token_given ? "the bearer token is not valid" : "a bearer token is required");
  response.headers.emplace_back("WWW-Authenticate",
                                token_given ? R"(Bearer realm="gitvirt", error="invalid_token")"
                                            : R"(Bearer realm="gitvirt")");
  return response;
}

// "Bearer <token>", scheme case-insensitive; "" when there is none.
std::string_view BearerToken(const HttpRequest& request) {
  std::string_view value = request.Header("Authorization");
  const auto space = value.find(' ');
  if (space == std::string_view::npos || !IEquals(value.substr(0, space), "Bearer")) return {};
  value.remove_prefix(space);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value;
}

}  // namespace

HttpResponse MakeErrorResponse(int status, std::string_view message) {
  return ErrorResponse(status, message);
}

std::string_view HttpRequest::Header(std::string_view name) const {
  return FindHeader(headers, name);
}

std::string_view HttpResponse::Header(std::string_view name) const {
  return FindHeader(headers, name);
}

std::optional<HttpResponse> ResponseCache::Find(
    const std::shared_ptr<const StatusSnapshot>& snapshot, std::string_view target) {
  std::lock_guard lock(mutex_);
  if (snapshot != snapshot_) return std::nullopt;
  const auto it = entries_.find(target);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void ResponseCache::Store(const std::shared_ptr<const StatusSnapshot>& snapshot, std::string target,
                          const HttpResponse& response) {
  std::lock_guard lock(mutex_);
  if (snapshot != snapshot_) {
    entries_.clear();
    snapshot_ = snapshot;
  }
  // Many distinct query strings (a crawler, an attack) must not grow memory without bound.
  if (entries_.size() >= capacity_) entries_.clear();
  entries_.insert_or_assign(std::move(target), response);
}

HttpResponse HandleRequest(const HttpRequest& request, const ApiContext& context) {
  if (request.method != "GET" && request.method != "HEAD") {
    HttpResponse response =
        ErrorResponse(405, "method " + request.method + " not allowed: the API is read-only");
    response.headers.emplace_back("Allow", kAllow);
    return response;
  }
  const auto target = ParseTarget(request.target);
  if (!target) return ErrorResponse(400, "malformed request target");
  const auto& segments = target->segments;

  // Open without a token: the liveness probe, and the dashboard page, which is static, holds
  // no data, and asks for the token itself (a browser cannot attach one to a page load).
  if (segments.empty() || (segments.size() == 1 && segments[0] == "index.html")) {
    return Dashboard();
  }
  if (segments.size() == 1 && segments[0] == "healthz") {
    return JsonResponse(200, Json{{"status", "ok"}});
  }

  if (context.tokens.enabled()) {
    const std::string_view token = BearerToken(request);
    if (!context.tokens.Accepts(token)) return Unauthorized(!token.empty());
  }

  const std::shared_ptr<const StatusSnapshot> snapshot = context.source.Snapshot();
  if (!snapshot) return ErrorResponse(503, "no status has been published yet");

  std::optional<Route> route;
  if (segments.size() == 1 && segments[0] == "readyz") {
    route = Route{[](const Call& c) { return Ready(c); }};
  } else if (segments.size() == 1 && segments[0] == "metrics") {
    route = Route{[](const Call& c) {
                    return TextResponse(200, api_metrics::kContentType,
                                        api_metrics::Render(c.snapshot));
                  },
                  true};
  } else {
    route = Match(segments);
  }
  if (!route) return ErrorResponse(404, "no such endpoint: " + request.target.substr(0, 200));

  const bool use_cache = route->cacheable && context.cache != nullptr;
  if (use_cache) {
    if (auto cached = context.cache->Find(snapshot, request.target)) return std::move(*cached);
  }
  HttpResponse response = route->run(Call{request, *target, context, *snapshot});
  if (use_cache && response.status == 200) {
    response.reusable = true;
    context.cache->Store(snapshot, request.target, response);
  }
  return response;
}

std::string PollEventStream(JobHistory& journal, EventStreamState& state) {
  std::string out;
  if (!state.started) {
    out += "retry: 2000\n\n";
    state.started = true;
  }
  auto comment = [&out](const Error& error) {
    std::string text = error.ToString();
    std::replace(text.begin(), text.end(), '\n', ' ');
    std::replace(text.begin(), text.end(), '\r', ' ');
    out += ": journal error: " + text + "\n\n";
  };
  auto job = journal.GetJob(state.job_id);
  if (!job) {
    if (job.error().code != ErrorCode::kNotFound) {
      comment(job.error());
      return out;
    }
    out += "event: end\ndata: " +
           api_views::Dump(
               Json{{"jobId", state.job_id}, {"status", nullptr}, {"error", "job not found"}}) +
           "\n\n";
    state.finished = true;
    return out;
  }
  // The status is read before the events: every event written before the job finished is
  // then among those read below.
  const bool finished_now = IsFinished(job->status);
  auto events = journal.GetEvents(state.job_id, state.after_seq);
  if (!events) {
    comment(events.error());
    return out;
  }
  for (const EventRecord& event : *events) {
    if (event.seq <= state.after_seq) continue;
    out += "id: " + std::to_string(event.seq) +
           "\ndata: " + api_views::Dump(api_views::Event(event)) + "\n\n";
    state.after_seq = event.seq;
  }
  std::string progress = api_views::Dump(api_views::JobProgressView(*job));
  if (progress != state.last_progress) {
    out += "event: progress\ndata: " + progress + "\n\n";
    state.last_progress = std::move(progress);
  }
  if (state.saw_finished && finished_now) {
    out += "event: end\ndata: " + api_views::Dump(api_views::JobSummary(*job)) + "\n\n";
    state.finished = true;
  }
  state.saw_finished = finished_now;
  return out;
}

}  // namespace gitvirt
