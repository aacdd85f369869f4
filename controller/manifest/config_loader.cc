#include "gitvirt/manifest/config_loader.h"

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "documents.h"
#include "yaml_reader.h"

namespace gitvirt {
namespace {

using manifest_internal::DiagnosticSink;
using manifest_internal::Field;
using manifest_internal::Map;

std::string Resolve(const std::filesystem::path& base, const std::string& path) {
  if (path.empty()) return path;
  std::filesystem::path p(path);
  if (p.is_absolute()) return p.lexically_normal().string();
  return (base / p).lexically_normal().string();
}

void ReadString(const Map& m, std::string_view key, std::string& out) {
  if (auto f = m.Get(key)) {
    if (auto v = f->NonEmptyString()) out = *v;
  }
}

void ReadBool(const Map& m, std::string_view key, bool& out) {
  if (auto f = m.Get(key)) {
    if (auto v = f->Bool()) out = *v;
  }
}

double ReadRatio(const Field& f) {
  const std::string& s = f.node().Scalar();
  try {
    std::size_t used = 0;
    const double v = std::stod(s, &used);
    if (used == s.size() && v > 0 && v <= 100) return v;
  } catch (...) {
  }
  f.Error("expected a ratio such as 1.0 or 4.0, got " + f.Describe());
  return 0;
}

NodeConfig ReadNode(const Field& field, const std::filesystem::path& base) {
  NodeConfig node;
  Map m(field, {"name", "uri", "labels", "capacity", "overcommit", "pools", "drain", "maxParallel", "migration",
                "consoleDir"});
  if (!m.valid()) return node;
  if (auto f = m.Require("name")) {
    if (auto name = f->String()) {
      static const std::regex kName("[a-z0-9]([-a-z0-9.]*[a-z0-9])?");
      if (!std::regex_match(*name, kName)) {
        f->Error("invalid node name \"" + *name + "\"");
      } else {
        node.name = *name;
      }
    }
  }
  if (auto f = m.Require("uri")) {
    if (auto uri = f->NonEmptyString()) {
      if (uri->starts_with("sim:")) {
        const std::string path = uri->substr(4);
        if (path.empty()) {
          f->Error("sim: needs a state file path, e.g. sim:state/hv1.xml");
        } else {
          node.uri = "sim:" + Resolve(base, path);
        }
      } else if (uri->find(":/") == std::string::npos) {
        f->Error("\"" + *uri + "\" is not a libvirt URI (qemu:///system, qemu+ssh://host/system, "
                 "test:///default) or sim:PATH");
      } else {
        node.uri = *uri;
      }
    }
  }
  if (auto f = m.Get("labels")) {
    if (auto labels = f->StringMap()) node.labels = std::move(*labels);
  }
  if (auto f = m.Get("capacity")) {
    Map c(*f, {"vcpus", "memory"});
    if (c.valid()) {
      if (auto v = c.Get("vcpus")) {
        if (auto n = v->Integer(1, 100000)) node.capacity_vcpus = static_cast<int>(*n);
      }
      if (auto v = c.Get("memory")) {
        if (auto n = v->Size()) node.capacity_memory = *n;
      }
    }
  }
  if (auto f = m.Get("overcommit")) {
    Map o(*f, {"cpu", "memory"});
    if (o.valid()) {
      if (auto v = o.Get("cpu")) node.cpu_overcommit = ReadRatio(*v);
      if (auto v = o.Get("memory")) node.memory_overcommit = ReadRatio(*v);
    }
  }
  if (auto f = m.Get("pools")) {
    if (auto items = f->Items()) {
      for (const Field& item : *items) {
        Map p(item, {"name", "path", "shared"});
        if (!p.valid()) continue;
        PoolConfig pool;
        if (auto n = p.Require("name")) {
          if (auto v = n->NonEmptyString()) pool.name = *v;
        }
        if (auto n = p.Require("path")) {
          if (auto v = n->NonEmptyString()) pool.path = Resolve(base, *v);
        }
        ReadBool(p, "shared", pool.shared);
        node.pools.push_back(std::move(pool));
      }
    }
  }
  ReadBool(m, "drain", node.drain);
  if (auto f = m.Get("migration")) {
    Map mg(*f, {"address"});
    if (mg.valid()) {
      if (auto a = mg.Get("address")) {
        if (auto v = a->NonEmptyString()) node.migration_address = *v;
      }
    }
  }
  if (auto f = m.Get("maxParallel")) {
    if (auto v = f->Integer(1, 256)) node.max_parallel = static_cast<int>(*v);
  }
  if (auto f = m.Get("consoleDir")) {
    if (auto v = f->NonEmptyString()) {
      if (v->front() != '/') {
        f->Error("consoleDir is a directory on the node and must be absolute, got \"" + *v + "\"");
      } else {
        node.console_dir = *v;
      }
    }
  }
  return node;
}

}  // namespace

ConfigLoadResult ParseControllerConfig(const std::string& content,
                                       const std::filesystem::path& file) {
  ConfigLoadResult result;
  const std::filesystem::path abs = std::filesystem::absolute(file).lexically_normal();
  const std::filesystem::path base = abs.parent_path();
  result.config.file = abs.string();
  result.config.base_dir = base.string();
  result.config.state = (base / "gitvirt.db").string();
  DiagnosticSink sink(file.string(), &result.diagnostics);
  YAML::Node root;
  try {
    root = YAML::Load(content);
  } catch (const YAML::Exception& e) {
    sink.Error(e.mark, "", "yaml: " + e.msg);
    return result;
  }
  Field root_field(&sink, root, root.Mark(), "");
  Map doc(root_field, {"apiVersion", "kind", "source", "nodes", "sync", "apply", "state",
                       "secretsDir", "api", "ignoreDifferences"});
  if (!doc.valid()) return result;
  if (auto f = doc.Require("apiVersion")) {
    if (auto v = f->String(); v && *v != "gitvirt.dev/v1") {
      f->Error("expected apiVersion gitvirt.dev/v1, got \"" + *v + "\"");
    }
  }
  if (auto f = doc.Require("kind")) {
    if (auto v = f->String(); v && *v != "ControllerConfig") {
      f->Error("expected kind ControllerConfig, got \"" + *v + "\"");
    }
  }
  ControllerConfig& config = result.config;
  if (auto f = doc.Get("source")) {
    Map s(*f, {"path", "repo", "ref", "subPath", "tokenFile", "sshKeyFile", "caFile", "interval"});
    if (s.valid()) {
      ReadString(s, "path", config.source.path);
      ReadString(s, "repo", config.source.repo);
      ReadString(s, "ref", config.source.ref);
      ReadString(s, "subPath", config.source.sub_path);
      ReadString(s, "tokenFile", config.source.token_file);
      ReadString(s, "sshKeyFile", config.source.ssh_key_file);
      ReadString(s, "caFile", config.source.ca_file);
      if (auto iv = s.Get("interval")) {
        if (auto d = iv->Duration()) config.source.interval = *d;
      }
      if (s.Has("path") && s.Has("repo")) f->Error("give \"path\" or \"repo\", not both");
      config.source.path = Resolve(base, config.source.path);
      config.source.token_file = Resolve(base, config.source.token_file);
      config.source.ssh_key_file = Resolve(base, config.source.ssh_key_file);
      config.source.ca_file = Resolve(base, config.source.ca_file);
      // A local repository path is resolved too; URLs are left alone.
      if (!config.source.repo.empty() && config.source.repo.find("://") == std::string::npos &&
          config.source.repo.find('@') == std::string::npos) {
        config.source.repo = Resolve(base, config.source.repo);
      }
    }
  }
  if (auto f = doc.Require("nodes")) {
    if (auto items = f->Items()) {
      std::set<std::string> names;
      for (const Field& item : *items) {
        NodeConfig node = ReadNode(item, base);
        if (!node.name.empty() && !names.insert(node.name).second) {
          item.Error("node \"" + node.name + "\" is listed twice");
        }
        config.nodes.push_back(std::move(node));
      }
      if (items->empty()) f->Error("list at least one node");
    }
  }
  if (auto f = doc.Get("sync")) {
    Map s(*f, {"auto", "prune", "selfHeal"});
    if (s.valid()) {
      ReadBool(s, "auto", config.sync.automatic);
      ReadBool(s, "prune", config.sync.prune);
      ReadBool(s, "selfHeal", config.sync.self_heal);
    }
  }
  if (auto f = doc.Get("apply")) {
    Map a(*f, {"parallel", "rollback", "stepTimeout"});
    if (a.valid()) {
      if (auto p = a.Get("parallel")) {
        if (auto v = p->Integer(1, 1024)) config.apply.parallel = static_cast<int>(*v);
      }
      if (auto r = a.Get("rollback")) {
        if (auto v = r->Enum<RollbackStrategy>()) config.apply.rollback = *v;
      }
      if (auto t = a.Get("stepTimeout")) {
        if (auto v = t->Duration()) config.apply.step_timeout = *v;
      }
    }
  }
  if (auto f = doc.Get("state")) {
    if (auto v = f->NonEmptyString()) config.state = Resolve(base, *v);
  }
  if (auto f = doc.Get("secretsDir")) {
    if (auto v = f->NonEmptyString()) config.secrets_dir = Resolve(base, *v);
  }
  if (auto f = doc.Get("api")) {
    Map a(*f, {"listen", "tokensFile", "tls"});
    if (a.valid()) {
      ReadString(a, "listen", config.api.listen);
      if (auto t = a.Get("tokensFile")) {
        if (auto v = t->NonEmptyString()) config.api.tokens_file = Resolve(base, *v);
      }
      if (auto t = a.Get("tls")) {
        Map tls(*t, {"cert", "key"});
        if (tls.valid()) {
          if (auto c = tls.Require("cert")) {
            if (auto v = c->NonEmptyString()) config.api.tls_cert = Resolve(base, *v);
          }
          if (auto k = tls.Require("key")) {
            if (auto v = k->NonEmptyString()) config.api.tls_key = Resolve(base, *v);
          }
        }
      }
    }
  }
  if (auto f = doc.Get("ignoreDifferences")) {
    // [{selector: {...}, paths: [memory, disks[*].size]}]: drift the fleet tolerates.
    if (auto items = f->Items()) {
      for (const Field& item : *items) {
        Map r(item, {"selector", "paths"});
        if (!r.valid()) continue;
        IgnoreDifferencesRule rule;
        if (auto s = r.Require("selector")) {
          if (auto selector = manifest_internal::ParseSelectorField(*s)) rule.selector = std::move(*selector);
        }
        if (auto p = r.Require("paths")) manifest_internal::ParseIgnorePaths(*p, rule.paths);
        config.ignore_differences.push_back(std::move(rule));
      }
    }
  }
  SortDiagnostics(result.diagnostics);
  return result;
}

ConfigLoadResult LoadControllerConfig(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    ConfigLoadResult result;
    result.diagnostics.push_back(Diagnostic{Severity::kError, {file.string(), 0, 0}, "",
                                            "cannot read the controller configuration (use "
                                            "--config FILE, default ./gitvirt.yaml)"});
    return result;
  }
  std::ostringstream content;
  content << in.rdbuf();
  return ParseControllerConfig(content.str(), file);
}

}  // namespace gitvirt
