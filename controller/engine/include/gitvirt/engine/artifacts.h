#pragma once
// Files the engine prepares on the controller before handing them to a node: Image sources
// (fetched and checked against their sha256) and cloud-init seed ISOs.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "gitvirt/core/cloud_init.h"
#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"

namespace gitvirt {

// A streamed SHA-256 (OpenSSL): Update with the bytes, then Hex once. Counts the bytes.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, std::size_t n);
  std::string Hex();  // lowercase
  std::uint64_t size() const { return size_; }

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
  std::uint64_t size_ = 0;
};

// Hex SHA-256 of a file, streamed.
Result<std::string> Sha256File(const std::string& path);

// A local file with the Image's bytes, its checksum verified: a path or file:// URL is used in
// place; http(s) is downloaded (curl) into `images_dir` (StatePaths::images), keyed by
// checksum, once.
Result<std::string> FetchImage(const Image& image, const std::string& images_dir);

// Writes the seed as an ISO 9660 volume labelled "cidata" (Joliet + Rock Ridge, via xorrisofs)
// with fixed timestamps, so the same inputs give the same bytes.
Result<void> WriteSeedIso(const SeedFiles& seed, const std::string& iso_path);

}  // namespace gitvirt
