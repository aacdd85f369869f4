#pragma once
// Choosing VMs. Policies select VMs by name globs, labels and Proxmox-style tag expressions
// (the manifest's Selector); the CLI's `-l` takes Kubernetes label selector strings. Parsing
// happens once (the loader reports errors with the document's location); the parsed values are
// immutable and may be shared between threads.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"

namespace gitvirt {

// Shell-style glob over the whole text: `*` any run, `?` any one character, `[abc]`, `[a-z]`,
// `[!a]` (or `[^a]`) a set; `]` first in a set is literal. A `[` without a closing `]` is a
// literal `[`. No escapes: VM names cannot contain glob characters. Case-sensitive.
bool GlobMatch(std::string_view pattern, std::string_view text);

// A parsed tag expression: "env-prod AND (client-acme OR client-nixz) AND NOT always-on".
// Terms are tags (characters A-Z a-z 0-9 _ . : / -) or label tests `key=value`, `key!=value`;
// operators AND, OR, NOT in any case, NOT binding tighter than AND, AND tighter than OR;
// parentheses group.
class TagExpression {
 public:
  enum class Op { kTag, kLabelEquals, kLabelNotEquals, kNot, kAnd, kOr };
  // One node of the tree. Children come before their parent in `nodes()`; the root is last.
  struct Node {
    Op op = Op::kTag;
    std::string key;    // the tag, or the label key
    std::string value;  // the label value
    int left = -1;      // kNot: the operand; kAnd, kOr: both operands
    int right = -1;
    friend bool operator==(const Node&, const Node&) = default;
  };

  // A tag term matches when `tags` contains it; `k=v` when labels[k] == v; `k!=v` when label k
  // is absent or different.
  bool Matches(const Labels& labels, const std::vector<std::string>& tags) const;
  // Fully parenthesised, keywords upper case: "(env-prod AND (NOT always-on))".
  std::string ToString() const;
  const std::vector<Node>& nodes() const { return nodes_; }

  friend bool operator==(const TagExpression&, const TagExpression&) = default;

 private:
  friend Result<TagExpression> ParseTagExpression(std::string_view text);
  explicit TagExpression(std::vector<Node> nodes) : nodes_(std::move(nodes)) {}
  std::vector<Node> nodes_;
};

// Errors say where, with 1-based columns: "at column 7: expected a tag or '(' after AND".
Result<TagExpression> ParseTagExpression(std::string_view text);

// A Selector from a policy, checked and ready to match.
class CompiledSelector {
 public:
  // Fails on an empty selector ("selector: give at least one of all, matchLabels, names,
  // tags, clusters"), an empty name pattern or a bad tag expression.
  static Result<CompiledSelector> Compile(const Selector& selector);

  // Every criterion given must hold: `all` matches everything, matchLabels needs each label
  // equal, names needs any glob to match the name, tags the expression to match, clusters the
  // VM to be a member of one of them (`cluster`: the Cluster it belongs to, "" for none).
  bool Matches(std::string_view name, const Labels& labels, const std::vector<std::string>& tags,
               std::string_view cluster = {}) const;
  // The same for a VM of the desired state.
  bool Matches(const VirtualMachine& vm) const;

  const Selector& selector() const { return selector_; }
  friend bool operator==(const CompiledSelector&, const CompiledSelector&) = default;

 private:
  CompiledSelector(Selector selector, std::optional<TagExpression> tags)
      : selector_(std::move(selector)), tags_(std::move(tags)) {}
  Selector selector_;
  std::optional<TagExpression> tags_;
};

// One requirement of a Kubernetes label selector.
struct LabelRequirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Op op = Op::kExists;
  std::vector<std::string> values;  // one for kEquals/kNotEquals, the set for kIn/kNotIn

  // As in Kubernetes: `!=` and `notin` also match when the label is absent.
  bool Matches(const Labels& labels) const;
  friend bool operator==(const LabelRequirement&, const LabelRequirement&) = default;
};

// "tier=web,env!=dev", "zone in (a,b)", "!legacy": every requirement must hold. No
// requirements (the empty string) matches everything.
struct LabelSelector {
  std::vector<LabelRequirement> requirements;
  bool Matches(const Labels& labels) const;
  friend bool operator==(const LabelSelector&, const LabelSelector&) = default;
};

// Accepts `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma-separated,
// with spaces allowed around tokens. Keys use A-Z a-z 0-9 _ . - /, values A-Z a-z 0-9 _ . -
// (and may be empty after = and !=). Errors give the 1-based column.
Result<LabelSelector> ParseLabelSelector(std::string_view text);

}  // namespace gitvirt
