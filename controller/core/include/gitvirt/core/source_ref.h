#pragma once
// Where a plan's desired state came from, as a value: a directory of manifests, one manifest
// file, standard input, a git repository at a ref, a command given by hand, or a policy run.
// Saved plans and the journal keep it in its canonical text form ("dir:/abs", "file:/abs.yaml",
// "stdin:", "git:URL@REF[:PATH]", "cli:TEXT", "policy:Kind/name"), which Parse reads back
// exactly. Pure; thread-compatible.

#include <optional>
#include <string>
#include <string_view>

namespace gitvirt {

struct SourceRef {
  enum class Type { kNone, kDirectory, kGit, kCommand, kPolicy, kFile, kStdin };
  Type type = Type::kNone;
  // kDirectory: the absolute directory; kFile: the absolute file; kGit: the repository URL (any password in it replaced
  // by "***"); kCommand: the command ("power start -l tier=web"); kPolicy: "Kind/name".
  std::string location;
  std::string ref;   // kGit: branch, tag or commit as given
  std::string path;  // kGit: the directory inside the repository ("" = its root)

  static SourceRef Directory(std::string absolute_dir);
  static SourceRef Git(std::string url, std::string ref, std::string path);
  static SourceRef Command(std::string text);
  static SourceRef Policy(std::string kind_slash_name);
  static SourceRef File(std::string absolute_file);
  static SourceRef Stdin();

  bool IsDirectory() const { return type == Type::kDirectory; }
  bool IsGit() const { return type == Type::kGit; }
  bool IsFile() const { return type == Type::kFile; }
  bool IsStdin() const { return type == Type::kStdin; }
  // The canonical text: "" for kNone. In a git ref or path, '%', '@' and ':' are written as
  // %25, %40 and %3A so that the text splits back unambiguously.
  std::string ToString() const;
  // The value ToString wrote; nullopt for anything else.
  static std::optional<SourceRef> Parse(std::string_view text);

  friend bool operator==(const SourceRef&, const SourceRef&) = default;
};

}  // namespace gitvirt
