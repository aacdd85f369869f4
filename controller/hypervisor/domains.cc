// The Domains port of the libvirt adapter: definitions written, saved, restored and removed.
#include <pugixml.hpp>

#include <filesystem>
#include <mutex>
#include <sstream>

#include "domain_xml.h"
#include "libvirt_node.h"
#include "lookup.h"
#include "observe.h"
#include "restore_xml.h"

namespace gitvirt {
namespace {

using namespace libvirt;

// libvirt validates a definition against its RELAX NG schema with libxml2, whose first use
// initialises shared type tables without a lock (libxml2 2.9): two validations at once in one
// process can fail with "Unable to parse RNG ...". A remote daemon is libvirt's business; the
// in-process test driver is ours, so its validated defines take turns.
std::mutex& InProcessValidationMutex() {
  static std::mutex mu;
  return mu;
}

// A redefinition renders each disk on its storage; a disk that runs on external-snapshot
// overlays of that storage keeps them (its current source and the <backingStore> chain down
// to the storage), or the writes since the snapshot would be dropped and the snapshots broken.
void KeepOverlays(pugi::xml_document& rendered, const std::string& existing_xml) {
  pugi::xml_document existing;
  if (!existing.load_string(existing_xml.c_str())) return;
  auto is_overlay = [](pugi::xml_node at) {
    const std::string file = at.child("source").attribute("file").as_string();
    return std::filesystem::path(file).filename().string().find(kOverlayInfix) != std::string::npos &&
           at.child("backingStore").child("source");
  };
  auto same_source = [](pugi::xml_node a, pugi::xml_node b) {
    for (const char* attr : {"pool", "volume", "file", "dev"}) {
      if (std::string_view(a.attribute(attr).as_string()) != b.attribute(attr).as_string()) return false;
    }
    return true;
  };
  for (pugi::xml_node d : existing.child("domain").child("devices").children("disk")) {
    if (!is_overlay(d)) continue;
    pugi::xml_node storage = d;
    while (is_overlay(storage)) storage = storage.child("backingStore");
    const std::string alias = d.child("alias").attribute("name").as_string();
    for (pugi::xml_node r : rendered.child("domain").child("devices").children("disk")) {
      if (alias.empty() || alias != r.child("alias").attribute("name").as_string()) continue;
      if (!same_source(storage.child("source"), r.child("source"))) break;  // new storage: no overlays
      if (pugi::xml_attribute type = r.attribute("type")) {
        type.set_value("file");
      } else {
        r.append_attribute("type") = "file";
      }
      r.remove_child("source");
      r.remove_child("backingStore");
      pugi::xml_node source = r.child("driver") ? r.insert_copy_after(d.child("source"), r.child("driver"))
                                                : r.prepend_copy(d.child("source"));
      source.remove_attribute("index");
      r.insert_copy_after(d.child("backingStore"), source);
      break;
    }
  }
}

}  // namespace

Result<ObservedVm> LibvirtDomains::ObserveVm(const std::string& name) {
  return node_.connection().Query<ObservedVm>("observing " + name, [&](virConnectPtr c) -> Result<ObservedVm> {
    auto dom = LookupDomain(c, name);
    if (!dom) return std::unexpected(dom.error());
    return ObserveDomain(node_, c, dom->get());
  });
}

Result<void> LibvirtDomains::Define(const DomainDefinition& def) {
  const std::string& name = def.vm.meta.name;
  const std::string rendered = RenderDomainXml(def, node_.virt_type());
  return node_.connection().Change<void>(
      "defining " + name + " on " + node_.name(), Touched::Domain(name), [&](virConnectPtr c) -> Result<void> {
        std::string xml = rendered;
        // A redefinition must carry the domain's UUID: without one libvirt makes up a new UUID
        // and refuses ("domain 'x' already exists with uuid ...").
        // An existing domain's disks may run on external snapshot overlays: the new definition
        // keeps them. A new domain (def.uuid == "") has neither.
        std::string uuid = def.uuid.value_or("");
        std::string existing_xml;
        if (!def.uuid || !def.uuid->empty()) {
          if (Domain existing{virDomainLookupByName(c, name.c_str())}) {
            char buf[VIR_UUID_STRING_BUFLEN];
            if (virDomainGetUUIDString(existing.get(), buf) == 0) uuid = buf;
            existing_xml = TakeString(virDomainGetXMLDesc(existing.get(), VIR_DOMAIN_XML_INACTIVE));
          }
        }
        if (!uuid.empty()) {
          pugi::xml_document doc;
          doc.load_string(xml.c_str());
          pugi::xml_node dom = doc.child("domain");
          dom.insert_child_after("uuid", dom.child("name")).text().set(uuid.c_str());
          if (!existing_xml.empty()) KeepOverlays(doc, existing_xml);
          std::ostringstream out;
          doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration);
          xml = out.str();
        }
        std::unique_lock<std::mutex> validating;
        if (node_.uri().starts_with("test:///")) validating = std::unique_lock(InProcessValidationMutex());
        Domain dom(virDomainDefineXMLFlags(c, xml.c_str(), VIR_DOMAIN_DEFINE_VALIDATE));
        validating = {};
        if (!dom) return std::unexpected(LastError(""));
        // A new domain starts with autostart off: only say otherwise.
        const bool is_new = def.uuid && def.uuid->empty();
        if ((!is_new || def.vm.spec.autostart) &&
            virDomainSetAutostart(dom.get(), def.vm.spec.autostart ? 1 : 0) < 0) {
          return std::unexpected(LastError("setting autostart"));
        }
        return {};
      });
}

Result<SavedDomain> LibvirtDomains::Save(const std::string& name) {
  return node_.connection().Query<SavedDomain>("reading the definition of " + name,
                                               [&](virConnectPtr c) -> Result<SavedDomain> {
                                                 auto dom = LookupDomain(c, name);
                                                 if (!dom) return std::unexpected(dom.error());
                                                 return SavedDomain{TakeString(virDomainGetXMLDesc(
                                                     dom->get(), VIR_DOMAIN_XML_INACTIVE))};
                                               });
}

Result<void> LibvirtDomains::Restore(const SavedDomain& saved) {
  return DefineXml(DefinitionName(saved), saved.bytes);
}

Result<void> LibvirtDomains::DefineRestored(const RestoredDomain& restored) {
  auto xml = RewriteDomainForRestore(restored.from.bytes, restored.name, restored.volumes, restored.managed,
                                     restored.job);
  if (!xml) return std::unexpected(xml.error());
  return DefineXml(restored.name, *xml);
}

Result<void> LibvirtDomains::DefineXml(const std::string& name, const std::string& xml) {
  return node_.connection().Change<void>("restoring the definition of " + name, Touched::Domain(name),
                                         [&](virConnectPtr c) -> Result<void> {
    Domain dom(virDomainDefineXML(c, xml.c_str()));
    if (!dom) return std::unexpected(LastError(""));
    return {};
  });
}

Result<void> LibvirtDomains::Undefine(const std::string& name) { return UndefineDomain(name, false); }

Result<void> LibvirtDomains::UndefineKeepingFirmwareState(const std::string& name) {
  return UndefineDomain(name, true);
}

Result<void> LibvirtDomains::UndefineDomain(const std::string& name, bool keep_firmware_state) {
  return node_.connection().Change<void>(
      "undefining " + name + " on " + node_.name(), Touched::Domain(name), [&](virConnectPtr c) -> Result<void> {
        auto dom = LookupDomain(c, name);
        if (!dom) return std::unexpected(dom.error());
        if (virDomainIsActive(dom->get()) == 1 && virDomainDestroy(dom->get()) < 0) {
          return std::unexpected(LastError("destroying before undefine"));
        }
        unsigned int flags = VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | VIR_DOMAIN_UNDEFINE_MANAGED_SAVE;
        if (node_.capabilities().driver != "TEST") {
          flags |= VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
          flags |= keep_firmware_state ? VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | VIR_DOMAIN_UNDEFINE_KEEP_TPM
                                       : VIR_DOMAIN_UNDEFINE_NVRAM;
        }
        if (virDomainUndefineFlags(dom->get(), flags) < 0) return std::unexpected(LastError(""));
        return {};
      });
}

Result<void> LibvirtDomains::SetOwner(const std::string& name, const std::optional<Ownership>& owner) {
  return node_.connection().Change<void>("setting the owner of " + name, Touched::Domain(name),
                                         [&](virConnectPtr c) -> Result<void> {
    auto dom = LookupDomain(c, name);
    if (!dom) return std::unexpected(dom.error());
    unsigned int flags = VIR_DOMAIN_AFFECT_CONFIG;
    if (virDomainIsActive(dom->get()) == 1) flags |= VIR_DOMAIN_AFFECT_LIVE;
    std::string xml;
    if (owner) {
      // SetMetadata wants the element without its xmlns; libvirt adds the key's namespace.
      pugi::xml_document doc;
      doc.load_string(RenderOwnerXml(*owner).c_str());
      pugi::xml_node root = doc.first_child();
      root.set_name("owner");
      root.remove_attribute(("xmlns:" + std::string(kOwnerPrefix)).c_str());
      std::ostringstream out;
      doc.save(out, "", pugi::format_raw | pugi::format_no_declaration);
      xml = out.str();
    }
    const std::string key(kOwnerPrefix), uri(kOwnerNamespace);
    if (virDomainSetMetadata(dom->get(), VIR_DOMAIN_METADATA_ELEMENT, owner ? xml.c_str() : nullptr,
                             owner ? key.c_str() : nullptr, uri.c_str(), flags) < 0) {
      return std::unexpected(LastError(""));
    }
    return {};
  });
}

Result<void> LibvirtDomains::SetAutostart(const std::string& name, bool autostart) {
  return node_.connection().Change<void>("setting autostart of " + name, Touched::Domain(name),
                                         [&](virConnectPtr c) -> Result<void> {
    auto dom = LookupDomain(c, name);
    if (!dom) return std::unexpected(dom.error());
    if (virDomainSetAutostart(dom->get(), autostart ? 1 : 0) < 0) return std::unexpected(LastError(""));
    return {};
  });
}

Result<std::vector<DiskLocation>> LibvirtDomains::Disks(const std::string& name) {
  auto saved = Save(name);
  if (!saved) return std::unexpected(saved.error());
  auto parsed = ParseDomainXml(saved->bytes);
  if (!parsed) return std::unexpected(parsed.error().Wrap("the definition of " + name));
  return DiskLocations(*parsed);
}

}  // namespace gitvirt
