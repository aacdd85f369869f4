#include "gitvirt/core/cloud_init.h"

#include <nlohmann/json.hpp>

#include <cstdio>

#include "gitvirt/core/json.h"

namespace gitvirt {
namespace {

using nlohmann::json;

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

json UserJson(const CloudInitUser& user, const std::map<std::string, std::string>& password_hashes) {
  json u = {{"name", user.name}};
  if (!user.ssh_authorized_keys.empty()) u["ssh_authorized_keys"] = user.ssh_authorized_keys;
  std::string hash = user.password_hash;
  if (user.password_from) {
    auto it = password_hashes.find(user.name);
    if (it != password_hashes.end()) hash = it->second;
  }
  if (!hash.empty()) {
    u["passwd"] = hash;
    u["lock_passwd"] = false;
  }
  if (!user.sudo.empty()) u["sudo"] = user.sudo;
  if (!user.groups.empty()) u["groups"] = Join(user.groups, ", ");
  if (!user.shell.empty()) u["shell"] = user.shell;
  return u;
}

json NicConfig(const IpConfig& ip, const CloudInit& ci, const std::string& mac, bool first) {
  json nic = {{"match", {{"macaddress", mac}}}};
  json addresses = json::array();
  if (ip.v4 == IpMode::kDhcp) nic["dhcp4"] = true;
  if (ip.v4 == IpMode::kStatic) {
    addresses.push_back(ip.v4_address);
    if (!ip.v4_gateway.empty()) nic["gateway4"] = ip.v4_gateway;
  }
  if (ip.v6 == IpMode::kDhcp) nic["dhcp6"] = true;
  if (ip.v6 == IpMode::kAuto) nic["accept-ra"] = true;
  if (ip.v6 == IpMode::kStatic) {
    addresses.push_back(ip.v6_address);
    if (!ip.v6_gateway.empty()) nic["gateway6"] = ip.v6_gateway;
  }
  if (!addresses.empty()) nic["addresses"] = addresses;
  // Resolvers go on the first NIC (cloud-init applies them system-wide).
  if (first && (!ci.nameservers.empty() || !ci.search_domains.empty())) {
    json ns = json::object();
    if (!ci.nameservers.empty()) ns["addresses"] = ci.nameservers;
    if (!ci.search_domains.empty()) ns["search"] = ci.search_domains;
    nic["nameservers"] = ns;
  }
  return nic;
}

}  // namespace

std::string NicMac(const VirtualMachine& vm, std::size_t index) {
  if (index < vm.spec.networks.size() && !vm.spec.networks[index].mac.empty()) {
    return vm.spec.networks[index].mac;
  }
  const std::string h = Fingerprint(vm.meta.name + "#" + std::to_string(index));
  return "52:54:00:" + h.substr(0, 2) + ":" + h.substr(2, 2) + ":" + h.substr(4, 2);
}

SeedFiles RenderSeed(const VirtualMachine& vm, const std::map<std::string, std::string>& password_hashes) {
  SeedFiles seed;
  const CloudInit ci = vm.spec.cloud_init.value_or(CloudInit{});
  const std::string hostname = ci.hostname.empty() ? vm.meta.name : ci.hostname;

  json config = {{"hostname", hostname}, {"preserve_hostname", false}, {"manage_etc_hosts", true}};
  if (!ci.users.empty()) {
    json users = json::array({"default"});
    bool any_password = false;
    for (const CloudInitUser& u : ci.users) {
      json uj = UserJson(u, password_hashes);
      any_password = any_password || uj.contains("passwd");
      users.push_back(std::move(uj));
    }
    config["users"] = users;
    if (any_password) config["ssh_pwauth"] = true;
  }
  // JSON is YAML, and is quoted correctly by construction.
  const std::string cloud_config = "#cloud-config\n" + config.dump(2) + "\n";
  if (ci.user_data.empty()) {
    seed.user_data = cloud_config;
  } else if (ci.user_data_mode == UserDataMode::kReplace) {
    seed.user_data = ci.user_data;
  } else {
    // Merge with the manifest's own user-data the way cloud-init merges parts: lists append,
    // the generated keys win.
    const std::string boundary = "==gitvirt-" + Fingerprint(ci.user_data) + "==";
    const bool script = ci.user_data.starts_with("#!");
    seed.user_data = "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\nMIME-Version: 1.0\n\n--" +
                     boundary + "\nContent-Type: text/cloud-config; charset=\"utf-8\"\n" +
                     "Merge-Type: list(append)+dict(no_replace,recurse_list)+str()\n\n" + cloud_config + "\n--" +
                     boundary + "\nContent-Type: " + (script ? "text/x-shellscript" : "text/cloud-config") +
                     "; charset=\"utf-8\"\nMerge-Type: list(append)+dict(no_replace,recurse_list)+str()\n\n" +
                     ci.user_data + "\n--" + boundary + "--\n";
  }

  json ethernets = json::object();
  for (std::size_t i = 0; i < vm.spec.networks.size(); ++i) {
    const IpConfig ip = i < ci.ip_configs.size() ? ci.ip_configs[i] : IpConfig{IpMode::kDhcp};
    ethernets["nic" + std::to_string(i)] = NicConfig(ip, ci, NicMac(vm, i), i == 0);
  }
  seed.network_config = json{{"version", 2}, {"ethernets", ethernets}}.dump(2) + "\n";

  seed.inputs_hash = Fingerprint(seed.user_data + "\n---\n" + seed.network_config);
  seed.meta_data = json{{"instance-id", vm.meta.name + "-" + seed.inputs_hash},
                        {"local-hostname", hostname}}.dump(2) + "\n";
  return seed;
}

}  // namespace gitvirt
