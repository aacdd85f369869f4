// The Backups port of the libvirt adapter: libvirt's push-mode backup (virDomainBackupBegin),
// every disk copied by QEMU at one instant while the guest runs.
#include <spdlog/spdlog.h>

#include <pugixml.hpp>

#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "gitvirt/core/units.h"
#include "libvirt_node.h"
#include "lookup.h"

namespace gitvirt {
namespace {

using namespace libvirt;

// A backup job an interrupted earlier attempt left running wrote into files about to be
// replaced: it is aborted. A job of another kind is not ours to abort.
Result<void> AbortLeftoverBackupJob(const LibvirtNode& node, virDomainPtr dom, const std::string& name) {
  virDomainJobInfo info{};
  if (virDomainGetJobInfo(dom, &info) != 0 || info.type == VIR_DOMAIN_JOB_NONE) return {};
  int type = 0, nparams = 0;
  virTypedParameterPtr params = nullptr;
  int operation = 0;
  if (virDomainGetJobStats(dom, &type, &params, &nparams, 0) == 0) {
    virTypedParamsGetInt(params, nparams, VIR_DOMAIN_JOB_OPERATION, &operation);
    virTypedParamsFree(params, nparams);
  }
  if (operation != VIR_DOMAIN_JOB_OPERATION_BACKUP) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the domain is busy with another job (operation " + std::to_string(operation) + ")");
  }
  node.log().warn("node={} vm={} aborting a backup job left by an earlier attempt", node.name(), name);
  virDomainAbortJob(dom);
  for (int i = 0; i < 100 && virDomainGetJobInfo(dom, &info) == 0 && info.type != VIR_DOMAIN_JOB_NONE; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return {};
}

}  // namespace

Result<void> LibvirtBackups::CopyDisks(const std::string& name, const std::map<std::string, DiskBackupFile>& disks,
                                       std::chrono::seconds timeout) {
  if (!node_.capabilities().backup) {
    return Fail(ErrorCode::kUnsupported,
                "node " + node_.name() + " (" + node_.capabilities().driver + " driver) cannot take live backups",
                "backing up " + name);
  }
  const std::string context = "backing up " + name + " on " + node_.name();
  NodeConnection& connection = node_.connection();
  // The copies are files of QEMU's, not volumes yet: nothing a copy of the node's state keeps.
  auto begun = connection.Change<void>(context, Touched{}, [&](virConnectPtr c) -> Result<void> {
    auto dom = LookupDomain(c, name);
    if (!dom) return std::unexpected(dom.error());
    if (virDomainIsActive(dom->get()) != 1) {
      return Fail(ErrorCode::kFailedPrecondition, "a live backup needs a running (or paused) domain");
    }
    if (auto ok = AbortLeftoverBackupJob(node_, dom->get(), name); !ok) return ok;
    // Every disk device of the running domain is listed: ours by alias, the rest (cdroms,
    // disks not asked for) with backup='no'.
    pugi::xml_document live;
    live.load_string(TakeString(virDomainGetXMLDesc(dom->get(), 0)).c_str());
    pugi::xml_document doc;
    pugi::xml_node root = doc.append_child("domainbackup");
    root.append_attribute("mode") = "push";
    pugi::xml_node list = root.append_child("disks");
    std::set<std::string> found;
    for (pugi::xml_node dn : live.child("domain").child("devices").children("disk")) {
      const std::string target = dn.child("target").attribute("dev").as_string();
      if (target.empty()) continue;
      const std::string alias = dn.child("alias").attribute("name").as_string();
      pugi::xml_node d = list.append_child("disk");
      d.append_attribute("name") = target.c_str();
      const std::string disk = alias.starts_with("ua-disk-") ? alias.substr(8) : "";
      auto it = disks.find(disk);
      if (disk.empty() || it == disks.end() || std::string_view(dn.attribute("device").as_string()) != "disk") {
        d.append_attribute("backup") = "no";
        continue;
      }
      found.insert(disk);
      d.append_attribute("backup") = "yes";
      d.append_attribute("type") = "file";
      d.append_child("target").append_attribute("file") = it->second.file.c_str();
      d.append_child("driver").append_attribute("type") = it->second.format.c_str();
      // A file of this node's, where the controller can see it; elsewhere the caller deletes
      // its leftovers through libvirt.
      if (node_.config().IsLocal()) {
        std::error_code ec;
        std::filesystem::remove(it->second.file, ec);
      }
    }
    for (const auto& [disk, _] : disks) {
      if (!found.contains(disk)) return Fail(ErrorCode::kNotFound, "the running domain has no disk " + disk);
    }
    std::ostringstream xml;
    doc.save(xml, "", pugi::format_raw | pugi::format_no_declaration);
    if (virDomainBackupBegin(dom->get(), xml.str().c_str(), nullptr, 0) < 0) return std::unexpected(LastError(""));
    return {};
  });
  if (!begun) return begun;
  // Wait for the job in short calls, so a reconnect is never blocked behind the wait.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto state = connection.Query<int>(context, [&](virConnectPtr c) -> Result<int> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      virDomainJobInfo info{};
      if (virDomainGetJobInfo(dom->get(), &info) < 0) return std::unexpected(LastError("reading the job"));
      return info.type;
    });
    if (!state) return std::unexpected(state.error());
    if (*state == VIR_DOMAIN_JOB_NONE) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      (void)connection.Query<void>(context, [&](virConnectPtr c) -> Result<void> {
        auto dom = LookupDomain(c, name);
        if (dom) virDomainAbortJob(dom->get());
        return {};
      });
      return Fail(ErrorCode::kTimeout,
                  "the backup job did not finish within " + FormatDuration(timeout) + "; it was aborted", context);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // How it ended: the completed job's statistics.
  return connection.Query<void>(context, [&](virConnectPtr c) -> Result<void> {
    auto dom = LookupDomain(c, name);
    if (!dom) return std::unexpected(dom.error());
    int type = 0, nparams = 0;
    virTypedParameterPtr params = nullptr;
    if (virDomainGetJobStats(dom->get(), &type, &params, &nparams, VIR_DOMAIN_JOB_STATS_COMPLETED) < 0) {
      return std::unexpected(LastError("reading the completed job"));
    }
    const char* message = nullptr;
    virTypedParamsGetString(params, nparams, VIR_DOMAIN_JOB_ERRMSG, &message);
    const std::string why = message != nullptr ? message : "";
    virTypedParamsFree(params, nparams);
    if (type != VIR_DOMAIN_JOB_COMPLETED) {
      return Fail(ErrorCode::kInternal, "the backup job failed" + (why.empty() ? "" : ": " + why));
    }
    return {};
  });
}

}  // namespace gitvirt
