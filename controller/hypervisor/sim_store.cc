#include "sim_store.h"

#include "domain_xml.h"

#include <pugixml.hpp>

#include <algorithm>
#include <atomic>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace gitvirt::libvirt {
namespace {

namespace fs = std::filesystem;
constexpr const char* kTestNamespace = "http://libvirt.org/schemas/domain/test/1.0";

Result<void> WriteAtomically(const std::string& path, const std::string& content) {
  // Unique per call: threads of one process may write the same file at once.
  static std::atomic<unsigned long> counter{0};
  const std::string tmp = path + ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) return Fail(ErrorCode::kIo, "cannot write", tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Fail(ErrorCode::kIo, ec.message(), path);
  return {};
}

Result<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot read", path);
  std::string out;
  in.seekg(0, std::ios::end);
  out.resize(static_cast<std::size_t>(std::max<std::streamoff>(0, in.tellg())));
  in.seekg(0);
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  if (!in) return Fail(ErrorCode::kIo, "cannot read", path);
  return out;
}

// flock(2) on the node's lock file, released when destroyed (or by the kernel when the process
// dies, so a crash leaves nothing stale).
class FlockGuard {
 public:
  static Result<FlockGuard> Take(const std::string& path, int operation) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Fail(ErrorCode::kIo, std::strerror(errno), "opening the lock file " + path);
    while (::flock(fd, operation) != 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return Fail(ErrorCode::kIo, std::strerror(e), "locking " + path);
    }
    return FlockGuard(fd);
  }
  FlockGuard(FlockGuard&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FlockGuard& operator=(FlockGuard&&) = delete;
  ~FlockGuard() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit FlockGuard(int fd) : fd_(fd) {}
  int fd_ = -1;
};

constexpr std::string_view kSnapshotMagic = "gitvirt-sim-snapshot 1";

std::string Save(const pugi::xml_document& doc) {
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration);
  return out.str();
}

// The test driver's "default" network of a new node.
pugi::xml_document DefaultNetwork() {
  pugi::xml_document doc;
  pugi::xml_node net = doc.append_child("network");
  net.append_child("name").text().set("default");
  net.append_child("bridge").append_attribute("name") = "virbr0";
  net.append_child("forward");
  pugi::xml_node ip = net.append_child("ip");
  ip.append_attribute("address") = "192.168.122.1";
  ip.append_attribute("netmask") = "255.255.255.0";
  pugi::xml_node range = ip.append_child("dhcp").append_child("range");
  range.append_attribute("start") = "192.168.122.2";
  range.append_attribute("end") = "192.168.122.254";
  return doc;
}

// The file name for a domain: names are [a-z0-9.-] for gitvirt's VMs, but hand-made domains
// can be anything; keep it a single path component.
std::string SafeName(const std::string& name) {
  std::string out;
  for (char c : name) {
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_') ? c : '_';
  }
  return out;
}

}  // namespace

// One change of the node's files: the process's change mutex for its whole life; the exclusive
// flock and the generation increment from its first write (a change that writes nothing, such
// as an index that is already right, leaves the generation alone).
class SimStore::Change {
 public:
  explicit Change(SimStore& store) : store_(store), mu_(store.change_mu_) {}

  // Excludes other processes' changes and loads (to read the files as one consistent state).
  Result<void> Lock() {
    if (lock_) return {};
    auto lock = FlockGuard::Take(store_.dir_ + "/lock", LOCK_EX);
    if (!lock) return std::unexpected(lock.error());
    lock_.emplace(std::move(*lock));
    return {};
  }

  Result<void> BeforeWrite() {
    if (bumped_) return {};
    if (auto ok = Lock(); !ok) return ok;
    const std::uint64_t next = store_.Generation().value_or(0) + 1;
    if (auto ok = WriteAtomically(store_.dir_ + "/generation", std::to_string(next) + "\n"); !ok) return ok;
    bumped_ = true;
    return {};
  }

 private:
  SimStore& store_;
  std::lock_guard<std::mutex> mu_;
  std::optional<FlockGuard> lock_;
  bool bumped_ = false;
};

SimStore::SimStore(std::string node_file)
    : node_file_(fs::absolute(node_file).lexically_normal().string()), dir_(node_file_ + ".d") {}

std::string SimStore::Uri() const { return "test://" + node_file_; }

std::string SimStore::DomainFile(const std::string& name) const {
  return dir_ + "/domains/" + SafeName(name) + ".xml";
}
std::string SimStore::PoolFile(const std::string& name) const {
  return dir_ + "/pools/" + SafeName(name) + ".xml";
}

Result<void> SimStore::EnsureExists(const NodeConfig& node) {
  Change change(*this);
  std::error_code ec;
  for (const char* sub : {"domains", "pools", "networks"}) {
    fs::create_directories(dir_ + "/" + sub, ec);
    if (ec) return Fail(ErrorCode::kIo, ec.message(), dir_);
  }
  cpus_ = node.capacity_vcpus.value_or(16);
  memory_ = node.capacity_memory.value_or(64ULL << 30);
  // A node without a generation (new, or written by an older gitvirt) gets one, so its
  // snapshots can be trusted from now on.
  if (!Generation()) {
    if (auto ok = change.BeforeWrite(); !ok) return ok;
  }
  if (fs::exists(node_file_)) return WriteIndex(change);  // capacity follows the config

  const std::string network = dir_ + "/networks/default.xml";
  if (!fs::exists(network)) {
    if (auto ok = change.BeforeWrite(); !ok) return ok;
    if (auto ok = WriteAtomically(network, Save(DefaultNetwork())); !ok) return ok;
  }
  std::vector<PoolConfig> pools = node.pools;
  if (std::none_of(pools.begin(), pools.end(), [](const PoolConfig& p) { return p.name == "default"; })) {
    pools.push_back(PoolConfig{"default", "/var/lib/gitvirt/images"});
  }
  for (const PoolConfig& pool : pools) {
    if (fs::exists(PoolFile(pool.name))) continue;
    pugi::xml_document doc;
    pugi::xml_node p = doc.append_child("pool");
    p.append_attribute("type") = "dir";
    p.append_child("name").text().set(pool.name.c_str());
    p.append_child("target").append_child("path").text().set(pool.path.c_str());
    if (auto ok = change.BeforeWrite(); !ok) return ok;
    auto ok = WriteAtomically(PoolFile(pool.name), Save(doc));
    if (!ok) return ok;
  }
  return WriteIndex(change);
}

Result<void> SimStore::WriteIndex(Change& change) {
  // Listed under the lock: another process's change may be adding or removing files.
  if (auto ok = change.Lock(); !ok) return ok;
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child("node");
  pugi::xml_node cpu = root.append_child("cpu");
  for (const auto& [name, value] : {std::pair<const char*, int>{"nodes", 1}, {"sockets", 1}, {"cores", cpus_},
                                    {"threads", 1}, {"active", cpus_}, {"mhz", 3000}}) {
    cpu.append_child(name).text().set(value);
  }
  cpu.append_child("model").text().set("x86_64");
  root.append_child("memory").text().set(memory_ / 1024);
  for (const char* kind : {"networks", "pools", "domains"}) {
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(dir_ + "/" + kind)) {
      if (entry.path().extension() == ".xml") files.push_back(entry.path().filename().string());
    }
    std::sort(files.begin(), files.end());
    const std::string element = std::string(kind).substr(0, std::string(kind).size() - 1);
    for (const std::string& f : files) {
      // Relative to the node file's directory, as the test driver resolves them.
      const std::string file = fs::path(dir_).filename().string() + "/" + kind + "/" + f;
      root.append_child(element.c_str()).append_attribute("file") = file.c_str();
    }
  }
  const std::string index = Save(doc);
  // Unchanged (every open asks, for the capacity): no write, so the generation stays.
  if (auto existing = ReadWhole(node_file_); existing && *existing == index) return {};
  if (auto ok = change.BeforeWrite(); !ok) return ok;
  return WriteAtomically(node_file_, index);
}

Result<Connection> SimStore::Open(std::optional<std::uint64_t>& generation) {
  // Shared: loads exclude changes (a change is never half-loaded), not each other.
  auto lock = FlockGuard::Take(dir_ + "/lock", LOCK_SH);
  if (!lock) return std::unexpected(lock.error());
  generation = Generation();
  Connection c(virConnectOpen(Uri().c_str()));
  if (!c) return std::unexpected(LastError("opening simulated node " + node_file_));
  return c;
}

std::optional<std::uint64_t> SimStore::Generation() const {
  auto text = ReadWhole(dir_ + "/generation");
  if (!text || text->empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : *text) {
    if (c == '\n') break;
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

namespace {

// The snapshot file's first lines: magic, generation, key.
std::string SnapshotHeader(std::uint64_t generation, const std::string& key) {
  std::string header;
  header.append(kSnapshotMagic).append("\n").append(std::to_string(generation)).append("\n").append(key).append("\n");
  return header;
}

}  // namespace

std::optional<std::string> SimStore::ReadSnapshot(std::uint64_t generation, const std::string& key) const {
  auto content = ReadWhole(dir_ + "/observed.snapshot");
  if (!content) return std::nullopt;
  const std::string header = SnapshotHeader(generation, key);
  if (!content->starts_with(header)) return std::nullopt;
  return content->substr(header.size());
}

Result<void> SimStore::WriteSnapshot(std::uint64_t generation, const std::string& key,
                                     const std::string& payload) const {
  std::string content = SnapshotHeader(generation, key);
  content += payload;
  return WriteAtomically(dir_ + "/observed.snapshot", content);
}

Result<void> SimStore::AfterOpen(virConnectPtr conn) {
  // The test driver's node parser keeps domains and their run state, but not autostart: we keep
  // it in our own metadata element and set it again.
  virDomainPtr* domains = nullptr;
  const int n = virConnectListAllDomains(conn, &domains, 0);
  if (n < 0) return std::unexpected(LastError("listing simulated domains"));
  for (int i = 0; i < n; ++i) {
    Domain dom(domains[i]);
    const std::string xml = TakeString(
        virDomainGetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, kSimNamespace, VIR_DOMAIN_AFFECT_CONFIG));
    if (xml.find("autostart=\"yes\"") != std::string::npos) virDomainSetAutostart(dom.get(), 1);
  }
  free(domains);
  return {};
}

Result<void> SimStore::SaveDomain(virConnectPtr conn, const std::string& name) {
  Change change(*this);  // read and write as one: a later read is never overwritten by an older one
  Domain dom(virDomainLookupByName(conn, name.c_str()));
  if (!dom) {
    if (LastErrorCode() == VIR_ERR_NO_DOMAIN) return RemoveDomainLocked(change, name);
    return std::unexpected(LastError("saving simulated domain " + name));
  }
  const std::string xml = TakeString(virDomainGetXMLDesc(dom.get(), VIR_DOMAIN_XML_INACTIVE));
  pugi::xml_document doc;
  if (!doc.load_string(xml.c_str())) return Fail(ErrorCode::kInternal, "unparseable domain XML", name);
  pugi::xml_node root = doc.child("domain");
  root.append_attribute("xmlns:test") = kTestNamespace;

  int autostart = 0;
  virDomainGetAutostart(dom.get(), &autostart);
  pugi::xml_node metadata = root.child("metadata") ? root.child("metadata") : root.prepend_child("metadata");
  for (pugi::xml_node c = metadata.first_child(); c;) {
    pugi::xml_node next = c.next_sibling();
    if (std::string_view(c.name()).ends_with(":state") && c.attribute("xmlns:sim")) metadata.remove_child(c);
    c = next;
  }
  pugi::xml_node sim = metadata.append_child("sim:state");
  sim.append_attribute("xmlns:sim") = kSimNamespace;
  sim.append_attribute("autostart") = autostart ? "yes" : "no";

  int state = VIR_DOMAIN_SHUTOFF, reason = 0;
  virDomainGetState(dom.get(), &state, &reason, 0);
  if (virDomainIsActive(dom.get()) == 1) {
    root.append_child("test:runstate").text().set(state);
  } else {
    root.append_child("test:runstate").text().set(VIR_DOMAIN_SHUTOFF);
  }

  virDomainSnapshotPtr* snapshots = nullptr;
  const int count = virDomainListAllSnapshots(dom.get(), &snapshots, VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL);
  for (int i = 0; i < count; ++i) {
    Snapshot snap(snapshots[i]);
    const std::string snap_xml = TakeString(virDomainSnapshotGetXMLDesc(snap.get(), 0));
    pugi::xml_document snap_doc;
    if (!snap_doc.load_string(snap_xml.c_str())) continue;
    pugi::xml_node s = root.append_child("test:domainsnapshot");
    for (pugi::xml_node c : snap_doc.child("domainsnapshot").children()) s.append_copy(c);
    s.append_child("active").text().set(virDomainSnapshotIsCurrent(snap.get(), 0) == 1 ? 1 : 0);
  }
  free(snapshots);

  const std::string path = DomainFile(name);
  const bool existed = fs::exists(path);
  if (auto ok = change.BeforeWrite(); !ok) return ok;
  auto ok = WriteAtomically(path, Save(doc));
  if (!ok) return ok;
  return existed ? Result<void>{} : WriteIndex(change);
}

Result<void> SimStore::RemoveDomain(const std::string& name) {
  Change change(*this);
  return RemoveDomainLocked(change, name);
}

Result<void> SimStore::RemoveDomainLocked(Change& change, const std::string& name) {
  std::error_code ec;
  if (!fs::exists(DomainFile(name), ec)) return {};
  if (auto ok = change.BeforeWrite(); !ok) return ok;
  if (!fs::remove(DomainFile(name), ec)) return {};
  return WriteIndex(change);
}

Result<void> SimStore::SavePool(virConnectPtr conn, const std::string& name) {
  Change change(*this);  // as SaveDomain
  Pool pool(virStoragePoolLookupByName(conn, name.c_str()));
  if (!pool) return std::unexpected(LastError("saving simulated pool " + name));
  pugi::xml_document doc;
  const std::string xml = TakeString(virStoragePoolGetXMLDesc(pool.get(), 0));
  if (!doc.load_string(xml.c_str())) return Fail(ErrorCode::kInternal, "unparseable pool XML", name);
  pugi::xml_node root = doc.child("pool");
  virStorageVolPtr* volumes = nullptr;
  const int n = virStoragePoolListAllVolumes(pool.get(), &volumes, 0);
  for (int i = 0; i < n; ++i) {
    Volume vol(volumes[i]);
    const std::string vol_xml = TakeString(virStorageVolGetXMLDesc(vol.get(), 0));
    pugi::xml_document vol_doc;
    if (vol_doc.load_string(vol_xml.c_str())) root.append_copy(vol_doc.child("volume"));
  }
  free(volumes);
  const std::string path = PoolFile(name);
  const bool existed = fs::exists(path);
  if (auto ok = change.BeforeWrite(); !ok) return ok;
  auto ok = WriteAtomically(path, Save(doc));
  if (!ok) return ok;
  return existed ? Result<void>{} : WriteIndex(change);
}

}  // namespace gitvirt::libvirt
