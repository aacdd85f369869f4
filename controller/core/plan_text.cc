#include "gitvirt/core/plan_text.h"

#include <sstream>

namespace gitvirt {
namespace {

struct Style {
  bool on;
  std::string_view Green() const { return on ? "\033[32m" : ""; }
  std::string_view Yellow() const { return on ? "\033[33m" : ""; }
  std::string_view Red() const { return on ? "\033[31m" : ""; }
  std::string_view Bold() const { return on ? "\033[1m" : ""; }
  std::string_view Reset() const { return on ? "\033[0m" : ""; }
  std::string_view For(ActionType t) const {
    const std::string_view s = ActionSymbol(t);
    if (s == "+") return Green();
    if (s == "-") return Red();
    return Yellow();
  }
};

std::string Mark(ChangeClass c) {
  switch (c) {
    case ChangeClass::kLive: return "";
    case ChangeClass::kRestart: return "  (restart)";
    case ChangeClass::kReplace: return "  (forces replacement)";
    case ChangeClass::kMetadata: return "  (metadata)";
    case ChangeClass::kGrow: return "  (grow)";
    case ChangeClass::kPower: return "";
    case ChangeClass::kDestroy: return "";  // "-> (removed)" says it
  }
  return "";
}

void RenderChange(std::ostringstream& out, const FieldChange& c, const std::string& indent) {
  out << indent << c.path << ": ";
  if (c.before.empty()) {
    out << c.after;
  } else if (c.after.empty()) {
    out << c.before << " -> (removed)";
  } else {
    out << c.before << " -> " << c.after;
  }
  out << Mark(c.change_class) << "\n";
}

}  // namespace

std::string_view ActionSymbol(ActionType type) {
  switch (type) {
    case ActionType::kCreate:
    case ActionType::kImageImport:
    case ActionType::kBackupRestore:  // counted "to add" too: it makes the VM
    case ActionType::kSnapshot:
    case ActionType::kBackup: return "+";
    case ActionType::kReplace: return "-/+";
    case ActionType::kDelete:
    case ActionType::kRelease:
    case ActionType::kVolumeDelete:
    case ActionType::kSnapshotDelete:
    case ActionType::kBackupDelete: return "-";
    case ActionType::kAdopt: return "&";
    default: return "~";
  }
}

std::string RenderSummary(const Plan& plan) {
  const PlanSummary s = plan.Summary();
  std::ostringstream out;
  if (plan.InSync()) {
    // Ignored differences are in sync by the user's own rule; still say how many were set aside.
    out << "No changes. The hypervisors match the manifests.";
    if (s.ignored > 0) out << " " << s.ignored << " ignored (ignoreDifferences).";
    return out.str();
  }
  // Like terraform's "N to import": adoptions are named first, and only when there is one.
  out << "Plan: ";
  if (s.adopt > 0) out << s.adopt << " to adopt, ";
  out << s.add << " to add, " << s.change << " to change, " << s.replace << " to replace, " << s.destroy
      << " to destroy.";
  if (s.pending > 0) out << " " << s.pending << " pending (not applied, see above).";
  if (s.ignored > 0) out << " " << s.ignored << " ignored (ignoreDifferences).";
  if (!plan.unreachable.empty()) {
    out << " " << plan.unreachable.size() << " node" << (plan.unreachable.size() == 1 ? "" : "s")
        << " not seen (unreachable, see above).";
  }
  return out.str();
}

std::string RenderPlan(const Plan& plan, const PlanTextOptions& options) {
  const Style st{options.color};
  std::ostringstream out;
  if (plan.source.type != SourceRef::Type::kNone) {
    out << "Source: " << (options.source.empty() ? plan.source.ToString() : options.source);
    if (!plan.revision.empty()) out << " @ " << plan.revision;
    out << "\n";
  }
  if (!plan.actions.empty()) {
    out << "\ngitvirt will perform these actions, in this order:\n\n";
    for (const Action& a : plan.actions) {
      out << "  " << st.For(a.type) << ActionSymbol(a.type) << " " << EnumName(a.type) << st.Reset()
          << " " << st.Bold() << a.target.ToString() << st.Reset();
      if (a.type == ActionType::kMigrate) {
        out << " from " << a.source_node << " to " << a.node;
      } else if (!a.node.empty()) {
        out << " on " << a.node;
      }
      out << "\n";
      if (!a.reason.empty()) out << "      # " << a.reason << "\n";
      for (const FieldChange& c : a.changes) RenderChange(out, c, "      ");
      if (!a.depends_on.empty()) {
        out << "      after: ";
        for (std::size_t i = 0; i < a.depends_on.size(); ++i) {
          if (i == 3) {
            out << ", and " << a.depends_on.size() - 3 << " more";
            break;
          }
          out << (i ? ", " : "") << a.depends_on[i];
        }
        out << "\n";
      }
    }
  }
  if (!plan.pending.empty()) {
    out << "\nPending, not applied by this plan:\n\n";
    for (const PendingChange& p : plan.pending) {
      out << "  " << st.Yellow() << "!" << st.Reset() << " " << p.target.ToString();
      if (!p.node.empty()) out << " on " << p.node;
      out << ": " << p.reason << "\n";
      for (const FieldChange& c : p.changes) RenderChange(out, c, "      ");
    }
  }
  if (!plan.ignored.empty()) {
    out << "\nIgnored differences (ignoreDifferences), never applied:\n\n";
    for (const PendingChange& p : plan.ignored) {
      out << "  " << "~ ignored " << p.target.ToString();
      if (!p.node.empty()) out << " on " << p.node;
      out << ": " << p.reason << "\n";
      for (const FieldChange& c : p.changes) RenderChange(out, c, "      ");
    }
  }
  if (!plan.unmanaged.empty()) {
    out << "\nLeft alone (not managed by gitvirt): ";
    for (std::size_t i = 0; i < plan.unmanaged.size(); ++i) {
      if (i == 5) {
        out << ", and " << plan.unmanaged.size() - 5 << " more";
        break;
      }
      out << (i ? ", " : "") << plan.unmanaged[i];
    }
    out << "\n";
  }
  if (!plan.unreachable.empty()) {
    out << "\nNot seen: this plan leaves out what runs on these nodes:\n\n";
    for (const auto& [node, why] : plan.unreachable) {
      out << "  " << st.Yellow() << "!" << st.Reset() << " node " << node << " is unreachable: " << why << "\n";
    }
  }
  if (!plan.warnings.empty()) {
    out << "\nWarnings:\n\n";
    for (const Diagnostic& w : plan.warnings) out << "  " << w.path << ": " << w.message << "\n";
  }
  out << "\n" << st.Bold() << RenderSummary(plan) << st.Reset() << "\n";
  return out.str();
}

}  // namespace gitvirt
