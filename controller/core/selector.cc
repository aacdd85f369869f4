#include "gitvirt/core/selector.h"

#include <algorithm>
#include <cctype>

namespace gitvirt {
namespace {

// ---------------------------------------------------------------------------------------------
// Globs

// A `[...]` set starting at pattern[open]; nullopt when it has no closing `]`.
struct CharClass {
  bool negated = false;
  std::string_view body;  // between the brackets and after the negation mark
  std::size_t end = 0;    // index just past the closing `]`

  bool Contains(char c) const {
    bool found = false;
    for (std::size_t i = 0; i < body.size(); ++i) {
      if (i + 2 < body.size() && body[i + 1] == '-') {
        found = found || (body[i] <= c && c <= body[i + 2]);
        i += 2;
      } else {
        found = found || body[i] == c;
      }
    }
    return found != negated;
  }
};

std::optional<CharClass> ParseClass(std::string_view pattern, std::size_t open) {
  CharClass cls;
  std::size_t i = open + 1;
  if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
    cls.negated = true;
    ++i;
  }
  const std::size_t body_start = i;
  if (i < pattern.size() && pattern[i] == ']') ++i;  // a leading `]` is literal
  while (i < pattern.size() && pattern[i] != ']') ++i;
  if (i >= pattern.size()) return std::nullopt;
  cls.body = pattern.substr(body_start, i - body_start);
  cls.end = i + 1;
  return cls;
}

// ---------------------------------------------------------------------------------------------
// Tag expressions

bool IsTermChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' ||
         c == '/' || c == '-' || c == '+';
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::unexpected<Error> ErrorAt(std::size_t column, std::string message) {
  return Fail(ErrorCode::kInvalidArgument,
              "at column " + std::to_string(column) + ": " + std::move(message));
}

struct Token {
  enum class Kind { kWord, kAnd, kOr, kNot, kEquals, kNotEquals, kOpen, kClose, kEnd };
  Kind kind = Kind::kEnd;
  std::string_view text;
  std::size_t column = 0;  // 1-based

  // How messages refer to the token: keywords upper case, symbols quoted.
  std::string Describe() const {
    switch (kind) {
      case Kind::kAnd:
      case Kind::kOr:
      case Kind::kNot:
        return Upper(text);
      case Kind::kEnd:
        return "the end";
      default:
        return "'" + std::string(text) + "'";
    }
  }
};

Result<std::vector<Token>> Tokenize(std::string_view text) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const std::size_t column = i + 1;
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '(' || c == ')') {
      tokens.push_back(
          {c == '(' ? Token::Kind::kOpen : Token::Kind::kClose, text.substr(i, 1), column});
      ++i;
    } else if (c == '=') {
      tokens.push_back({Token::Kind::kEquals, text.substr(i, 1), column});
      ++i;
    } else if (c == '!' && i + 1 < text.size() && text[i + 1] == '=') {
      tokens.push_back({Token::Kind::kNotEquals, text.substr(i, 2), column});
      i += 2;
    } else if (c == '!') {
      return ErrorAt(column, "'!' must be followed by '=' (write NOT to negate)");
    } else if (IsTermChar(c)) {
      std::size_t end = i;
      while (end < text.size() && IsTermChar(text[end])) ++end;
      const std::string_view word = text.substr(i, end - i);
      const std::string upper = Upper(word);
      Token::Kind kind = Token::Kind::kWord;
      if (upper == "AND") kind = Token::Kind::kAnd;
      if (upper == "OR") kind = Token::Kind::kOr;
      if (upper == "NOT") kind = Token::Kind::kNot;
      tokens.push_back({kind, word, column});
      i = end;
    } else {
      return ErrorAt(column, "unexpected character '" + std::string(1, c) + "'");
    }
  }
  tokens.push_back({Token::Kind::kEnd, {}, text.size() + 1});
  return tokens;
}

// Recursive descent: or := and (OR and)*; and := not (AND not)*; not := NOT not | primary;
// primary := '(' or ')' | word | word ('=' | '!=') word.
class TagParser {
 public:
  explicit TagParser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<std::vector<TagExpression::Node>> Parse() {
    auto root = ParseOr(0);
    if (!root) return std::unexpected(root.error());
    const Token& extra = Peek();
    if (extra.kind == Token::Kind::kClose) return ErrorAt(extra.column, "unmatched ')'");
    if (extra.kind != Token::Kind::kEnd) {
      return ErrorAt(extra.column, "expected AND or OR before " + extra.Describe());
    }
    return std::move(nodes_);
  }

 private:
  // Deep enough for any real selector, shallow enough to never exhaust the stack.
  static constexpr int kMaxDepth = 100;

  const Token& Peek() const { return tokens_[pos_]; }
  const Token& Take() { return tokens_[pos_++]; }

  int Add(TagExpression::Node node) {
    nodes_.push_back(std::move(node));
    return static_cast<int>(nodes_.size()) - 1;
  }

  Result<int> ParseOr(int depth) {
    auto left = ParseAnd(depth);
    if (!left) return left;
    while (Peek().kind == Token::Kind::kOr) {
      Take();
      auto right = ParseAnd(depth);
      if (!right) return right;
      left = Add({TagExpression::Op::kOr, {}, {}, *left, *right});
    }
    return left;
  }

  Result<int> ParseAnd(int depth) {
    auto left = ParseNot(depth);
    if (!left) return left;
    while (Peek().kind == Token::Kind::kAnd) {
      Take();
      auto right = ParseNot(depth);
      if (!right) return right;
      left = Add({TagExpression::Op::kAnd, {}, {}, *left, *right});
    }
    return left;
  }

  Result<int> ParseNot(int depth) {
    if (depth > kMaxDepth) return ErrorAt(Peek().column, "expression nested too deeply");
    if (Peek().kind != Token::Kind::kNot) return ParsePrimary(depth);
    Take();
    auto operand = ParseNot(depth + 1);
    if (!operand) return operand;
    return Add({TagExpression::Op::kNot, {}, {}, *operand, -1});
  }

  Result<int> ParsePrimary(int depth) {
    const Token& token = Peek();
    if (token.kind == Token::Kind::kOpen) {
      Take();
      auto inner = ParseOr(depth + 1);
      if (!inner) return inner;
      if (Peek().kind != Token::Kind::kClose) {
        return ErrorAt(Peek().column, "expected ')' to close the '(' at column " +
                                          std::to_string(token.column) + ", found " +
                                          Peek().Describe());
      }
      Take();
      return inner;
    }
    if (token.kind != Token::Kind::kWord) {
      if (pos_ == 0) return ErrorAt(token.column, "expected a tag or '('");
      return ErrorAt(token.column, "expected a tag or '(' after " + tokens_[pos_ - 1].Describe());
    }
    Take();
    const Token::Kind next = Peek().kind;
    if (next != Token::Kind::kEquals && next != Token::Kind::kNotEquals) {
      return Add({TagExpression::Op::kTag, std::string(token.text)});
    }
    const Token& op = Take();
    const Token& value = Peek();
    // A value is taken literally, even when it spells a keyword ("state=not").
    if (value.kind != Token::Kind::kWord && value.kind != Token::Kind::kAnd &&
        value.kind != Token::Kind::kOr && value.kind != Token::Kind::kNot) {
      return ErrorAt(value.column, "expected a value after " + op.Describe());
    }
    Take();
    return Add({next == Token::Kind::kEquals ? TagExpression::Op::kLabelEquals
                                             : TagExpression::Op::kLabelNotEquals,
                std::string(token.text), std::string(value.text)});
  }

  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  std::vector<TagExpression::Node> nodes_;
};

bool Evaluate(const std::vector<TagExpression::Node>& nodes, int index, const Labels& labels,
              const std::vector<std::string>& tags) {
  const TagExpression::Node& node = nodes[static_cast<std::size_t>(index)];
  switch (node.op) {
    case TagExpression::Op::kTag:
      return std::find(tags.begin(), tags.end(), node.key) != tags.end();
    case TagExpression::Op::kLabelEquals: {
      const auto it = labels.find(node.key);
      return it != labels.end() && it->second == node.value;
    }
    case TagExpression::Op::kLabelNotEquals: {
      const auto it = labels.find(node.key);
      return it == labels.end() || it->second != node.value;
    }
    case TagExpression::Op::kNot:
      return !Evaluate(nodes, node.left, labels, tags);
    case TagExpression::Op::kAnd:
      return Evaluate(nodes, node.left, labels, tags) && Evaluate(nodes, node.right, labels, tags);
    case TagExpression::Op::kOr:
      return Evaluate(nodes, node.left, labels, tags) || Evaluate(nodes, node.right, labels, tags);
  }
  return false;
}

std::string Render(const std::vector<TagExpression::Node>& nodes, int index) {
  const TagExpression::Node& node = nodes[static_cast<std::size_t>(index)];
  switch (node.op) {
    case TagExpression::Op::kTag:
      return node.key;
    case TagExpression::Op::kLabelEquals:
      return node.key + "=" + node.value;
    case TagExpression::Op::kLabelNotEquals:
      return node.key + "!=" + node.value;
    case TagExpression::Op::kNot:
      return "(NOT " + Render(nodes, node.left) + ")";
    case TagExpression::Op::kAnd:
      return "(" + Render(nodes, node.left) + " AND " + Render(nodes, node.right) + ")";
    case TagExpression::Op::kOr:
      return "(" + Render(nodes, node.left) + " OR " + Render(nodes, node.right) + ")";
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Kubernetes label selectors

bool IsKeyChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
         c == '/';
}

bool IsValueChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}

class LabelSelectorParser {
 public:
  explicit LabelSelectorParser(std::string_view text) : text_(text) {}

  Result<LabelSelector> Parse() {
    LabelSelector selector;
    SkipSpaces();
    if (AtEnd()) return selector;
    while (true) {
      auto requirement = ParseRequirement();
      if (!requirement) return std::unexpected(requirement.error());
      selector.requirements.push_back(std::move(*requirement));
      SkipSpaces();
      if (AtEnd()) return selector;
      if (text_[pos_] != ',') return ErrorAt(Column(), "expected ',' between requirements");
      ++pos_;
      SkipSpaces();
    }
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  std::size_t Column() const { return pos_ + 1; }
  void SkipSpaces() {
    while (!AtEnd() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool Consume(std::string_view s) {
    if (text_.substr(pos_).starts_with(s)) {
      pos_ += s.size();
      return true;
    }
    return false;
  }
  template <typename Pred>
  std::string_view ReadWhile(Pred pred) {
    const std::size_t start = pos_;
    while (!AtEnd() && pred(text_[pos_])) ++pos_;
    return text_.substr(start, pos_ - start);
  }

  Result<LabelRequirement> ParseRequirement() {
    LabelRequirement requirement;
    const bool negated = Consume("!");
    if (negated) SkipSpaces();
    const std::size_t key_column = Column();
    requirement.key = std::string(ReadWhile(IsKeyChar));
    if (requirement.key.empty()) return ErrorAt(key_column, "expected a label key");
    SkipSpaces();
    if (negated || AtEnd() || text_[pos_] == ',') {
      requirement.op =
          negated ? LabelRequirement::Op::kDoesNotExist : LabelRequirement::Op::kExists;
      return requirement;
    }
    if (Consume("==") || Consume("=")) {
      requirement.op = LabelRequirement::Op::kEquals;
    } else if (Consume("!=")) {
      requirement.op = LabelRequirement::Op::kNotEquals;
    }
    if (requirement.op != LabelRequirement::Op::kExists) {
      SkipSpaces();
      requirement.values.emplace_back(ReadWhile(IsValueChar));
      return requirement;
    }

    const std::size_t op_column = Column();
    const std::string_view word = ReadWhile(IsKeyChar);
    if (word != "in" && word != "notin") {
      return ErrorAt(op_column, "expected =, ==, !=, in or notin after '" + requirement.key + "'");
    }
    requirement.op = word == "in" ? LabelRequirement::Op::kIn : LabelRequirement::Op::kNotIn;
    SkipSpaces();
    if (!Consume("(")) return ErrorAt(Column(), "expected '(' after " + std::string(word));
    while (true) {
      SkipSpaces();
      const std::size_t value_column = Column();
      const std::string_view value = ReadWhile(IsValueChar);
      if (value.empty()) return ErrorAt(value_column, "expected a value");
      requirement.values.emplace_back(value);
      SkipSpaces();
      if (Consume(")")) break;
      if (!Consume(",")) return ErrorAt(Column(), "expected ',' or ')' in the value list");
    }
    return requirement;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Greedy matching with one backtrack point: on a mismatch, let the last `*` swallow one more
  // character. Linear in practice, never exponential.
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star_p = std::string_view::npos;  // pattern index after the last `*`
  std::size_t star_t = 0;                       // text index that `*` was matched up to
  while (t < text.size()) {
    bool matched = false;
    std::size_t next_p = p + 1;
    if (p < pattern.size()) {
      const char c = pattern[p];
      if (c == '*') {
        star_p = ++p;
        star_t = t;
        continue;
      }
      if (c == '?') {
        matched = true;
      } else if (const auto cls = c == '[' ? ParseClass(pattern, p) : std::nullopt) {
        matched = cls->Contains(text[t]);
        next_p = cls->end;
      } else {
        matched = c == text[t];
      }
    }
    if (matched) {
      p = next_p;
      ++t;
    } else if (star_p != std::string_view::npos) {
      p = star_p;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool TagExpression::Matches(const Labels& labels, const std::vector<std::string>& tags) const {
  return !nodes_.empty() && Evaluate(nodes_, static_cast<int>(nodes_.size()) - 1, labels, tags);
}

std::string TagExpression::ToString() const {
  return nodes_.empty() ? std::string() : Render(nodes_, static_cast<int>(nodes_.size()) - 1);
}

Result<TagExpression> ParseTagExpression(std::string_view text) {
  auto tokens = Tokenize(text);
  if (!tokens) return std::unexpected(tokens.error());
  auto nodes = TagParser(std::move(*tokens)).Parse();
  if (!nodes) return std::unexpected(nodes.error());
  return TagExpression(std::move(*nodes));
}

Result<CompiledSelector> CompiledSelector::Compile(const Selector& selector) {
  if (!selector.all && selector.match_labels.empty() && selector.names.empty() &&
      selector.tags.empty() && selector.clusters.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "selector: give at least one of all, matchLabels, names, tags, clusters");
  }
  for (std::size_t i = 0; i < selector.names.size(); ++i) {
    if (selector.names[i].empty()) {
      return Fail(ErrorCode::kInvalidArgument,
                  "selector.names[" + std::to_string(i) + "]: empty pattern");
    }
  }
  std::optional<TagExpression> tags;
  if (!selector.tags.empty()) {
    auto parsed = ParseTagExpression(selector.tags);
    if (!parsed) {
      return Fail(ErrorCode::kInvalidArgument, "selector.tags: " + parsed.error().message);
    }
    tags = std::move(*parsed);
  }
  return CompiledSelector(selector, std::move(tags));
}

bool CompiledSelector::Matches(std::string_view name, const Labels& labels,
                               const std::vector<std::string>& tags, std::string_view cluster) const {
  if (!selector_.clusters.empty() &&
      std::find(selector_.clusters.begin(), selector_.clusters.end(), cluster) == selector_.clusters.end()) {
    return false;
  }
  for (const auto& [key, value] : selector_.match_labels) {
    const auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  if (!selector_.names.empty() &&
      std::none_of(selector_.names.begin(), selector_.names.end(),
                   [&](const std::string& glob) { return GlobMatch(glob, name); })) {
    return false;
  }
  return !tags_ || tags_->Matches(labels, tags);
}

bool CompiledSelector::Matches(const VirtualMachine& vm) const {
  return Matches(vm.meta.name, vm.meta.labels, vm.meta.tags, vm.cluster ? std::string_view(vm.cluster->cluster) : "");
}

bool LabelRequirement::Matches(const Labels& labels) const {
  const auto it = labels.find(key);
  const bool present = it != labels.end();
  const auto in_values = [&] {
    return present && std::find(values.begin(), values.end(), it->second) != values.end();
  };
  switch (op) {
    case Op::kEquals:
    case Op::kIn:
      return in_values();
    case Op::kNotEquals:
    case Op::kNotIn:
      return !in_values();
    case Op::kExists:
      return present;
    case Op::kDoesNotExist:
      return !present;
  }
  return false;
}

bool LabelSelector::Matches(const Labels& labels) const {
  return std::all_of(requirements.begin(), requirements.end(),
                     [&](const LabelRequirement& r) { return r.Matches(labels); });
}

Result<LabelSelector> ParseLabelSelector(std::string_view text) {
  return LabelSelectorParser(text).Parse();
}

}  // namespace gitvirt
