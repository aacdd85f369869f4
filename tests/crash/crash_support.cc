#include "crash_support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "gitvirt/core/json.h"
#include "gitvirt/hypervisor/connect.h"
#include "process.h"

extern char** environ;

namespace gitvirt::crash {

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// ---- processes ---------------------------------------------------------------------------

Output Run(std::vector<std::string> argv, const std::vector<std::string>& env, int timeout_seconds) {
  std::vector<std::string> full = {"timeout", "-k", "10", std::to_string(timeout_seconds), "env"};
  full.insert(full.end(), env.begin(), env.end());
  full.insert(full.end(), argv.begin(), argv.end());
  Output out;
  const auto start = Clock::now();
  out.rc = testing::RunCommand(std::move(full), &out.text);
  out.seconds = SecondsSince(start);
  return out;
}

std::unique_ptr<Child> Child::Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  // Everything the child needs is prepared before fork (the test may be multithreaded).
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (std::string& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string v(*e);
    const std::string name = v.substr(0, v.find('='));
    const bool overridden = std::any_of(env.begin(), env.end(), [&](const std::string& x) {
      return x.substr(0, x.find('=')) == name;
    });
    if (!overridden) vars.push_back(v);
  }
  vars.insert(vars.end(), env.begin(), env.end());
  std::vector<char*> cenv;
  for (std::string& v : vars) cenv.push_back(v.data());
  cenv.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    const int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, STDIN_FILENO);
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::close_range(3, ~0U, 0);
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  return std::unique_ptr<Child>(new Child(pid, fds[0]));
}

Child::~Child() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    Wait();
  }
  if (fd_ >= 0) ::close(fd_);
}

bool Child::Fill(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) return ready == 0 || errno == EINTR;  // timeout: not the end
  char buf[8192];
  const ssize_t n = ::read(fd_, buf, sizeof buf);
  if (n > 0) {
    output_.append(buf, static_cast<std::size_t>(n));
    pending_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  if (n < 0 && errno == EINTR) return true;
  ::close(fd_);
  fd_ = -1;
  return false;
}

std::optional<std::string> Child::ReadLine(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (const auto nl = pending_.find('\n'); nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (!Fill(left)) {
      if (pending_.empty()) return std::nullopt;
      std::string line = std::move(pending_);
      pending_.clear();
      return line;
    }
  }
}

bool Child::WaitFor(const std::string& needle, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto line = ReadLine(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!line) return false;
    if (line->find(needle) != std::string::npos) return true;
  }
  return false;
}

void Child::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Child::Wait() {
  while (Fill(std::chrono::milliseconds(1000))) {
  }
  if (pid_ > 0) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
  }
  return status_;
}

// ---- files -------------------------------------------------------------------------------

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

void CopyTree(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::create_directories(to.parent_path());
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
}

std::map<std::string, long> ReadFaultsReport(const fs::path& report) {
  std::map<std::string, long> counts;
  std::istringstream in(ReadFile(report));
  std::string kind;
  long n = 0;
  while (in >> kind >> n) counts[kind] = n;
  return counts;
}

std::string Sha256(const fs::path& file) {
  Output out = Run({"sha256sum", file.string()});
  return out.text.substr(0, 64);
}

// ---- a gitvirt workspace --------------------------------------------------------------------

Workspace::Workspace(fs::path dir, std::vector<NodeSpec> nodes, std::string extra_config)
    : dir_(std::move(dir)), nodes_(std::move(nodes)) {
  std::ostringstream config;
  config << "apiVersion: gitvirt.dev/v1\n"
            "kind: ControllerConfig\n"
            "source:\n"
            "  path: " << (dir_ / "manifests").string() << "\n"
            "  interval: 2s\n"
            "nodes:\n";
  for (const NodeSpec& n : nodes_) {
    config << "  - name: " << n.name << "\n"
           << "    uri: \"" << n.uri << "\"\n"
           << "    pools:\n"
           << "      - {name: default, path: " << n.pool_path << "}\n";
  }
  config << "state: " << state_file() << "\n" << extra_config;
  WriteFile(dir_ / "gitvirt.yaml", config.str());
  fs::create_directories(manifests());
  fs::create_directories(state_dir());
}

std::vector<NodeConfig> Workspace::NodeConfigs() const {
  std::vector<NodeConfig> out;
  for (const NodeSpec& n : nodes_) {
    NodeConfig c;
    c.name = n.name;
    c.uri = n.uri;
    c.pools.push_back(PoolConfig{"default", n.pool_path});
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> Workspace::Argv(std::vector<std::string> args) const {
  args.insert(args.begin(), {GITVIRT_BINARY, "--config", (dir_ / "gitvirt.yaml").string()});
  return args;
}

Output Workspace::operator()(std::vector<std::string> args, const std::vector<std::string>& env) const {
  return Run(Argv(std::move(args)), env);
}

std::unique_ptr<Child> Workspace::Start(std::vector<std::string> args, const std::vector<std::string>& env) const {
  return Child::Spawn(Argv(std::move(args)), env);
}

// ---- manifests ---------------------------------------------------------------------------

std::string ImageYaml(const std::string& name, const fs::path& file, const std::string& sha256) {
  return "apiVersion: gitvirt.dev/v1\n"
         "kind: Image\n"
         "metadata: {name: " + name + "}\n"
         "spec:\n"
         "  source: " + file.string() + "\n"
         "  sha256: " + sha256 + "\n"
         "  format: qcow2\n"
         "  pool: default\n";
}

std::string VmYaml(const std::string& name, const VmOptions& o) {
  std::string y = "apiVersion: gitvirt.dev/v1\n"
                  "kind: VirtualMachine\n"
                  "metadata: {name: " + name + ", labels: {suite: crash}}\n"
                  "spec:\n"
                  "  node: " + o.node + "\n"
                  "  vcpus: 1\n"
                  "  memory: " + o.memory + "\n"
                  "  powerState: " + o.power + "\n"
                  "  disks:\n";
  if (o.image.empty()) {
    y += "    - {name: root, size: 64MiB}\n";
  } else {
    y += "    - {name: root, size: 1GiB, source: {image: " + o.image + ", clone: linked}}\n";
  }
  if (o.data_disk) y += "    - {name: data, size: 32MiB}\n";
  if (o.cloud_init) {
    y += "  cloudInit:\n"
         "    hostname: " + name + "\n"
         "    users: [{name: ops, sshAuthorizedKeys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps ops@example.com\"]}]\n";
  }
  y += "  updatePolicy: {restart: Allowed, shutdownTimeout: 2s, forceOff: true}\n";
  y += o.extra;
  return y;
}

// ---- journal -----------------------------------------------------------------------------

const StepRecord* JobView::Step(const std::string& id) const {
  for (const StepRecord& s : steps) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

std::string JobView::Describe() const {
  std::ostringstream s;
  s << "job " << job.id << " " << EnumName(job.status) << " (" << job.strategy << ")";
  if (!job.error.empty()) s << " error: " << job.error;
  s << "\n  summary: " << job.summary_json << "\n";
  for (const StepRecord& st : steps) {
    s << "  step " << st.seq << " " << st.id << ": " << EnumName(st.status) << " attempt " << st.attempt;
    if (!st.error.empty()) s << " error: " << st.error;
    s << "\n";
  }
  for (const EventRecord& e : events) {
    s << "  event " << e.seq << " " << EnumName(e.level) << " " << (e.step_id.empty() ? "" : e.step_id + ": ")
      << e.message << "\n";
  }
  return s.str();
}

std::vector<JobView> ReadJobs(const std::string& state_file) {
  std::vector<JobView> out;
  if (!fs::exists(state_file)) return out;
  auto journal = Journal::Open(state_file);
  if (!journal) throw std::runtime_error("opening " + state_file + ": " + journal.error().ToString());
  JobFilter all;
  all.limit = 0;
  auto jobs = (*journal)->ListJobs(all);
  if (!jobs) throw std::runtime_error(jobs.error().ToString());
  for (auto it = jobs->rbegin(); it != jobs->rend(); ++it) {
    JobView v;
    v.job = *(*journal)->GetJob(it->id);
    v.steps = *(*journal)->GetSteps(it->id);
    v.events = *(*journal)->GetEvents(it->id);
    auto plan = PlanFromJson(nlohmann::json::parse(v.job.plan_json, nullptr, false));
    if (plan) v.plan = std::move(*plan);
    out.push_back(std::move(v));
  }
  return out;
}

// ---- what the nodes hold -----------------------------------------------------------------

Inventory TakeInventory(const std::vector<NodeConfig>& nodes) {
  Inventory inv;
  HypervisorOptions options;
  options.reconnect_timeout = std::chrono::seconds(5);
  for (const NodeConfig& node : nodes) {
    auto hv = ConnectNode(node, options);
    if (!hv) {
      inv.errors.push_back(node.name + ": " + hv.error().ToString());
      continue;
    }
    auto observed = (*hv)->Observe();
    if (!observed) {
      inv.errors.push_back(node.name + ": " + observed.error().ToString());
      continue;
    }
    for (const ObservedVm& vm : observed->vms) {
      const std::string key = node.name + "/" + vm.name;
      std::ostringstream line;
      line << "uuid=" << vm.uuid << " power=" << EnumName(vm.power) << " state=" << vm.state_detail
           << " persistent=" << vm.persistent << " autostart=" << vm.autostart
           << " definition=" << vm.definition_fingerprint << " owner=" << (vm.owner ? vm.owner->name : "-");
      inv.domains[key] = line.str();
      inv.power[key] = std::string(EnumName(vm.power));
      if (vm.owner) {
        inv.owned_volumes[key] = std::set<std::string>(vm.owner->created_volumes.begin(), vm.owner->created_volumes.end());
      }
    }
    for (const ObservedPool& pool : observed->pools) {
      inv.volumes[node.name + "/" + pool.name + "/"] = "pool path=" + pool.path + " active=" + std::to_string(pool.active);
      for (const ObservedVolume& v : pool.volumes) {
        std::ostringstream line;
        line << "path=" << v.path << " capacity=" << v.capacity << " allocation=" << v.allocation;
        if (auto detail = (*hv)->storage().GetVolume(pool.name, v.name)) {
          line << " format=" << detail->format << " backing=" << detail->backing;
        } else {
          line << " (unreadable: " << detail.error().ToString() << ")";
        }
        inv.volumes[node.name + "/" + pool.name + "/" + v.name] = line.str();
      }
    }
  }
  return inv;
}

std::string DiffInventories(const Inventory& before, const Inventory& after) {
  std::ostringstream s;
  auto diff = [&](const char* what, const std::map<std::string, std::string>& a,
                  const std::map<std::string, std::string>& b) {
    for (const auto& [key, line] : a) {
      auto it = b.find(key);
      if (it == b.end()) {
        s << "  - " << what << " " << key << " gone (was: " << line << ")\n";
      } else if (it->second != line) {
        s << "  ~ " << what << " " << key << "\n      before: " << line << "\n      after:  " << it->second << "\n";
      }
    }
    for (const auto& [key, line] : b) {
      if (!a.contains(key)) s << "  + " << what << " " << key << " new: " << line << "\n";
    }
  };
  diff("domain", before.domains, after.domains);
  diff("volume", before.volumes, after.volumes);
  for (const std::string& e : after.errors) s << "  ! " << e << "\n";
  return s.str();
}

std::vector<std::string> FindOrphans(const Inventory& before, const Inventory& after,
                                     const std::set<std::string>& allowed) {
  std::vector<std::string> problems;
  std::map<std::string, std::string> owner_of;  // "node/pool/volume" -> "node/domain"
  for (const auto& [key, volumes] : after.owned_volumes) {
    const std::string node = key.substr(0, key.find('/'));
    for (const std::string& v : volumes) {
      const std::string volume = node + "/" + v;
      if (auto [it, added] = owner_of.emplace(volume, key); !added) {
        problems.push_back("duplicate: volume " + volume + " is owned by " + it->second + " and " + key);
      }
      if (!after.volumes.contains(volume)) problems.push_back(key + " owns " + volume + ", which does not exist");
    }
  }
  for (const auto& [key, line] : after.domains) {
    if (!before.domains.contains(key) && line.find(" owner=-") != std::string::npos) {
      problems.push_back("orphaned domain " + key + " (no owner mark)");
    }
  }
  for (const auto& [key, line] : after.volumes) {
    if (key.ends_with("/") || before.volumes.contains(key) || owner_of.contains(key) || allowed.contains(key)) continue;
    problems.push_back("orphaned volume " + key + " (" + line + ")");
  }
  for (const auto& [key, line] : before.domains) {
    if (!after.domains.contains(key)) problems.push_back("pre-existing domain " + key + " is gone");
  }
  for (const auto& [key, line] : before.volumes) {
    if (!after.volumes.contains(key)) problems.push_back("pre-existing volume " + key + " is gone");
  }
  return problems;
}

}  // namespace gitvirt::crash
