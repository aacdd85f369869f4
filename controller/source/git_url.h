#pragma once
// Repository URLs: telling local paths from remote URLs the way git does, and keeping
// passwords written into URLs out of logs and errors. Pure string functions; no I/O except
// NormalizeUrl, which reads the working directory to make a relative path absolute.

#include <string>
#include <string_view>

#include "gitvirt/core/error.h"

namespace gitvirt::source_internal {

// Whether `url` names a local repository by path (no "scheme://", and not scp-like
// "host:path", which git recognises by a ':' before any '/').
bool IsLocalPath(std::string_view url);

// The directory a local URL names: the path itself, or the path of a file:// URL; "" for a
// remote URL.
std::string LocalDirectory(std::string_view url);

// The URL libgit2 is given: a local path made absolute and normal (no trailing '/'); other
// URLs unchanged. Fails with kInvalidArgument when empty.
Result<std::string> NormalizeUrl(std::string_view url);

// A readable name for the mirror of `url`: its last path component without ".git", reduced
// to [A-Za-z0-9._-] and at most 40 characters ("repo" if nothing is left).
std::string ReadableName(std::string_view url);

}  // namespace gitvirt::source_internal
