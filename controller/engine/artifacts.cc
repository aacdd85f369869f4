#include "gitvirt/engine/artifacts.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "gitvirt/engine/subprocess.h"

namespace gitvirt {
namespace fs = std::filesystem;

namespace {
constexpr time_t kSeedEpoch = 1700000000;
}

struct Sha256::Context {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md{EVP_MD_CTX_new(), EVP_MD_CTX_free};
};

Sha256::Sha256() : ctx_(std::make_unique<Context>()) { EVP_DigestInit_ex(ctx_->md.get(), EVP_sha256(), nullptr); }

Sha256::~Sha256() = default;

void Sha256::Update(const void* data, std::size_t n) {
  EVP_DigestUpdate(ctx_->md.get(), data, n);
  size_ += n;
}

std::string Sha256::Hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md.get(), digest, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

Result<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot read " + path);
  Sha256 sum;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    sum.Update(buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  return sum.Hex();
}

Result<std::string> FetchImage(const Image& image, const std::string& images_dir) {
  const std::string& source = image.spec.source;
  std::string path;
  if (source.starts_with("file://")) {
    path = source.substr(7);
  } else if (source.starts_with("http://") || source.starts_with("https://")) {
    path = (fs::path(images_dir) / (image.spec.sha256 + "." + std::string(EnumName(image.spec.format)))).string();
    if (!fs::exists(path)) {
      std::error_code ec;
      fs::create_directories(fs::path(path).parent_path(), ec);
      const std::string partial = path + ".part";
      auto fetched = RunChecked({"curl", "--fail", "--location", "--silent", "--show-error", "--output", partial, source});
      if (!fetched) return std::unexpected(fetched.error().Wrap("downloading image " + image.meta.name));
      fs::rename(partial, path, ec);
      if (ec) return Fail(ErrorCode::kIo, ec.message(), path);
    }
  } else {
    path = source;
  }
  auto sum = Sha256File(path);
  if (!sum) return std::unexpected(sum.error().Wrap("image " + image.meta.name));
  if (*sum != image.spec.sha256) {
    return Fail(ErrorCode::kFailedPrecondition,
                "checksum mismatch: the manifest says sha256 " + image.spec.sha256 + ", " + path + " has " + *sum,
                "image " + image.meta.name);
  }
  return path;
}

Result<void> WriteSeedIso(const SeedFiles& seed, const std::string& iso_path) {
  const fs::path dir = fs::path(iso_path).parent_path() / (fs::path(iso_path).filename().string() + ".d");
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) return Fail(ErrorCode::kIo, ec.message(), dir.string());
  const std::pair<const char*, const std::string*> files[] = {
      {"meta-data", &seed.meta_data}, {"user-data", &seed.user_data}, {"network-config", &seed.network_config}};
  std::vector<std::string> argv = {"xorrisofs", "-quiet", "-output", iso_path, "-volid", "cidata", "-joliet", "-rock"};
  for (const auto& [name, content] : files) {
    const fs::path file = dir / name;
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << *content;
    if (!out) return Fail(ErrorCode::kIo, "cannot write", file.string());
    out.close();
    // Reproducible bytes need fixed timestamps on the files and in the volume descriptor.
    const timespec times[2] = {{kSeedEpoch, 0}, {kSeedEpoch, 0}};
    utimensat(AT_FDCWD, file.c_str(), times, 0);
    argv.push_back(file.string());
  }
  auto made = RunChecked(argv, {{"SOURCE_DATE_EPOCH", std::to_string(kSeedEpoch)}});
  fs::remove_all(dir, ec);
  if (!made) return std::unexpected(made.error().Wrap("building the cloud-init seed"));
  return {};
}

}  // namespace gitvirt
