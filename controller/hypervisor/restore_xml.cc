#include "restore_xml.h"

#include <pugixml.hpp>

#include <filesystem>
#include <set>
#include <sstream>
#include <vector>

#include "domain_xml.h"

namespace gitvirt {
namespace {

std::string_view LocalName(std::string_view name) {
  const auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

bool IsOwnerElement(pugi::xml_node node) {
  if (LocalName(node.name()) != "owner") return false;
  for (pugi::xml_attribute a : node.attributes()) {
    if (std::string_view(a.name()).starts_with("xmlns") && a.value() == kOwnerNamespace) return true;
  }
  return false;
}

}  // namespace

Result<std::string> RewriteDomainForRestore(const std::string& xml, const std::string& new_name,
                                            const std::map<std::string, StorageRef>& volumes,
                                            bool managed, const std::string& job) {
  auto parsed = ParseDomainXml(xml);
  if (!parsed) return std::unexpected(parsed.error().Wrap("the backup's domain XML"));
  pugi::xml_document doc;
  if (!doc.load_string(xml.c_str())) return Fail(ErrorCode::kInvalidArgument, "the backup's domain XML is not XML");
  pugi::xml_node dom = doc.child("domain");
  const std::string old_name = dom.child("name").text().as_string();
  dom.child("name").text().set(new_name.c_str());
  dom.remove_child("uuid");
  dom.remove_child("id");

  std::set<std::string> placed;
  pugi::xml_node devices = dom.child("devices");
  std::vector<pugi::xml_node> drop;
  for (pugi::xml_node d : devices.children("disk")) {
    const std::string alias = d.child("alias").attribute("name").as_string();
    const std::string device = d.attribute("device").as_string("disk");
    if (alias == "ua-cidata") {
      drop.push_back(d);
      continue;
    }
    if (device != "disk") continue;  // cdroms of Images stay as they are
    const std::string disk = alias.starts_with("ua-disk-") ? alias.substr(8) : "";
    auto it = volumes.find(disk);
    if (disk.empty() || it == volumes.end()) {
      drop.push_back(d);
      continue;
    }
    placed.insert(disk);
    d.attribute("type") ? d.attribute("type").set_value("volume") : d.append_attribute("type").set_value("volume");
    d.remove_child("source");
    d.remove_child("backingStore");
    pugi::xml_node source = d.insert_child_after("source", d.child("driver"));
    source.append_attribute("pool") = it->second.pool.c_str();
    source.append_attribute("volume") = it->second.volume.c_str();
  }
  for (pugi::xml_node d : drop) devices.remove_child(d);
  for (const auto& [disk, ref] : volumes) {
    if (!placed.contains(disk)) {
      return Fail(ErrorCode::kNotFound, "the backup's domain XML has no disk " + disk);
    }
  }
  for (pugi::xml_node nic : devices.children("interface")) nic.remove_child("mac");
  if (pugi::xml_node os = dom.child("os")) os.remove_child("nvram");
  // A console log named after the old VM would be shared with it.
  for (pugi::xml_node serial : devices.children("serial")) {
    for (const char* child : {"log"}) {
      pugi::xml_node log = serial.child(child);
      if (!log) continue;
      std::filesystem::path file = log.attribute("file").as_string();
      if (file.filename() == old_name + ".log") {
        log.attribute("file").set_value((file.parent_path() / (new_name + ".log")).string().c_str());
      }
    }
  }

  if (pugi::xml_node metadata = dom.child("metadata")) {
    for (pugi::xml_node c = metadata.first_child(); c;) {
      pugi::xml_node next = c.next_sibling();
      if (IsOwnerElement(c)) metadata.remove_child(c);
      c = next;
    }
    if (managed && parsed->owner) {
      Ownership owner = *parsed->owner;
      owner.name = new_name;
      owner.job = job;
      owner.created_volumes.clear();
      for (const auto& [disk, ref] : volumes) owner.created_volumes.push_back(ref.pool + "/" + ref.volume);
      owner.cloud_init_hash.clear();
      pugi::xml_document owner_doc;
      owner_doc.load_string(RenderOwnerXml(owner).c_str());
      metadata.append_copy(owner_doc.first_child());
    }
    if (!metadata.first_child()) dom.remove_child(metadata);
  }
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration);
  return out.str();
}

}  // namespace gitvirt
