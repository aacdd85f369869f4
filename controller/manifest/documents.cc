#include "documents.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include "gitvirt/core/cluster.h"
#include "gitvirt/core/cron.h"
#include "gitvirt/core/ignore.h"
#include "gitvirt/core/net.h"
#include "gitvirt/core/selector.h"
#include "gitvirt/core/templating.h"
#include "gitvirt/core/timezone.h"

namespace gitvirt::manifest_internal {
namespace {

constexpr std::string_view kApiVersion = "gitvirt.dev/v1";
constexpr int kMaxNics = 8;
constexpr int kMaxDisks = 32;
constexpr int kMaxCdroms = 4;
constexpr int kMaxVcpus = 128;
// Small enough for the guests people already run (a CirrOS or test guest of 64MiB, which
// `gitvirt import` must be able to write), large enough to catch a unit typed wrong (64KiB).
constexpr std::uint64_t kMinMemory = 64 * kMiB;
constexpr std::uint64_t kMaxMemory = kTiB;

// ---- small typed setters: leave `out` alone when the field is absent or bad ----------------

void GetString(const Map& m, std::string_view key, std::string& out) {
  if (auto f = m.Get(key)) {
    if (auto v = f->String()) out = std::move(*v);
  }
}
void GetBool(const Map& m, std::string_view key, bool& out) {
  if (auto f = m.Get(key)) {
    if (auto v = f->Bool()) out = *v;
  }
}
template <typename Int>
void GetInt(const Map& m, std::string_view key, std::int64_t min, std::int64_t max, Int& out) {
  if (auto f = m.Get(key)) {
    if (auto v = f->Integer(min, max)) out = static_cast<Int>(*v);
  }
}
template <typename Int>
void GetOptInt(const Map& m, std::string_view key, std::int64_t min, std::int64_t max,
               std::optional<Int>& out) {
  if (auto f = m.Get(key)) {
    if (auto v = f->Integer(min, max)) out = static_cast<Int>(*v);
  }
}
template <typename E>
void GetEnum(const Map& m, std::string_view key, E& out) {
  if (auto f = m.Get(key)) {
    if (auto v = f->Enum<E>()) out = *v;
  }
}
void GetDuration(const Map& m, std::string_view key, Seconds& out) {
  if (auto f = m.Get(key)) {
    if (auto v = f->Duration()) {
      if (v->count() <= 0) {
        f->Error("must be longer than 0s");
      } else {
        out = *v;
      }
    }
  }
}
void GetStrings(const Map& m, std::string_view key, std::vector<std::string>& out) {
  if (auto f = m.Get(key)) {
    if (auto v = f->StringList()) out = std::move(*v);
  }
}

// ---- names ---------------------------------------------------------------------------------

// Names are checked on every document, so with character classes rather than std::regex
// (which dominated the loader's profile).
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// [alnum]([alnum or `extra`]*[alnum])?, at most `max` characters.
bool IsDelimitedName(std::string_view s, bool upper, std::string_view extra, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  auto end_ok = [&](char c) { return upper ? IsAlnum(c) : IsLowerAlnum(c); };
  if (!end_ok(s.front()) || !end_ok(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return end_ok(c) || extra.find(c) != std::string_view::npos;
  });
}

bool IsResourceName(std::string_view s) { return IsDelimitedName(s, false, "-.", 63); }
bool IsShortName(std::string_view s) { return IsDelimitedName(s, false, "-", 63); }

bool IsLabelKey(std::string_view key) {
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) return IsDelimitedName(key, true, "-_.", 63);
  return IsDelimitedName(key.substr(0, slash), false, "-.", 253) &&
         IsDelimitedName(key.substr(slash + 1), true, "-_.", 63);
}

bool IsLabelValue(std::string_view value) {
  return value.empty() || IsDelimitedName(value, true, "-_.", 63);
}

bool IsTag(std::string_view tag) {
  return !tag.empty() && tag.size() <= 128 && std::all_of(tag.begin(), tag.end(), [](char c) {
    return IsAlnum(c) || std::string_view("_.:/+-").find(c) != std::string_view::npos;
  });
}

bool IsSshPublicKey(std::string_view key) {
  static constexpr std::string_view kTypes[] = {
      "ssh-ed25519 ", "ssh-rsa ", "ssh-dss ", "ecdsa-sha2-nistp256 ", "ecdsa-sha2-nistp384 ",
      "ecdsa-sha2-nistp521 ", "sk-ssh-ed25519@openssh.com ", "sk-ecdsa-sha2-nistp256@openssh.com "};
  for (std::string_view type : kTypes) {
    if (!key.starts_with(type)) continue;
    std::string_view rest = key.substr(type.size());
    const std::string_view blob = rest.substr(0, rest.find(' '));
    return !blob.empty() && std::all_of(blob.begin(), blob.end(), [](char c) {
      return IsAlnum(c) || c == '+' || c == '/' || c == '=';
    });
  }
  return false;
}

bool IsUserName(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  if (!(name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z'))) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsLowerAlnum(c) || c == '_' || c == '-'; });
}

void GetLabels(const Map& m, std::string_view key, Labels& out, bool check_label_syntax) {
  auto f = m.Get(key);
  if (!f) return;
  // Kubernetes' own bound: a thousand labels are a mistake, a million a denial of service.
  constexpr std::size_t kMaxLabels = 256;
  if (f->node().IsMap() && f->node().size() > kMaxLabels) {
    f->Error("has " + std::to_string(f->node().size()) + " entries; an object may have at most " +
             std::to_string(kMaxLabels));
    return;
  }
  auto labels = f->StringMap();
  if (!labels) return;
  if (check_label_syntax) {
    for (const auto& kv : f->node()) {
      const std::string k = kv.first.Scalar();
      if (!IsLabelKey(k)) {
        f->sink().Error(kv.first.Mark(), f->path() + "." + k,
                        "invalid label key \"" + k +
                            "\": use [prefix/]name with letters, digits, '-', '_' and '.'");
      } else if (!IsLabelValue(kv.second.Scalar())) {
        f->sink().Error(kv.second.Mark(), f->path() + "." + k,
                        "invalid label value \"" + kv.second.Scalar() +
                            "\": at most 63 letters, digits, '-', '_' and '.'");
      }
    }
  }
  out = std::move(*labels);
}

// ---- shared pieces ---------------------------------------------------------------------------

// Fields that exclude each other: when more than one is given, the error is at the value of the
// one written last (the one to delete). Returns how many were given.
int Exclusive(const Map& m, std::initializer_list<std::string_view> keys, const std::string& message) {
  std::optional<Field> last;
  int count = 0;
  for (std::string_view key : keys) {
    if (auto f = m.Get(key)) {
      ++count;
      if (!last || std::make_pair(f->key_mark().line, f->key_mark().column) >
                       std::make_pair(last->key_mark().line, last->key_mark().column)) {
        last = f;
      }
    }
  }
  if (count > 1) last->sink().Error(last->mark(), m.path(), message);
  return count;
}

std::optional<SecretRef> ParseSecretRef(const Field& field) {
  Map m(field, {"file", "env"});
  if (!m.valid()) return std::nullopt;
  SecretRef ref;
  GetString(m, "file", ref.file);
  GetString(m, "env", ref.env);
  const bool has_file = m.Has("file");
  const bool has_env = m.Has("env");
  const int given = Exclusive(m, {"file", "env"}, "give \"file\" or \"env\", not both");
  if (given == 0) field.Error("give one of \"file\" or \"env\"");
  if (given != 1) return std::nullopt;
  if (has_env) {
    static const std::regex kEnv("[A-Za-z_][A-Za-z0-9_]*");
    if (!std::regex_match(ref.env, kEnv)) {
      m.Get("env")->Error("\"" + ref.env + "\" is not an environment variable name");
      return std::nullopt;
    }
  }
  if (has_file && ref.file.empty()) {
    m.Get("file")->Error("must not be empty");
    return std::nullopt;
  }
  return ref;
}

std::optional<Retention> ParseRetention(const Field& field) {
  Map m(field, {"keep", "maxAge"});
  if (!m.valid()) return std::nullopt;
  Retention r;
  GetOptInt(m, "keep", 1, 100000, r.keep);
  if (auto f = m.Get("maxAge")) {
    if (auto d = f->Duration()) {
      if (d->count() <= 0) {
        f->Error("must be longer than 0s");
      } else {
        r.max_age = *d;
      }
    }
  }
  if (!m.Has("keep") && !m.Has("maxAge")) m.Error("give \"keep\", \"maxAge\" or both");
  return r;
}

std::optional<Selector> ParseSelector(const Field& field) {
  Map m(field, {"all", "matchLabels", "names", "tags", "clusters"});
  if (!m.valid()) return std::nullopt;
  Selector s;
  GetBool(m, "all", s.all);
  GetLabels(m, "matchLabels", s.match_labels, true);
  if (auto f = m.Get("names")) {
    if (auto names = f->Items()) {
      for (const Field& item : *names) {
        if (auto glob = item.NonEmptyString()) s.names.push_back(*glob);
      }
    }
  }
  if (auto f = m.Get("tags")) {
    if (auto text = f->NonEmptyString()) {
      if (auto parsed = ParseTagExpression(*text); !parsed) {
        f->Error("invalid tag expression: " + parsed.error().message);
      } else {
        s.tags = *text;
      }
    }
  }
  if (auto f = m.Get("clusters")) {
    if (auto names = f->Items()) {
      for (const Field& item : *names) {
        if (auto name = item.NonEmptyString()) s.clusters.push_back(*name);
      }
    }
  }
  if (!s.all && !m.Has("matchLabels") && !m.Has("names") && !m.Has("tags") && !m.Has("clusters")) {
    field.Error("give at least one of all, matchLabels, names, tags, clusters");
  }
  return s;
}

void CheckTimeZone(const Map& m, std::string& out) {
  auto f = m.Get("timeZone");
  if (!f) return;
  auto zone = f->NonEmptyString();
  if (!zone) return;
  static const std::regex kZone("[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*");
  if (!std::regex_match(*zone, kZone)) {
    f->Error("\"" + *zone + "\" is not an IANA time zone name such as UTC or Europe/Amsterdam");
    return;
  }
  out = *zone;
}

void CheckSchedule(const Map& m, std::string& out) {
  auto f = m.Get("schedule");
  if (!f) return;
  auto text = f->NonEmptyString();
  if (!text) return;
  if (auto cron = ParseCron(*text); !cron) {
    f->Error("invalid cron schedule: " + cron.error().message);
    return;
  }
  out = *text;
}

// maxUnavailable: a whole number (3) or a percentage ("25%").
void GetMaxUnavailable(const Map& m, std::string& out) {
  auto f = m.Get("maxUnavailable");
  if (!f || !f->IsScalar()) {
    if (f) f->Error("expected a number (2) or a percentage (\"25%\")");
    return;
  }
  const std::string text = f->node().Scalar();
  if (!ResolveMaxUnavailable(text, 100)) {
    f->Error("expected a number of at least 1 (2) or a percentage from 1% to 100% (\"25%\"), got \"" + text + "\"");
    return;
  }
  out = text;
}

// A list item whose `name` repeats an earlier one: reported at that name.
void ReportDuplicateName(const Field& item, std::string message) {
  for (const auto& kv : item.node()) {
    if (kv.first.Scalar() == "name") {
      item.sink().Error(kv.second.Mark(), item.path() + ".name", std::move(message));
      return;
    }
  }
  item.Error(std::move(message));
}

// ---- VirtualMachine ----------------------------------------------------------------------

struct VmContext {
  DiagnosticSink& sink;
  DocumentFacts& facts;
  ResourceRef owner;  // the resource whose document this is
  std::string group;  // the node group, for a Cluster template
  std::set<int> boot_orders;

  void Refer(ResourceRef target, const Field& at, Reference::Use use) {
    facts.references.push_back(Reference{owner, group, std::move(target), at.location(), at.path(), use});
  }
};

void CheckBootOrder(const Map& m, VmContext& ctx, std::optional<int>& out) {
  auto f = m.Get("bootOrder");
  if (!f) return;
  auto v = f->Integer(1, 64);
  if (!v) return;
  if (!ctx.boot_orders.insert(static_cast<int>(*v)).second) {
    f->Error("bootOrder " + std::to_string(*v) + " is used twice; boot priorities must be unique");
    return;
  }
  out = static_cast<int>(*v);
}

std::optional<Disk> ParseDisk(const Field& field, VmContext& ctx) {
  Map m(field, {"name", "size", "pool", "bus", "format", "source", "cache", "discard", "ssd",
                "iothread", "readonly", "bootOrder", "backup"});
  if (!m.valid()) return std::nullopt;
  Disk d;
  if (auto f = m.Require("name")) {
    if (auto name = f->String()) {
      if (!IsShortName(*name)) {
        f->Error("invalid disk name \"" + *name + "\": use lowercase letters, digits and '-'");
      } else {
        d.name = *name;
      }
    }
  }
  if (auto f = m.Get("size")) {
    if (auto size = f->Size()) {
      if (*size < kMiB) {
        f->Error("a disk must be at least 1MiB");
      } else if (*size % 512 != 0) {
        f->Error("a disk size must be a multiple of 512 bytes");
      } else {
        d.size = *size;
      }
    }
  }
  if (auto f = m.Get("pool")) {
    if (auto pool = f->NonEmptyString()) d.pool = *pool;
  }
  GetEnum(m, "bus", d.bus);
  GetEnum(m, "format", d.format);
  GetEnum(m, "cache", d.cache);
  GetBool(m, "discard", d.discard);
  GetBool(m, "ssd", d.ssd);
  GetBool(m, "iothread", d.iothread);
  GetBool(m, "readonly", d.readonly);
  GetBool(m, "backup", d.backup);
  CheckBootOrder(m, ctx, d.boot_order);

  if (auto f = m.Get("source")) {
    Map s(*f, {"image", "volume", "path", "clone"});
    if (s.valid()) {
      const bool has_image = s.Has("image"), has_volume = s.Has("volume");
      const int count = Exclusive(s, {"image", "volume", "path"},
                                  "give one of \"image\", \"volume\" or \"path\", not several");
      if (count == 0) {
        f->Error("give one of \"image\", \"volume\" or \"path\"");
      } else if (count > 1) {
      } else if (has_image) {
        d.source.type = DiskSourceType::kImage;
        d.source.clone = CloneMode::kLinked;
        auto img = s.Get("image");
        if (auto name = img->NonEmptyString()) {
          d.source.ref = *name;
          ctx.Refer({Kind::kImage, *name}, *img, Reference::Use::kDiskImage);
        }
      } else if (has_volume) {
        d.source.type = DiskSourceType::kVolume;
        if (auto v = s.Get("volume")->NonEmptyString()) d.source.ref = *v;
      } else {
        d.source.type = DiskSourceType::kPath;
        auto p = s.Get("path");
        if (auto v = p->NonEmptyString()) {
          if (!v->starts_with("/")) {
            p->Error("must be an absolute path on the node, got \"" + *v + "\"");
          } else {
            d.source.ref = *v;
          }
        }
      }
      if (auto c = s.Get("clone")) {
        if (auto mode = c->Enum<CloneMode>()) {
          d.source.clone = *mode;
          if (*mode == CloneMode::kLinked && d.format != DiskFormat::kQcow2) {
            c->Error("a linked clone needs format qcow2 (it uses a qcow2 backing file)");
          }
        }
      }
    }
  } else if (!m.Has("size") && m.valid()) {
    m.Error("a new disk needs a \"size\" (or a \"source\")");
  }
  return d;
}

std::optional<Cdrom> ParseCdrom(const Field& field, VmContext& ctx) {
  Map m(field, {"name", "image", "path", "bus", "bootOrder"});
  if (!m.valid()) return std::nullopt;
  Cdrom c;
  if (auto f = m.Require("name")) {
    if (auto name = f->String()) {
      if (!IsShortName(*name)) {
        f->Error("invalid cdrom name \"" + *name + "\": use lowercase letters, digits and '-'");
      } else {
        c.name = *name;
      }
    }
  }
  const bool has_image = m.Has("image");
  const int sources = Exclusive(m, {"image", "path"}, "give \"image\" or \"path\", not both");
  if (sources == 0) {
    m.Error("a cdrom needs one of \"image\" or \"path\"");
  } else if (sources > 1) {
  } else if (has_image) {
    auto f = m.Get("image");
    if (auto name = f->NonEmptyString()) {
      c.image = *name;
      ctx.Refer({Kind::kImage, *name}, *f, Reference::Use::kCdromImage);
    }
  } else {
    auto f = m.Get("path");
    if (auto p = f->NonEmptyString()) {
      if (!p->starts_with("/")) {
        f->Error("must be an absolute path on the node, got \"" + *p + "\"");
      } else {
        c.path = *p;
      }
    }
  }
  GetEnum(m, "bus", c.bus);
  if (c.bus == DiskBus::kVirtio) {
    m.Get("bus")->Error("a cdrom cannot use the virtio bus; use sata, ide or scsi");
  }
  CheckBootOrder(m, ctx, c.boot_order);
  return c;
}

std::optional<Nic> ParseNic(const Field& field, VmContext& ctx) {
  Map m(field, {"network", "bridge", "user", "model", "vlan", "mac", "filter", "bootOrder"});
  if (!m.valid()) return std::nullopt;
  Nic n;
  if (Exclusive(m, {"network", "bridge", "user"}, "give one of \"network\", \"bridge\" or \"user\", not several") == 0) {
    field.Error("a NIC needs a \"network\", a \"bridge\" or \"user: true\"");
  }
  if (auto f = m.Get("network")) {
    if (auto v = f->NonEmptyString()) n.network = *v;
  }
  if (auto f = m.Get("bridge")) {
    if (auto v = f->NonEmptyString()) n.bridge = *v;
  }
  if (auto f = m.Get("user")) {
    if (auto v = f->Bool()) {
      if (!*v) {
        f->Error("user: false is no NIC; give \"network\" or \"bridge\" instead, or user: true");
      } else {
        n.user = true;
      }
    }
  }
  GetEnum(m, "model", n.model);
  GetOptInt(m, "vlan", 1, 4094, n.vlan);
  if (auto f = m.Get("mac")) {
    if (auto mac = f->String()) {
      if (!IsUnicastMac(*mac)) {
        f->Error("\"" + *mac + "\" is not a unicast MAC address like 52:54:00:12:34:56");
      } else {
        std::string lower = *mac;
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        n.mac = lower;
      }
    }
  }
  GetString(m, "filter", n.filter);
  // User-mode networking has no host-side port: no VLAN tag and no nwfilter to put on it.
  if (n.user) {
    if (auto f = m.Get("vlan")) f->Error("a user-mode NIC (user: true) cannot have a vlan");
    if (auto f = m.Get("filter")) f->Error("a user-mode NIC (user: true) cannot have a filter");
  }
  CheckBootOrder(m, ctx, n.boot_order);
  return n;
}

std::optional<CloudInitUser> ParseUser(const Field& field) {
  Map m(field, {"name", "sshAuthorizedKeys", "passwordHash", "passwordFrom", "sudo", "groups",
                "shell"});
  if (!m.valid()) return std::nullopt;
  CloudInitUser u;
  if (auto f = m.Require("name")) {
    if (auto name = f->String()) {
      if (!IsUserName(*name)) {
        f->Error("\"" + *name + "\" is not a valid user name (lowercase, at most 32 characters)");
      } else {
        u.name = *name;
      }
    }
  }
  if (auto f = m.Get("sshAuthorizedKeys")) {
    if (auto keys = f->Items()) {
      for (const Field& k : *keys) {
        if (auto key = k.NonEmptyString()) {
          if (!IsSshPublicKey(*key)) {
            k.Error("does not look like an SSH public key (\"ssh-ed25519 AAAA... comment\")");
          } else {
            u.ssh_authorized_keys.push_back(*key);
          }
        }
      }
    }
  }
  Exclusive(m, {"passwordHash", "passwordFrom"},
            "give \"passwordHash\" or \"passwordFrom\", not both");
  if (auto f = m.Get("passwordHash")) {
    if (auto hash = f->String()) {
      static const std::regex kCrypt(R"(\$(1|5|6|y|2[aby])\$.+)");
      if (!std::regex_match(*hash, kCrypt)) {
        f->Error("expected a crypt(3) hash such as $6$salt$..., never a plain password "
                 "(use passwordFrom for a secret)");
      } else {
        u.password_hash = *hash;
      }
    }
  }
  if (auto f = m.Get("passwordFrom")) u.password_from = ParseSecretRef(*f);
  GetString(m, "sudo", u.sudo);
  GetStrings(m, "groups", u.groups);
  GetString(m, "shell", u.shell);
  return u;
}

std::optional<CloudInit> ParseCloudInit(const Field& field, VmContext& ctx, std::size_t nic_count) {
  Map m(field, {"hostname", "users", "ipConfigs", "nameservers", "searchDomains", "userData",
                "userDataMode"});
  if (!m.valid()) return std::nullopt;
  CloudInit ci;
  if (auto f = m.Get("hostname")) {
    if (auto h = f->String()) {
      if (!IsDnsName(*h)) {
        f->Error("\"" + *h + "\" is not a valid hostname");
      } else {
        ci.hostname = *h;
      }
    }
  }
  if (auto f = m.Get("users")) {
    if (auto users = f->Items()) {
      std::set<std::string> names;
      for (const Field& item : *users) {
        if (auto u = ParseUser(item)) {
          if (!u->name.empty() && !names.insert(u->name).second) {
            ReportDuplicateName(item, "user \"" + u->name + "\" is listed twice");
          }
          ci.users.push_back(std::move(*u));
        }
      }
    }
  }
  if (auto f = m.Get("ipConfigs")) {
    if (auto items = f->Items()) {
      for (std::size_t i = 0; i < items->size(); ++i) {
        const Field& item = (*items)[i];
        if (i == nic_count) {
          item.Error("ipConfigs has " + std::to_string(items->size()) +
                     " entries but the VM has " + std::to_string(nic_count) + " NICs");
          break;
        }
        auto text = item.String();
        if (!text) continue;
        auto config = ParseIpConfig(*text);
        if (!config) {
          item.Error(config.error().message);
          continue;
        }
        if (config->v4 == IpMode::kStatic) {
          ctx.facts.addresses.push_back(StaticAddress{ctx.owner.name,
                                                      CidrAddress(config->v4_address),
                                                      item.location(), item.path()});
        }
        if (config->v6 == IpMode::kStatic) {
          ctx.facts.addresses.push_back(StaticAddress{ctx.owner.name,
                                                      CidrAddress(config->v6_address),
                                                      item.location(), item.path()});
        }
        ci.ip_configs.push_back(std::move(*config));
      }
    }
  }
  if (auto f = m.Get("nameservers")) {
    if (auto items = f->Items()) {
      for (const Field& item : *items) {
        if (auto ip = item.String()) {
          if (!IsIpv4(*ip) && !IsIpv6(*ip)) {
            item.Error("\"" + *ip + "\" is not an IP address");
          } else {
            ci.nameservers.push_back(*ip);
          }
        }
      }
    }
  }
  if (auto f = m.Get("searchDomains")) {
    if (auto items = f->Items()) {
      for (const Field& item : *items) {
        if (auto d = item.String()) {
          if (!IsDnsName(*d)) {
            item.Error("\"" + *d + "\" is not a valid domain name");
          } else {
            ci.search_domains.push_back(*d);
          }
        }
      }
    }
  }
  GetString(m, "userData", ci.user_data);
  GetEnum(m, "userDataMode", ci.user_data_mode);
  if (ci.user_data_mode == UserDataMode::kReplace && ci.user_data.empty() && m.Has("userDataMode")) {
    m.Get("userDataMode")->Error("userDataMode replace needs a userData document");
  }
  return ci;
}

std::optional<Graphics> ParseGraphics(const Field& field) {
  Map m(field, {"type", "listen", "port", "passwordFrom", "video"});
  if (!m.valid()) return std::nullopt;
  Graphics g;
  GetEnum(m, "type", g.type);
  if (auto f = m.Get("listen")) {
    if (auto ip = f->String()) {
      if (!IsIpv4(*ip) && !IsIpv6(*ip)) {
        f->Error("\"" + *ip + "\" is not an IP address to listen on");
      } else {
        g.listen = *ip;
      }
    }
  }
  if (auto f = m.Get("port")) {
    if (f->IsScalar() && f->node().Scalar() == "auto") {
      g.port.reset();
    } else if (auto port = f->Integer(5900, 65535)) {
      g.port = static_cast<int>(*port);
    }
  }
  if (auto f = m.Get("passwordFrom")) g.password_from = ParseSecretRef(*f);
  GetEnum(m, "video", g.video);
  return g;
}

std::optional<Gpu> ParseGpu(const Field& field) {
  Map m(field, {"pci", "mdev"});
  if (!m.valid()) return std::nullopt;
  Gpu gpu;
  const int kinds = Exclusive(m, {"pci", "mdev"}, "give \"pci\" or \"mdev\", not both");
  if (kinds == 0) {
    field.Error("a GPU needs one of \"pci\" (passthrough) or \"mdev\" (mediated device)");
  }
  if (kinds != 1) return std::nullopt;
  if (auto f = m.Get("pci")) {
    if (auto addr = f->String()) {
      // Domain:bus:slot.function; the domain may be left out ("65:00.0" is 0000:65:00.0).
      static const std::regex kPci("([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]");
      if (!std::regex_match(*addr, kPci)) {
        f->Error("\"" + *addr + "\" is not a PCI address like 0000:65:00.0");
      } else {
        std::string full = addr->size() == 7 ? "0000:" + *addr : *addr;
        std::transform(full.begin(), full.end(), full.begin(), ::tolower);
        gpu.pci_address = full;
      }
    }
  }
  if (auto f = m.Get("mdev")) {
    Map md(*f, {"type", "uuid"});
    if (md.valid()) {
      if (auto t = md.Require("type")) {
        if (auto v = t->NonEmptyString()) gpu.mdev_type = *v;
      }
      // Without a uuid, gitvirt derives a stable one from the VM and the device's position.
      if (auto u = md.Get("uuid")) {
        if (auto v = u->String()) {
          static const std::regex kUuid(
              "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
          if (!std::regex_match(*v, kUuid)) {
            u->Error("\"" + *v + "\" is not a UUID");
          } else {
            gpu.mdev_uuid = *v;
          }
        }
      }
    }
  }
  return gpu;
}

std::optional<Placement> ParsePlacement(const Field& field, bool with_anti_affinity) {
  std::optional<Map> m;
  if (with_anti_affinity) {
    m.emplace(field, std::initializer_list<std::string_view>{"antiAffinity", "topologyKey",
                                                               "nodeSelector"});
  } else {
    m.emplace(field, std::initializer_list<std::string_view>{"nodeSelector"});
  }
  if (!m->valid()) return std::nullopt;
  Placement p;
  GetLabels(*m, "nodeSelector", p.node_selector, true);
  if (with_anti_affinity) {
    GetEnum(*m, "antiAffinity", p.anti_affinity);
    if (auto f = m->Get("topologyKey")) {
      if (auto key = f->NonEmptyString()) {
        if (!IsLabelKey(*key)) {
          f->Error("\"" + *key + "\" is not a node label key");
        } else {
          p.topology_key = *key;
        }
      }
    }
  }
  return p;
}

// The VM spec, shared by VirtualMachine documents and Cluster templates (which have no node and
// no placement: the node group places its members).
VmSpec ParseVmSpec(const Map& m, VmContext& ctx, bool is_template) {
  VmSpec spec;
  if (!is_template) {
    if (auto f = m.Get("node")) {
      if (auto node = f->String()) {
        if (!IsResourceName(*node)) {
          f->Error("\"" + *node + "\" is not a node name");
        } else {
          spec.node = *node;
          ctx.facts.nodes.push_back(NodeReference{ctx.owner.name, *node, f->location(), f->path()});
        }
      }
    }
    if (auto f = m.Get("placement")) {
      if (auto p = ParsePlacement(*f, false)) spec.placement = std::move(*p);
    }
  }
  GetString(m, "description", spec.description);
  if (auto f = m.Require("vcpus")) {
    if (auto v = f->Integer(1, kMaxVcpus)) spec.vcpus = static_cast<int>(*v);
  }
  if (auto f = m.Get("maxVcpus")) {
    if (auto v = f->Integer(1, kMaxVcpus)) {
      if (*v < spec.vcpus) {
        f->Error("maxVcpus (" + std::to_string(*v) + ") must be at least vcpus (" +
                 std::to_string(spec.vcpus) + ")");
      } else {
        spec.max_vcpus = static_cast<int>(*v);
      }
    }
  }
  auto check_memory = [](const Field& f, std::uint64_t bytes) {
    if (bytes < kMinMemory || bytes > kMaxMemory) {
      f.Error("must be between 64MiB and 1TiB, got " + FormatSize(bytes));
      return false;
    }
    if (bytes % kMiB != 0) {
      f.Error("must be a whole number of MiB, got " + FormatSize(bytes));
      return false;
    }
    return true;
  };
  if (auto f = m.Require("memory")) {
    if (auto v = f->Size(); v && check_memory(*f, *v)) spec.memory = *v;
  }
  if (auto f = m.Get("maxMemory")) {
    if (auto v = f->Size(); v && check_memory(*f, *v)) {
      if (spec.memory != 0 && *v < spec.memory) {
        f->Error("maxMemory (" + FormatSize(*v) + ") must be at least memory (" +
                 FormatSize(spec.memory) + ")");
      } else {
        spec.max_memory = *v;
      }
    }
  }
  if (auto f = m.Get("cpu")) {
    Map c(*f, {"mode", "model", "topology"});
    if (c.valid()) {
      GetEnum(c, "mode", spec.cpu.mode);
      if (auto mf = c.Get("model")) {
        if (auto model = mf->NonEmptyString()) {
          if (spec.cpu.mode != CpuMode::kCustom) {
            mf->Error("cpu.model needs mode: custom");
          } else {
            spec.cpu.model = *model;
          }
        }
      } else if (spec.cpu.mode == CpuMode::kCustom) {
        c.Error("mode: custom needs a cpu model");
      }
      if (auto tf = c.Get("topology")) {
        Map t(*tf, {"sockets", "cores", "threads"});
        if (t.valid()) {
          CpuTopology topo;
          GetInt(t, "sockets", 1, kMaxVcpus, topo.sockets);
          GetInt(t, "cores", 1, kMaxVcpus, topo.cores);
          GetInt(t, "threads", 1, 8, topo.threads);
          const int product = topo.sockets * topo.cores * topo.threads;
          const int want = spec.max_vcpus.value_or(spec.vcpus);
          if (product != want) {
            tf->Error("sockets x cores x threads = " + std::to_string(product) + ", but " +
                      (spec.max_vcpus ? "maxVcpus" : "vcpus") + " is " + std::to_string(want));
          } else {
            spec.cpu.topology = topo;
          }
        }
      }
    }
  }
  if (auto f = m.Get("machine")) {
    if (auto machine = f->NonEmptyString()) {
      static const std::regex kMachine("[A-Za-z0-9._-]+");
      if (!std::regex_match(*machine, kMachine)) {
        f->Error("\"" + *machine + "\" is not a machine type such as q35 or pc");
      } else {
        spec.machine = *machine;
      }
    }
  }
  if (auto f = m.Get("firmware")) {
    Map fw(*f, {"type", "secureBoot", "tpm"});
    if (fw.valid()) {
      GetEnum(fw, "type", spec.firmware.type);
      GetBool(fw, "secureBoot", spec.firmware.secure_boot);
      GetBool(fw, "tpm", spec.firmware.tpm);
      if (spec.firmware.secure_boot && spec.firmware.type != FirmwareType::kUefi) {
        fw.Get("secureBoot")->Error("secureBoot needs firmware type uefi");
      }
    }
  }
  if (auto f = m.Get("os")) {
    Map os(*f, {"type", "variant"});
    if (os.valid()) {
      GetString(os, "type", spec.os.type);
      GetString(os, "variant", spec.os.variant);
    }
  }
  if (auto f = m.Get("boot")) {
    Map b(*f, {"kernel", "initrd", "cmdline"});
    if (b.valid()) {
      DirectBoot boot;
      for (auto [key, out] : {std::pair{"kernel", &boot.kernel}, std::pair{"initrd", &boot.initrd}}) {
        auto field = std::string_view(key) == "kernel" ? b.Require(key) : b.Get(key);
        if (!field) continue;
        if (auto path = field->NonEmptyString()) {
          if (!path->starts_with("/")) {
            field->Error("must be an absolute path on the node, got \"" + *path + "\"");
          } else {
            *out = *path;
          }
        }
      }
      GetString(b, "cmdline", boot.cmdline);
      spec.boot = boot;
    }
  }
  GetBool(m, "guestAgent", spec.guest_agent);

  if (auto f = m.Get("disks")) {
    if (auto items = f->Items()) {
      std::set<std::string> names;
      for (std::size_t i = 0; i < items->size(); ++i) {
        const Field& item = (*items)[i];
        if (static_cast<int>(i) == kMaxDisks) {
          item.Error("at most " + std::to_string(kMaxDisks) + " disks, got " +
                     std::to_string(items->size()));
          break;
        }
        if (auto disk = ParseDisk(item, ctx)) {
          if (!disk->name.empty() && !names.insert(disk->name).second) {
            ReportDuplicateName(item, "disk name \"" + disk->name + "\" is used twice");
          }
          spec.disks.push_back(std::move(*disk));
        }
      }
    }
  }
  if (auto f = m.Get("cdroms")) {
    if (auto items = f->Items()) {
      std::set<std::string> names;
      for (std::size_t i = 0; i < items->size(); ++i) {
        const Field& item = (*items)[i];
        if (static_cast<int>(i) == kMaxCdroms) {
          item.Error("at most " + std::to_string(kMaxCdroms) + " cdroms, got " +
                     std::to_string(items->size()));
          break;
        }
        if (auto cdrom = ParseCdrom(item, ctx)) {
          if (!cdrom->name.empty() && !names.insert(cdrom->name).second) {
            ReportDuplicateName(item, "cdrom name \"" + cdrom->name + "\" is used twice");
          }
          spec.cdroms.push_back(std::move(*cdrom));
        }
      }
    }
  }
  std::size_t nic_count = 0;
  if (auto f = m.Get("networks")) {
    if (auto items = f->Items()) {
      nic_count = items->size();
      for (std::size_t i = 0; i < items->size(); ++i) {
        const Field& item = (*items)[i];
        if (static_cast<int>(i) == kMaxNics) {
          item.Error("at most " + std::to_string(kMaxNics) + " NICs, got " +
                     std::to_string(items->size()));
          break;
        }
        if (auto nic = ParseNic(item, ctx)) spec.networks.push_back(std::move(*nic));
      }
    }
  }
  if (auto f = m.Get("cloudInit")) {
    spec.cloud_init = ParseCloudInit(*f, ctx, nic_count);
  }
  if (auto f = m.Get("graphics")) {
    if (auto g = ParseGraphics(*f)) spec.graphics = std::move(*g);
  }
  if (auto f = m.Get("gpus")) {
    if (auto items = f->Items()) {
      for (const Field& item : *items) {
        if (auto gpu = ParseGpu(item)) spec.gpus.push_back(std::move(*gpu));
      }
    }
  }
  GetBool(m, "autostart", spec.autostart);
  GetEnum(m, "powerState", spec.power_state);
  if (auto f = m.Get("updatePolicy")) {
    Map u(*f, {"restart", "shutdownTimeout", "forceOff", "snapshot"});
    if (u.valid()) {
      GetEnum(u, "restart", spec.update_policy.restart);
      GetDuration(u, "shutdownTimeout", spec.update_policy.shutdown_timeout);
      GetBool(u, "forceOff", spec.update_policy.force_off);
      if (auto sf = u.Get("snapshot")) {
        // `snapshot: true` or `snapshot: {keep: 24h}`.
        if (sf->IsScalar()) {
          if (auto on = sf->Bool(); on && *on) spec.update_policy.snapshot.emplace();
        } else {
          Map s(*sf, {"keep"});
          if (s.valid()) {
            PreChangeSnapshot pre;
            GetDuration(s, "keep", pre.keep);
            spec.update_policy.snapshot = pre;
          }
        }
      }
    }
  }
  GetEnum(m, "deletionPolicy", spec.deletion_policy);
  if (auto f = m.Get("dependsOn")) {
    if (auto items = f->Items()) {
      for (const Field& item : *items) {
        auto text = item.NonEmptyString();
        if (!text) continue;
        auto ref = ResourceRef::Parse(*text);
        if (!ref) {
          item.Error("expected Kind/name (VirtualMachine/db-01, Image/debian-12) or a VM name, "
                     "got \"" + *text + "\"");
          continue;
        }
        if (ref->kind != Kind::kVirtualMachine && ref->kind != Kind::kImage &&
            ref->kind != Kind::kCluster) {
          item.Error("a VM can depend on a VirtualMachine, a Cluster or an Image, not a " +
                     std::string(EnumName(ref->kind)));
          continue;
        }
        spec.depends_on.push_back(*ref);
        ctx.Refer(*ref, item, Reference::Use::kDependsOn);
      }
    }
  }
  if (auto f = m.Get("readiness")) {
    Map r(*f, {"agent", "tcp", "consoleMarker", "timeout"});
    if (r.valid()) {
      GetBool(r, "agent", spec.readiness.agent);
      GetOptInt(r, "tcp", 1, 65535, spec.readiness.tcp);
      if (auto mf = r.Get("consoleMarker")) {
        if (auto marker = mf->NonEmptyString()) spec.readiness.console_marker = *marker;
      }
      GetDuration(r, "timeout", spec.readiness.timeout);
      if (spec.readiness.agent && !spec.guest_agent && m.Has("guestAgent")) {
        r.Get("agent")->Error("readiness by agent needs guestAgent: true");
      }
    }
  }
  if (auto f = m.Get("migration")) {
    Map mg(*f, {"live", "allowOffline", "copyStorage", "bandwidth"});
    if (mg.valid()) {
      GetBool(mg, "live", spec.migration.live);
      GetBool(mg, "allowOffline", spec.migration.allow_offline);
      GetBool(mg, "copyStorage", spec.migration.copy_storage);
      if (auto b = mg.Get("bandwidth")) {
        if (auto v = b->Size()) spec.migration.bandwidth = *v;
      }
    }
  }
  if (auto f = m.Get("ignoreDifferences")) ParseIgnorePaths(*f, spec.ignore_differences);
  if (!is_template) GetBool(m, "adopt", spec.adopt);
  // Readiness by agent implies the channel; say so rather than silently adding a device.
  if (spec.readiness.agent && !m.Has("guestAgent")) spec.guest_agent = true;
  return spec;
}

const std::initializer_list<std::string_view> kVmKeys = {
    "node",      "placement", "description", "vcpus",        "maxVcpus",   "memory",
    "maxMemory", "cpu",       "machine",     "firmware",     "os",         "boot",       "guestAgent",
    "disks",     "cdroms",    "networks",    "cloudInit",    "graphics",   "gpus",
    "autostart", "powerState", "updatePolicy", "deletionPolicy", "dependsOn", "readiness",
    "migration", "ignoreDifferences", "adopt"};
const std::initializer_list<std::string_view> kTemplateKeys = {
    "description", "vcpus",    "maxVcpus", "memory",       "maxMemory",      "cpu",
    "machine",     "firmware", "os",       "boot",         "guestAgent",     "disks",          "cdroms",
    "networks",    "cloudInit", "graphics", "gpus",        "autostart",      "powerState",
    "updatePolicy", "deletionPolicy", "dependsOn", "readiness", "migration", "ignoreDifferences"};

// ---- Cluster -------------------------------------------------------------------------------

std::optional<NodeGroup> ParseNodeGroup(const Field& field, const std::string& cluster_name,
                                        DiagnosticSink& sink, DocumentFacts& facts) {
  Map m(field, {"name", "role", "count", "namePattern", "scaleDown", "labels", "tags",
                "placement", "ipConfigPatterns", "maxUnavailable", "template"});
  if (!m.valid()) return std::nullopt;
  NodeGroup g;
  g.location = field.location();
  if (auto f = m.Require("name")) {
    if (auto name = f->String()) {
      if (!IsShortName(*name)) {
        f->Error("invalid node group name \"" + *name + "\": use lowercase letters, digits, '-'");
      } else {
        g.name = *name;
      }
    }
  }
  GetString(m, "role", g.role);
  if (auto f = m.Require("count")) {
    if (auto v = f->Integer(0, 100)) g.count = static_cast<int>(*v);
  }
  GetBool(m, "scaleDown", g.scale_down);
  GetMaxUnavailable(m, g.max_unavailable);
  GetLabels(m, "labels", g.labels, true);
  if (auto f = m.Get("tags")) {
    if (auto items = f->Items()) {
      for (const Field& item : *items) {
        if (auto tag = item.String()) {
          if (!IsTag(*tag)) {
            item.Error("\"" + *tag + "\" is not a tag (letters, digits, '-', '_', '.', ':', '/', '+')");
          } else {
            g.tags.push_back(*tag);
          }
        }
      }
    }
  }
  if (auto f = m.Get("placement")) {
    if (auto p = ParsePlacement(*f, true)) g.placement = std::move(*p);
  }
  // Patterns are checked against every member index now, so expansion cannot fail later.
  Cluster probe;
  probe.meta.name = cluster_name;
  if (auto f = m.Get("namePattern")) {
    if (auto pattern = f->NonEmptyString()) {
      g.name_pattern = *pattern;
      auto name = ClusterMemberName(probe, g, 0);
      if (!name) {
        f->Error("invalid name pattern: " + name.error().message);
        g.name_pattern.clear();
      } else if (!IsResourceName(*name)) {
        f->Error("the pattern gives \"" + *name + "\", which is not a valid VM name");
        g.name_pattern.clear();
      }
    }
  }
  if (auto f = m.Get("ipConfigPatterns")) {
    if (auto items = f->Items()) {
      for (const Field& item : *items) {
        auto pattern = item.String();
        if (!pattern) continue;
        NodeGroup one = g;
        one.ip_config_patterns = {*pattern};
        bool ok = true;
        for (int index = 0; index < std::max(g.count, 1) && ok; ++index) {
          const std::string member = g.name_pattern.empty() ? "x" : ClusterMemberName(probe, g, index).value_or("x");
          auto ips = ClusterMemberIpConfigs(probe, one, index, member);
          if (!ips) {
            item.Error("invalid IP pattern for member " + std::to_string(index) + ": " +
                       ips.error().ToString());
            ok = false;
            break;
          }
          const IpConfig& ip = ips->front();
          if (ip.v4 == IpMode::kStatic) {
            facts.addresses.push_back(StaticAddress{member, CidrAddress(ip.v4_address),
                                                    item.location(), item.path()});
          }
          if (ip.v6 == IpMode::kStatic) {
            facts.addresses.push_back(StaticAddress{member, CidrAddress(ip.v6_address),
                                                    item.location(), item.path()});
          }
        }
        if (ok) g.ip_config_patterns.push_back(*pattern);
      }
    }
  }
  if (auto f = m.Require("template")) {
    Map t(*f, kTemplateKeys);
    if (t.valid()) {
      VmContext ctx{sink, facts, {Kind::kCluster, cluster_name}, g.name, {}};
      g.tmpl = ParseVmSpec(t, ctx, /*is_template=*/true);
      if (!g.ip_config_patterns.empty() && g.ip_config_patterns.size() > g.tmpl.networks.size()) {
        m.Get("ipConfigPatterns")
            ->Error(std::to_string(g.ip_config_patterns.size()) +
                    " ipConfigPatterns but the template has " +
                    std::to_string(g.tmpl.networks.size()) + " NICs");
      }
    }
  }
  return g;
}

ClusterSpec ParseClusterSpec(const Map& m, const std::string& name, DiagnosticSink& sink,
                             DocumentFacts& facts) {
  ClusterSpec spec;
  GetEnum(m, "rollbackStrategy", spec.rollback);
  GetOptInt(m, "maxParallel", 1, 100, spec.max_parallel);
  if (auto f = m.Get("cloudInit")) {
    Map ci(*f, {"nameservers", "searchDomains"});
    if (ci.valid()) {
      if (auto ns = ci.Get("nameservers")) {
        if (auto items = ns->Items()) {
          for (const Field& item : *items) {
            if (auto ip = item.String()) {
              if (!IsIpv4(*ip) && !IsIpv6(*ip)) {
                item.Error("\"" + *ip + "\" is not an IP address");
              } else {
                spec.nameservers.push_back(*ip);
              }
            }
          }
        }
      }
      if (auto sd = ci.Get("searchDomains")) {
        if (auto items = sd->Items()) {
          for (const Field& item : *items) {
            if (auto d = item.String()) {
              if (!IsDnsName(*d)) {
                item.Error("\"" + *d + "\" is not a valid domain name");
              } else {
                spec.search_domains.push_back(*d);
              }
            }
          }
        }
      }
    }
  }
  if (auto f = m.Require("nodeGroups")) {
    if (auto items = f->Items()) {
      if (items->empty()) f->Error("a Cluster needs at least one node group");
      std::set<std::string> names;
      for (const Field& item : *items) {
        if (auto g = ParseNodeGroup(item, name, sink, facts)) {
          if (!g->name.empty() && !names.insert(g->name).second) {
            ReportDuplicateName(item, "node group \"" + g->name + "\" is defined twice");
          }
          spec.node_groups.push_back(std::move(*g));
        }
      }
    }
  }
  return spec;
}

// ---- policies and images -------------------------------------------------------------------

SnapshotPolicySpec ParseSnapshotPolicySpec(const Map& m) {
  SnapshotPolicySpec spec;
  if (auto f = m.Require("selector")) {
    if (auto s = ParseSelector(*f)) spec.selector = std::move(*s);
  }
  CheckSchedule(m, spec.schedule);
  CheckTimeZone(m, spec.time_zone);
  GetBool(m, "suspend", spec.suspend);
  if (auto f = m.Get("namePattern")) {
    if (auto pattern = f->NonEmptyString()) {
      auto probe = RenderSnapshotName(*pattern, "vm", "policy", std::chrono::sys_seconds{},
                                      UtcZone());
      if (!probe) {
        f->Error("invalid name pattern: " + probe.error().message);
      } else if (probe->find('/') != std::string::npos) {
        f->Error("a snapshot name cannot contain '/'");
      } else {
        spec.name_pattern = *pattern;
      }
    }
  }
  GetString(m, "description", spec.description);
  GetBool(m, "memory", spec.memory);
  GetBool(m, "quiesce", spec.quiesce);
  GetInt(m, "maxParallel", 1, 20, spec.max_parallel);
  if (auto f = m.Get("retention")) {
    if (auto r = ParseRetention(*f)) spec.retention = *r;
  }
  return spec;
}

BackupPolicySpec ParseBackupPolicySpec(const Map& m) {
  BackupPolicySpec spec;
  if (auto f = m.Require("selector")) {
    if (auto s = ParseSelector(*f)) spec.selector = std::move(*s);
  }
  CheckSchedule(m, spec.schedule);
  CheckTimeZone(m, spec.time_zone);
  GetBool(m, "suspend", spec.suspend);
  if (auto f = m.Require("target")) {
    Map t(*f, {"directory", "pool"});
    if (t.valid()) {
      // Backups go into a directory on the controller; writing them into a pool on the VM's
      // node is not implemented, and a policy must not look accepted and then fail every run.
      if (auto p = t.Get("pool")) {
        p->Error("target.pool is not supported yet: use target.directory");
      } else if (!t.Get("directory")) {
        f->Error("give \"directory\": where the backups go on the controller (target.pool is not supported yet)");
      }
      if (auto d = t.Get("directory")) {
        if (auto dir = d->NonEmptyString()) {
          if (!dir->starts_with("/")) {
            d->Error("must be an absolute directory, got \"" + *dir + "\"");
          } else {
            spec.target.directory = *dir;
          }
        }
      }
    }
  }
  GetEnum(m, "mode", spec.mode);
  if (auto f = m.Get("compression")) {
    if (f->IsScalar() && (f->node().Scalar() == "lzo" || f->node().Scalar() == "0")) {
      f->Error("compression \"" + f->node().Scalar() +
               "\" is not supported; use zstd (recommended), gzip or none");
    } else if (auto c = f->Enum<Compression>()) {
      spec.compression = *c;
    }
  }
  if (auto f = m.Get("compressionLevel")) {
    const int max = spec.compression == Compression::kGzip ? 9 : 19;
    if (spec.compression == Compression::kNone) {
      f->Error("compressionLevel needs compression zstd or gzip");
    } else if (auto v = f->Integer(1, max)) {
      spec.compression_level = static_cast<int>(*v);
    }
  }
  if (auto f = m.Get("retention")) {
    if (auto r = ParseRetention(*f)) spec.retention = *r;
  }
  GetBool(m, "protect", spec.protect);
  GetInt(m, "maxParallel", 1, 20, spec.max_parallel);
  GetBool(m, "verify", spec.verify);
  GetString(m, "description", spec.description);
  return spec;
}

ImageSpec ParseImageSpec(const Map& m, const std::string& file_dir) {
  ImageSpec spec;
  if (auto f = m.Require("source")) {
    if (auto src = f->NonEmptyString()) {
      static const std::regex kScheme("([a-z][a-z0-9+.-]*)://.*");
      std::smatch match;
      if (std::regex_match(*src, match, kScheme)) {
        const std::string scheme = match[1];
        if (scheme != "file" && scheme != "http" && scheme != "https") {
          f->Error("unsupported URL scheme \"" + scheme + "\": use file://, http://, https:// "
                   "or a path");
        } else {
          spec.source = *src;
        }
      } else if (src->starts_with("/") || file_dir.empty()) {
        spec.source = *src;
      } else {
        spec.source = (std::filesystem::path(file_dir) / *src).lexically_normal().string();
      }
    }
  }
  if (auto f = m.Require("sha256")) {
    if (auto sum = f->String()) {
      static const std::regex kHex("[0-9a-fA-F]{64}");
      if (!std::regex_match(*sum, kHex)) {
        f->Error("expected 64 hexadecimal digits (a SHA-256 checksum)");
      } else {
        std::string lower = *sum;
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        spec.sha256 = lower;
      }
    }
  }
  GetEnum(m, "format", spec.format);
  if (auto f = m.Get("pool")) {
    if (auto pool = f->NonEmptyString()) spec.pool = *pool;
  }
  if (auto f = m.Get("os")) {
    Map os(*f, {"type", "variant", "arch", "firmware"});
    if (os.valid()) {
      GetString(os, "type", spec.os.type);
      GetString(os, "variant", spec.os.variant);
      GetString(os, "arch", spec.arch);
      if (auto fw = os.Get("firmware")) {
        if (auto type = fw->Enum<FirmwareType>()) spec.firmware = std::string(EnumName(*type));
      }
    }
  }
  GetString(m, "description", spec.description);
  return spec;
}

// ---- SyncWindow, DisruptionBudget ------------------------------------------------------------

SyncWindowSpec ParseSyncWindowSpec(const Map& m) {
  SyncWindowSpec spec;
  if (auto f = m.Require("type")) {
    if (auto t = f->Enum<SyncWindowType>()) spec.type = *t;
  }
  if (m.Require("schedule")) CheckSchedule(m, spec.schedule);
  if (m.Require("duration")) GetDuration(m, "duration", spec.duration);
  CheckTimeZone(m, spec.time_zone);
  if (auto f = m.Require("selector")) {
    if (auto s = ParseSelector(*f)) spec.selector = std::move(*s);
  }
  GetBool(m, "manualSync", spec.manual_sync);
  return spec;
}

DisruptionBudgetSpec ParseDisruptionBudgetSpec(const Map& m) {
  DisruptionBudgetSpec spec;
  if (auto f = m.Require("selector")) {
    if (auto s = ParseSelector(*f)) spec.selector = std::move(*s);
  }
  if (m.Require("maxUnavailable")) GetMaxUnavailable(m, spec.max_unavailable);
  return spec;
}

// ---- document ------------------------------------------------------------------------------

std::optional<ObjectMeta> ParseMetadata(const Field& field, SourceLocation& name_location) {
  Map m(field, {"name", "labels", "annotations", "tags"});
  if (!m.valid()) return std::nullopt;
  ObjectMeta meta;
  if (auto f = m.Require("name")) {
    name_location = f->location();
    if (auto name = f->String()) {
      if (!IsResourceName(*name)) {
        f->Error("invalid name \"" + *name +
                 "\": use at most 63 lowercase letters, digits, '-' and '.', starting and "
                 "ending with a letter or digit");
      } else {
        meta.name = *name;
      }
    }
  }
  GetLabels(m, "labels", meta.labels, true);
  GetLabels(m, "annotations", meta.annotations, false);
  if (auto f = m.Get("tags")) {
    if (auto items = f->Items()) {
      for (const Field& item : *items) {
        if (auto tag = item.String()) {
          if (!IsTag(*tag)) {
            item.Error("\"" + *tag + "\" is not a tag (letters, digits, '-', '_', '.', ':', '/', '+')");
          } else {
            meta.tags.push_back(*tag);
          }
        }
      }
    }
  }
  return meta;
}

}  // namespace

std::optional<ParsedDocument> ParseDocument(const YAML::Node& root, DiagnosticSink& sink,
                                            const std::string& file_dir, DocumentFacts& facts) {
  const int errors_before = sink.errors();
  Field root_field(&sink, root, root.Mark(), "");
  Map doc(root_field, {"apiVersion", "kind", "metadata", "spec"});
  if (!doc.valid()) return std::nullopt;

  if (auto f = doc.Require("apiVersion")) {
    if (auto v = f->String(); v && *v != kApiVersion) {
      f->Error("expected apiVersion " + std::string(kApiVersion) + ", got \"" + *v + "\"");
    }
  }
  std::optional<Kind> kind;
  if (auto f = doc.Require("kind")) kind = f->Enum<Kind>();

  ParsedDocument parsed;
  std::optional<ObjectMeta> meta;
  if (auto f = doc.Require("metadata")) {
    meta = ParseMetadata(*f, parsed.name_location);
    if (meta) meta->location = sink.Locate(root.Mark());
  }
  auto spec_field = doc.Require("spec");
  if (!kind || !meta || !spec_field) return std::nullopt;
  parsed.kind = *kind;

  switch (*kind) {
    case Kind::kVirtualMachine: {
      Map spec(*spec_field, kVmKeys);
      if (!spec.valid()) return std::nullopt;
      VmContext ctx{sink, facts, {Kind::kVirtualMachine, meta->name}, "", {}};
      VirtualMachine vm{*meta, ParseVmSpec(spec, ctx, false), std::nullopt};
      if (vm.spec.cloud_init && vm.spec.cloud_init->hostname.empty()) {
        vm.spec.cloud_init->hostname = vm.meta.name;
      }
      parsed.vm = std::move(vm);
      break;
    }
    case Kind::kCluster: {
      Map spec(*spec_field, {"rollbackStrategy", "maxParallel", "cloudInit", "nodeGroups"});
      if (!spec.valid()) return std::nullopt;
      parsed.cluster = Cluster{*meta, ParseClusterSpec(spec, meta->name, sink, facts)};
      break;
    }
    case Kind::kSnapshotPolicy: {
      Map spec(*spec_field, {"selector", "schedule", "timeZone", "suspend", "namePattern",
                             "description", "memory", "quiesce", "maxParallel", "retention"});
      if (!spec.valid()) return std::nullopt;
      parsed.snapshot_policy = SnapshotPolicy{*meta, ParseSnapshotPolicySpec(spec)};
      break;
    }
    case Kind::kBackupPolicy: {
      Map spec(*spec_field, {"selector", "schedule", "timeZone", "suspend", "target", "mode",
                             "compression", "compressionLevel", "retention", "protect",
                             "maxParallel", "verify", "description"});
      if (!spec.valid()) return std::nullopt;
      parsed.backup_policy = BackupPolicy{*meta, ParseBackupPolicySpec(spec)};
      break;
    }
    case Kind::kImage: {
      Map spec(*spec_field, {"source", "sha256", "format", "pool", "os", "description"});
      if (!spec.valid()) return std::nullopt;
      parsed.image = Image{*meta, ParseImageSpec(spec, file_dir)};
      break;
    }
    case Kind::kSyncWindow: {
      Map spec(*spec_field, {"type", "schedule", "duration", "timeZone", "selector", "manualSync"});
      if (!spec.valid()) return std::nullopt;
      parsed.sync_window = SyncWindow{*meta, ParseSyncWindowSpec(spec)};
      break;
    }
    case Kind::kDisruptionBudget: {
      Map spec(*spec_field, {"selector", "maxUnavailable"});
      if (!spec.valid()) return std::nullopt;
      parsed.disruption_budget = DisruptionBudget{*meta, ParseDisruptionBudgetSpec(spec)};
      break;
    }
  }
  if (sink.errors() != errors_before) return std::nullopt;
  return parsed;
}

std::optional<Selector> ParseSelectorField(const Field& field) { return ParseSelector(field); }

void ParseIgnorePaths(const Field& field, std::vector<std::string>& out) {
  auto items = field.Items();
  if (!items) return;
  for (const Field& item : *items) {
    auto path = item.NonEmptyString();
    if (!path) continue;
    if (auto problem = CheckIgnorePath(*path)) {
      item.Error(*problem);
    } else {
      out.push_back(*path);
    }
  }
}

}  // namespace gitvirt::manifest_internal
