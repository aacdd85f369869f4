#include "gitvirt/core/source_ref.h"

namespace gitvirt {
namespace {

constexpr std::string_view kDirectory = "dir:";
constexpr std::string_view kGit = "git:";
constexpr std::string_view kCommand = "cli:";
constexpr std::string_view kPolicy = "policy:";
constexpr std::string_view kFile = "file:";
constexpr std::string_view kStdin = "stdin:";

std::string Escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '%') {
      out += "%25";
    } else if (c == '@') {
      out += "%40";
    } else if (c == ':') {
      out += "%3A";
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<std::string> Unescape(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    const std::string_view code = text.substr(i + 1, 2);
    if (code == "25") {
      out += '%';
    } else if (code == "40") {
      out += '@';
    } else if (code == "3A") {
      out += ':';
    } else {
      return std::nullopt;
    }
    i += 2;
  }
  return out;
}

}  // namespace

SourceRef SourceRef::Directory(std::string absolute_dir) {
  return SourceRef{Type::kDirectory, std::move(absolute_dir), "", ""};
}
SourceRef SourceRef::Git(std::string url, std::string ref, std::string path) {
  return SourceRef{Type::kGit, std::move(url), std::move(ref), std::move(path)};
}
SourceRef SourceRef::Command(std::string text) { return SourceRef{Type::kCommand, std::move(text), "", ""}; }
SourceRef SourceRef::Policy(std::string kind_slash_name) {
  return SourceRef{Type::kPolicy, std::move(kind_slash_name), "", ""};
}

SourceRef SourceRef::File(std::string absolute_file) { return SourceRef{Type::kFile, std::move(absolute_file), "", ""}; }
SourceRef SourceRef::Stdin() { return SourceRef{Type::kStdin, "", "", ""}; }

std::string SourceRef::ToString() const {
  switch (type) {
    case Type::kNone: return "";
    case Type::kDirectory: return std::string(kDirectory) + location;
    case Type::kGit:
      return std::string(kGit) + location + "@" + Escape(ref) + (path.empty() ? "" : ":" + Escape(path));
    case Type::kCommand: return std::string(kCommand) + location;
    case Type::kPolicy: return std::string(kPolicy) + location;
    case Type::kFile: return std::string(kFile) + location;
    case Type::kStdin: return std::string(kStdin);
  }
  return "";
}

std::optional<SourceRef> SourceRef::Parse(std::string_view text) {
  if (text.empty()) return SourceRef{};
  if (text.starts_with(kDirectory)) return Directory(std::string(text.substr(kDirectory.size())));
  if (text.starts_with(kCommand)) return Command(std::string(text.substr(kCommand.size())));
  if (text.starts_with(kPolicy)) return Policy(std::string(text.substr(kPolicy.size())));
  if (text.starts_with(kFile)) return File(std::string(text.substr(kFile.size())));
  if (text == kStdin) return Stdin();
  if (!text.starts_with(kGit)) return std::nullopt;
  const std::string_view rest = text.substr(kGit.size());
  // The ref and path are escaped: the last '@' ends the URL (which may hold '@'s of its own),
  // and a ':' after it starts the path.
  const auto at = rest.rfind('@');
  if (at == std::string_view::npos || at == 0) return std::nullopt;
  std::string_view ref = rest.substr(at + 1);
  std::string_view path;
  if (const auto colon = ref.find(':'); colon != std::string_view::npos) {
    path = ref.substr(colon + 1);
    ref = ref.substr(0, colon);
  }
  auto unescaped_ref = Unescape(ref);
  auto unescaped_path = Unescape(path);
  if (!unescaped_ref || !unescaped_path) return std::nullopt;
  return Git(std::string(rest.substr(0, at)), std::move(*unescaped_ref), std::move(*unescaped_path));
}

}  // namespace gitvirt
