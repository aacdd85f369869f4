// The Snapshots port of the libvirt adapter. QEMU takes internal snapshots; for a domain with
// pflash (UEFI) firmware, where libvirt 9.0 refuses internal snapshots, an external disk-only
// one (each writable disk continues on a new overlay file, ExternalSnapshotOverlay). libvirt
// commits an external snapshot's overlay when it is deleted, but cannot revert to one: that
// revert is done here by hand (RevertExternal).
#include <spdlog/spdlog.h>

#include <pugixml.hpp>

#include <filesystem>
#include <sstream>

#include "domain_xml.h"
#include "libvirt_node.h"
#include "lookup.h"

namespace gitvirt {
namespace {

using namespace libvirt;

// Whether a domain boots pflash (UEFI) firmware.
bool UsesPflash(const pugi::xml_document& xml) {
  pugi::xml_node os = xml.child("domain").child("os");
  return std::string_view(os.attribute("firmware").as_string()) == "efi" ||
         std::string_view(os.child("loader").attribute("type").as_string()) == "pflash";
}

// The <disks> of an external disk-only snapshot named `snapshot`: every writable disk goes on
// a new qcow2 overlay next to its storage (ExternalSnapshotOverlay of the volume's or file's
// path, below any overlays it has already), cdroms and read-only disks are left out.
Result<void> ExternalSnapshotDisks(virConnectPtr c, const pugi::xml_document& live, const std::string& snapshot,
                                   pugi::xml_node root) {
  pugi::xml_node list = root.append_child("disks");
  for (pugi::xml_node d : live.child("domain").child("devices").children("disk")) {
    const std::string target = d.child("target").attribute("dev").as_string();
    if (target.empty()) continue;
    pugi::xml_node out = list.append_child("disk");
    out.append_attribute("name") = target.c_str();
    if (std::string_view(d.attribute("device").as_string("disk")) != "disk" || d.child("readonly")) {
      out.append_attribute("snapshot") = "no";
      continue;
    }
    pugi::xml_node source = d.child("source");
    std::string base = source.attribute("file").as_string();
    if (const std::string volume = source.attribute("volume").as_string(); !volume.empty()) {
      auto vol = LookupVolume(c, source.attribute("pool").as_string(), volume);
      if (!vol) return std::unexpected(vol.error());
      base = TakeString(virStorageVolGetPath(vol->get()));
    } else if (const auto at = base.find(kOverlayInfix); at != std::string::npos) {
      base = base.substr(0, at);  // on an overlay already: the new one goes next to the storage
    }
    if (base.empty()) {
      return Fail(ErrorCode::kUnsupported, "disk " + target + " is neither a volume nor a file: no external snapshot");
    }
    const std::string overlay = ExternalSnapshotOverlay(base, snapshot);
    std::error_code ec;
    if (std::filesystem::exists(overlay, ec)) {
      return Fail(ErrorCode::kAlreadyExists, "the overlay file " + overlay + " exists already");
    }
    out.append_attribute("snapshot") = "external";
    out.append_attribute("type") = "file";
    out.append_child("driver").append_attribute("type") = "qcow2";
    out.append_child("source").append_attribute("file") = overlay.c_str();
  }
  return {};
}

// Replaces an overlay file with an empty qcow2 one on `below`, through its pool.
Result<void> RecreateOverlay(virConnectPtr c, const std::string& overlay, const std::string& below,
                             const std::string& below_format) {
  Volume old(virStorageVolLookupByPath(c, overlay.c_str()));
  if (!old) return std::unexpected(LastError("looking up " + overlay));
  virStorageVolInfo info;
  if (virStorageVolGetInfo(old.get(), &info) < 0) return std::unexpected(LastError("reading " + overlay));
  Pool pool(virStoragePoolLookupByVolume(old.get()));
  if (!pool) return std::unexpected(LastError("finding the pool of " + overlay));
  const std::string volume_name = virStorageVolGetName(old.get());
  if (virStorageVolDelete(old.get(), 0) < 0) return std::unexpected(LastError("deleting " + overlay));
  pugi::xml_document doc;
  pugi::xml_node v = doc.append_child("volume");
  v.append_child("name").text().set(volume_name.c_str());
  v.append_child("capacity").text().set(std::to_string(info.capacity).c_str());
  pugi::xml_node target = v.append_child("target");
  target.append_child("format").append_attribute("type") = "qcow2";
  target.append_child("compat").text().set("1.1");
  pugi::xml_node backing = v.append_child("backingStore");
  backing.append_child("path").text().set(below.c_str());
  backing.append_child("format").append_attribute("type") = below_format.c_str();
  std::ostringstream xml;
  doc.save(xml, "", pugi::format_raw | pugi::format_no_declaration);
  Volume made(virStorageVolCreateXML(pool.get(), xml.str().c_str(), 0));
  if (!made) return std::unexpected(LastError("recreating " + overlay));
  return {};
}

// Reverting to an external disk-only snapshot, which libvirt 9.0 cannot do itself. The
// snapshot S put each disk on a new overlay O whose backing file holds the disk as it was at
// S; the snapshots taken after S are overlays stacked on O. So: the VM is stopped, the later
// snapshots are dropped (their metadata and their overlay files: they record states that no
// longer lead anywhere), O is recreated empty on the same backing file, the disk runs on O
// again, S is the current snapshot, and the VM is started again if it ran. As with
// `zfs rollback -r`, the snapshots after S are gone.
Result<void> RevertExternal(const LibvirtNode& node, virConnectPtr c, virDomainPtr dom, virDomainSnapshotPtr snap,
                            const pugi::xml_document& snapshot_xml) {
  const bool was_running = virDomainIsActive(dom) == 1;
  if (was_running && virDomainDestroy(dom) < 0) return std::unexpected(LastError("stopping it for the revert"));
  // QEMU and qemu-img made the overlay files: the pools list them after a refresh.
  virStoragePoolPtr* pools = nullptr;
  const int np = virConnectListAllStoragePools(c, &pools, VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE);
  for (int i = 0; i < np; ++i) {
    Pool p(pools[i]);
    if (virStoragePoolRefresh(p.get(), 0) < 0) virResetLastError();
  }
  free(pools);
  // Later snapshots, deepest first.
  virDomainSnapshotPtr* later = nullptr;
  const int n = virDomainSnapshotListAllChildren(snap, &later, VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS);
  if (n < 0) return std::unexpected(LastError("listing the snapshots after it"));
  std::vector<Snapshot> descendants;
  for (int i = 0; i < n; ++i) descendants.emplace_back(later[i]);
  free(later);
  std::vector<std::string> dropped_overlays;
  for (auto it = descendants.rbegin(); it != descendants.rend(); ++it) {
    pugi::xml_document child;
    child.load_string(TakeString(virDomainSnapshotGetXMLDesc(it->get(), 0)).c_str());
    for (pugi::xml_node d : child.child("domainsnapshot").child("disks").children("disk")) {
      if (std::string_view(d.attribute("snapshot").as_string()) != "external") continue;
      dropped_overlays.push_back(d.child("source").attribute("file").as_string());
    }
    if (virDomainSnapshotDelete(it->get(), VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY) < 0) {
      return std::unexpected(LastError(std::string("dropping snapshot ") + virDomainSnapshotGetName(it->get())));
    }
  }
  // The definition: each snapshotted disk runs on S's overlay, with the chain below it.
  pugi::xml_document domain;
  domain.load_string(TakeString(virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE)).c_str());
  for (pugi::xml_node d : snapshot_xml.child("domainsnapshot").child("disks").children("disk")) {
    if (std::string_view(d.attribute("snapshot").as_string()) != "external") continue;
    const std::string target = d.attribute("name").as_string();
    const std::string overlay = d.child("source").attribute("file").as_string();
    pugi::xml_node disk;
    for (pugi::xml_node x : domain.child("domain").child("devices").children("disk")) {
      if (target == x.child("target").attribute("dev").as_string()) disk = x;
    }
    if (!disk) return Fail(ErrorCode::kFailedPrecondition, "disk " + target + " is no longer defined");
    pugi::xml_node at = disk;  // S's overlay in the disk's chain
    while (at && overlay != at.child("source").attribute("file").as_string()) at = at.child("backingStore");
    if (!at || !at.child("backingStore").child("source")) {
      return Fail(ErrorCode::kFailedPrecondition,
                  "disk " + target + " no longer runs on " + overlay + ": cannot revert to this snapshot");
    }
    const std::string below = at.child("backingStore").child("source").attribute("file").as_string();
    const std::string below_format = at.child("backingStore").child("format").attribute("type").as_string("qcow2");
    if (below.empty()) return Fail(ErrorCode::kFailedPrecondition, "the layer under " + overlay + " is not a file");
    if (auto made = RecreateOverlay(c, overlay, below, below_format); !made) return made;
    pugi::xml_node source = disk.child("source");
    pugi::xml_node chain = disk.child("backingStore");
    disk.insert_copy_after(at.child("source"), source).remove_attribute("index");
    disk.insert_copy_after(at.child("backingStore"), chain);
    disk.remove_child(source);
    disk.remove_child(chain);
  }
  std::ostringstream redefined;
  domain.save(redefined, "", pugi::format_raw | pugi::format_no_declaration);
  Domain defined(virDomainDefineXML(c, redefined.str().c_str()));
  if (!defined) return std::unexpected(LastError("redefining it on the snapshot's overlays"));
  for (const std::string& file : dropped_overlays) {
    Volume v(virStorageVolLookupByPath(c, file.c_str()));
    if (v && virStorageVolDelete(v.get(), 0) < 0) {
      node.log().warn("node={} deleting overlay {} of a dropped snapshot failed: {}", node.name(), file,
                      LastError("").message);
    }
    if (!v) virResetLastError();
  }
  // S is the current snapshot again.
  const std::string xml = TakeString(virDomainSnapshotGetXMLDesc(snap, VIR_DOMAIN_SNAPSHOT_XML_SECURE));
  Snapshot current(virDomainSnapshotCreateXML(
      dom, xml.c_str(), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE | VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT));
  if (!current) return std::unexpected(LastError("marking the snapshot current"));
  if (was_running && virDomainCreate(dom) < 0) return std::unexpected(LastError("starting it again"));
  return {};
}

}  // namespace

Result<std::vector<ObservedSnapshot>> LibvirtSnapshots::List(const std::string& name) {
  return node_.connection().Query<std::vector<ObservedSnapshot>>(
      "listing snapshots of " + name, [&](virConnectPtr c) -> Result<std::vector<ObservedSnapshot>> {
        auto dom = LookupDomain(c, name);
        if (!dom) return std::unexpected(dom.error());
        return ReadSnapshots(dom->get());
      });
}

Result<SnapshotTaken> LibvirtSnapshots::Create(const std::string& name, const SnapshotRequest& request) {
  // The mark is what lets a policy's retention delete a snapshot: a snapshot made by hand may
  // not carry it, or retention would take it for the policy's own.
  if (request.policy.empty() && request.description.starts_with(kPolicyPrefix)) {
    return Fail(ErrorCode::kInvalidArgument, "a snapshot description may not start with \"" +
                                                 std::string(kPolicyPrefix) +
                                                 "\": that prefix marks the snapshots a SnapshotPolicy owns");
  }
  const bool test_driver = node_.capabilities().driver == "TEST";
  SnapshotTaken taken;
  auto made = node_.connection().Change<void>(
      "creating snapshot " + request.name + " of " + name, Touched::Domain(name), [&](virConnectPtr c) -> Result<void> {
        taken = SnapshotTaken{};
        auto dom = LookupDomain(c, name);
        if (!dom) return std::unexpected(dom.error());
        const bool active = virDomainIsActive(dom->get()) == 1;
        pugi::xml_document live;
        live.load_string(TakeString(virDomainGetXMLDesc(dom->get(), 0)).c_str());
        pugi::xml_document doc;
        pugi::xml_node root = doc.append_child("domainsnapshot");
        root.append_child("name").text().set(request.name.c_str());
        std::string description = request.description;
        if (!request.policy.empty()) description = std::string(kPolicyPrefix) + request.policy + "] " + description;
        if (!description.empty()) root.append_child("description").text().set(description.c_str());
        unsigned int flags = 0;
        bool started_paused = false;
        if (!test_driver && UsesPflash(live)) {
          // libvirt 9.0 refuses internal snapshots of a VM with pflash firmware, and cannot
          // delete the external snapshots it takes of a stopped one (their overlay chain is
          // not recorded): external, always of a running domain. A stopped VM is started
          // paused for it (its CPUs never run a guest instruction) and destroyed after.
          if (!active) {
            if (virDomainCreateWithFlags(dom->get(), VIR_DOMAIN_START_PAUSED) < 0) {
              return std::unexpected(LastError("starting it paused for an external snapshot"));
            }
            started_paused = true;
            live.reset();
            live.load_string(TakeString(virDomainGetXMLDesc(dom->get(), 0)).c_str());
          }
          if (auto disks = ExternalSnapshotDisks(c, live, request.name, root); !disks) {
            if (started_paused) virDomainDestroy(dom->get());
            return std::unexpected(disks.error());
          }
          flags = VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC;
          taken.kind = "external";
          if (started_paused) taken.note = "the VM was stopped: started paused for the snapshot and stopped again";
        }
        std::ostringstream xml;
        doc.save(xml, "", pugi::format_raw | pugi::format_no_declaration);
        // Quiesce: the guest agent freezes the filesystems around the snapshot (for internal
        // snapshots QEMU takes no QUIESCE flag, so the freeze is done here for both kinds).
        bool frozen = false;
        if (request.quiesce) {
          if (!active) {
            taken.note = "the VM is not running: nothing to quiesce";
          } else if (test_driver) {
            taken.note = "simulated node: no guest agent";
          } else if (const int n = virDomainFSFreeze(dom->get(), nullptr, 0, 0); n >= 0) {
            frozen = true;
            taken.frozen_filesystems = n;
          } else {
            taken.note = "the guest agent did not freeze the filesystems (" + LastError("").message + ")";
            node_.log().warn("node={} vm={} quiesce impossible: {}; snapshot taken without it", node_.name(), name,
                             taken.note);
          }
        }
        Snapshot s(virDomainSnapshotCreateXML(dom->get(), xml.str().c_str(), flags));
        const Error failed = s ? Error{} : LastError("");
        if (frozen) {
          if (virDomainFSThaw(dom->get(), nullptr, 0, 0) < 0) {
            node_.log().error("node={} vm={} thawing the guest's filesystems failed: {}", node_.name(), name,
                              LastError("").message);
          }
        }
        if (started_paused && virDomainDestroy(dom->get()) < 0) {
          const Error stop = LastError("stopping it again after the snapshot");
          return std::unexpected(s ? stop : failed);
        }
        if (!s) return std::unexpected(failed);
        taken.quiesced = frozen;
        return {};
      });
  if (!made) return std::unexpected(made.error());
  return taken;
}

Result<void> LibvirtSnapshots::Delete(const std::string& name, const std::string& snapshot) {
  return node_.connection().Change<void>(
      "deleting snapshot " + snapshot + " of " + name, Touched::Domain(name), [&](virConnectPtr c) -> Result<void> {
        auto dom = LookupDomain(c, name);
        if (!dom) return std::unexpected(dom.error());
        Snapshot s(virDomainSnapshotLookupByName(dom->get(), snapshot.c_str(), 0));
        if (!s) return std::unexpected(LastError(""));
        if (virDomainSnapshotDelete(s.get(), 0) < 0) return std::unexpected(LastError(""));
        return {};
      });
}

Result<void> LibvirtSnapshots::Revert(const std::string& name, const std::string& snapshot) {
  return node_.connection().Change<void>(
      "reverting " + name + " to snapshot " + snapshot, Touched::Domain(name), [&](virConnectPtr c) -> Result<void> {
        auto dom = LookupDomain(c, name);
        if (!dom) return std::unexpected(dom.error());
        Snapshot s(virDomainSnapshotLookupByName(dom->get(), snapshot.c_str(), 0));
        if (!s) return std::unexpected(LastError(""));
        pugi::xml_document xml;
        xml.load_string(TakeString(virDomainSnapshotGetXMLDesc(s.get(), VIR_DOMAIN_SNAPSHOT_XML_SECURE)).c_str());
        for (pugi::xml_node d : xml.child("domainsnapshot").child("disks").children("disk")) {
          if (std::string_view(d.attribute("snapshot").as_string()) == "external") {
            return RevertExternal(node_, c, dom->get(), s.get(), xml);
          }
        }
        if (virDomainRevertToSnapshot(s.get(), 0) < 0) return std::unexpected(LastError(""));
        return {};
      });
}

Result<SavedSnapshots> LibvirtSnapshots::Export(const std::string& name) {
  return node_.connection().Query<SavedSnapshots>(
      "reading the snapshots of " + name, [&](virConnectPtr c) -> Result<SavedSnapshots> {
        auto dom = LookupDomain(c, name);
        if (!dom) return std::unexpected(dom.error());
        virDomainSnapshotPtr* snaps = nullptr;
        const int n = virDomainListAllSnapshots(dom->get(), &snaps, VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL);
        if (n < 0) return std::unexpected(LastError(""));
        SavedSnapshots out;
        for (int i = 0; i < n; ++i) {
          Snapshot snap(snaps[i]);
          std::string xml = TakeString(virDomainSnapshotGetXMLDesc(snap.get(), VIR_DOMAIN_SNAPSHOT_XML_SECURE));
          if (virDomainSnapshotIsCurrent(snap.get(), 0) == 1) {
            // Marked for Import, which takes the mark off again.
            pugi::xml_document doc;
            doc.load_string(xml.c_str());
            doc.child("domainsnapshot").append_child("active").text().set(1);
            std::ostringstream marked;
            doc.save(marked, "", pugi::format_raw | pugi::format_no_declaration);
            xml = marked.str();
          }
          out.items.push_back(std::move(xml));
        }
        free(snaps);
        return out;
      });
}

Result<void> LibvirtSnapshots::Import(const std::string& name, const SavedSnapshots& snapshots) {
  if (snapshots.items.empty()) return {};
  return node_.connection().Change<void>(
      "redefining the snapshots of " + name + " on " + node_.name(), Touched::Domain(name),
      [&](virConnectPtr c) -> Result<void> {
        auto dom = LookupDomain(c, name);
        if (!dom) return std::unexpected(dom.error());
        for (const std::string& xml : snapshots.items) {
          // The current one is marked so in its XML (<active>1</active>).
          pugi::xml_document doc;
          doc.load_string(xml.c_str());
          pugi::xml_node root = doc.child("domainsnapshot");
          const bool current = root.child("active").text().as_int() == 1;
          root.remove_child("active");
          std::ostringstream plain;
          doc.save(plain, "", pugi::format_raw | pugi::format_no_declaration);
          unsigned int flags = VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE;
          if (current) flags |= VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT;
          Snapshot s(virDomainSnapshotCreateXML(dom->get(), plain.str().c_str(), flags));
          if (!s) return std::unexpected(LastError("redefining a snapshot"));
        }
        return {};
      });
}

}  // namespace gitvirt
