#pragma once
// One manifest file as read from a directory or a git tree: what the loader parses.

#include <string>

namespace gitvirt {

struct ManifestFile {
  std::string path;     // shown in diagnostics; relative to the manifest root
  std::string content;  // the file's bytes
};

}  // namespace gitvirt
