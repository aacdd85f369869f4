#include "git_url.h"

#include <cctype>
#include <filesystem>

#include "gitvirt/source/redact_url.h"

namespace gitvirt {

std::string RedactUrl(std::string_view text) {
  // Every "scheme://user:password@host" in the text, so that it also works on messages that
  // quote a URL.
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t scheme_end = text.find("://", pos);
    if (scheme_end == std::string_view::npos) break;
    const std::size_t authority = scheme_end + 3;
    std::size_t end = authority;
    while (end < text.size() && text[end] != '/' && text[end] != '\'' && text[end] != '"' &&
           !std::isspace(static_cast<unsigned char>(text[end]))) {
      ++end;
    }
    const std::string_view host_part = text.substr(authority, end - authority);
    const std::size_t at = host_part.rfind('@');
    const std::size_t colon = at == std::string_view::npos ? at : host_part.find(':');
    out.append(text.substr(pos, authority - pos));
    if (colon != std::string_view::npos && colon < at) {
      out.append(host_part.substr(0, colon + 1));
      out.append("***");
      out.append(host_part.substr(at));
    } else {
      out.append(host_part);
    }
    pos = end;
  }
  out.append(text.substr(pos));
  return out;
}

namespace source_internal {

bool IsLocalPath(std::string_view url) {
  if (url.find("://") != std::string_view::npos) return false;
  const std::size_t colon = url.find(':');
  const std::size_t slash = url.find('/');
  return colon == std::string_view::npos || (slash != std::string_view::npos && slash < colon);
}

std::string LocalDirectory(std::string_view url) {
  if (url.starts_with("file://")) return std::string(url.substr(7));
  return IsLocalPath(url) ? std::string(url) : std::string();
}

Result<std::string> NormalizeUrl(std::string_view url) {
  if (url.empty()) return Fail(ErrorCode::kInvalidArgument, "no repository URL given");
  if (!IsLocalPath(url)) return std::string(url);
  std::error_code ec;
  std::filesystem::path path = std::filesystem::absolute(std::filesystem::path(url), ec);
  if (ec) {
    return Fail(ErrorCode::kIo, "cannot make repository path absolute: " + ec.message(),
                std::string(url));
  }
  std::string normal = path.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

std::string ReadableName(std::string_view url) {
  std::string_view rest = url;
  while (!rest.empty() && (rest.back() == '/' || rest.back() == ':')) rest.remove_suffix(1);
  const std::size_t cut = rest.find_last_of("/:");
  if (cut != std::string_view::npos) rest.remove_prefix(cut + 1);
  if (rest.ends_with(".git")) rest.remove_suffix(4);
  std::string name;
  for (char c : rest) {
    if (name.size() >= 40) break;
    const bool plain =
        std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    name.push_back(plain ? c : '_');
  }
  while (!name.empty() && name.front() == '.') name.erase(name.begin());
  return name.empty() ? "repo" : name;
}

}  // namespace source_internal
}  // namespace gitvirt
