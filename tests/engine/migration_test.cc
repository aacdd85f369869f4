// The qcow2 backing-file rewrite that an offline migration applies to a linked clone's bytes on
// their way to another node (whose copy of the base image has another path). Images are made
// and checked with the real qemu-img.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gitvirt/engine/migration.h"
#include "process.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string Qemu(std::vector<std::string> argv) {
  std::string out;
  const int rc = testing::RunCommand(std::move(argv), &out);
  EXPECT_EQ(rc, 0) << out;
  return out;
}

nlohmann::json Info(const fs::path& image) {
  return nlohmann::json::parse(Qemu({"qemu-img", "info", "--output=json", image.string()}));
}

// Collects what a sink receives; holes become zeros, as they read back from a sparse file.
class Collect final : public VolumeSink {
 public:
  Result<void> Write(const char* data, std::size_t size) override {
    bytes.append(data, size);
    ++writes;
    return {};
  }
  Result<void> Hole(std::uint64_t length) override {
    bytes.append(length, '\0');
    ++holes;
    return {};
  }
  Result<void> Finish() override {
    finished = true;
    return {};
  }
  void Abort() override { aborted = true; }
  std::string bytes;
  int writes = 0, holes = 0;
  bool finished = false, aborted = false;
};

class Qcow2Backing : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = dir_.path() / "source-pool" / "debian-12.qcow2";
    fs::create_directories(base_.parent_path());
    Qemu({"qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", base_.string(), "64M"});
    overlay_ = dir_.path() / "web-01-root.qcow2";
    Qemu({"qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", "-b", base_.string(), "-F", "qcow2",
          overlay_.string(), "1G"});
    // Guest data in the overlay, to see it survive.
    Qemu({"qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k", overlay_.string()});
    target_base_ = dir_.path() / "a-longer-target-pool-directory" / "images" / "debian-12.qcow2";
    fs::create_directories(target_base_.parent_path());
    fs::copy_file(base_, target_base_);
  }

  testing::TempDir dir_{"gv-qcow2"};
  fs::path base_, overlay_, target_base_;
};

TEST_F(Qcow2Backing, RewritesTheNameInPlace) {
  ASSERT_EQ(Info(overlay_)["backing-filename"], base_.string());
  std::string bytes = ReadAll(overlay_);
  ASSERT_TRUE(RewriteQcow2Backing(bytes, target_base_.string()));
  const fs::path moved = dir_.path() / "moved.qcow2";
  WriteAll(moved, bytes);
  const auto info = Info(moved);
  EXPECT_EQ(info["backing-filename"], target_base_.string());
  EXPECT_EQ(info["backing-filename-format"], "qcow2");
  EXPECT_EQ(info["virtual-size"], 1 << 30);
  Qemu({"qemu-img", "check", moved.string()});
  // The guest's data reads back through the new chain.
  Qemu({"qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 1M 64k", moved.string()});
  // A shorter name works too (the rest of the old one is cleared).
  std::string again = bytes;
  ASSERT_TRUE(RewriteQcow2Backing(again, "/b.qcow2"));
  WriteAll(moved, again);
  EXPECT_EQ(Info(moved)["backing-filename"], "/b.qcow2");
}

TEST_F(Qcow2Backing, RefusesWhatItCannotDo) {
  std::string bytes = ReadAll(overlay_);
  EXPECT_FALSE(RewriteQcow2Backing(bytes, std::string(70000, 'x')));  // beyond the first cluster
  std::string base = ReadAll(base_);
  EXPECT_FALSE(RewriteQcow2Backing(base, "/x.qcow2"));  // no backing file
  std::string raw(4096, '\0');
  EXPECT_FALSE(RewriteQcow2Backing(raw, "/x.qcow2"));  // not qcow2
}

TEST_F(Qcow2Backing, SinkRewritesWhatStreamsThrough) {
  const std::string original = ReadAll(overlay_);
  std::string expected = original;
  ASSERT_TRUE(RewriteQcow2Backing(expected, target_base_.string()));
  // Small uneven chunks, so the header arrives in pieces.
  Collect out;
  Qcow2BackingRewriter sink(out, target_base_.string());
  std::size_t off = 0;
  for (std::size_t chunk = 7; off < 200000 && off < original.size(); chunk = chunk * 3 + 1) {
    const std::size_t n = std::min(chunk, original.size() - off);
    ASSERT_TRUE(sink.Write(original.data() + off, n));
    off += n;
  }
  // The rest in 4 KiB blocks, the all-zero ones as holes (as a sparse download sends them).
  for (; off < original.size(); off += 4096) {
    const std::size_t n = std::min<std::size_t>(4096, original.size() - off);
    if (original.find_first_not_of('\0', off) >= off + n) {
      ASSERT_TRUE(sink.Hole(n));
    } else {
      ASSERT_TRUE(sink.Write(original.data() + off, n));
    }
  }
  ASSERT_TRUE(sink.Finish());
  EXPECT_TRUE(out.finished);
  EXPECT_GT(out.holes, 0);
  EXPECT_EQ(out.bytes, expected);
}

TEST_F(Qcow2Backing, SinkFailsOnANonQcow2Stream) {
  Collect out;
  Qcow2BackingRewriter sink(out, "/x.qcow2");
  const std::string junk(1000, 'j');
  ASSERT_TRUE(sink.Write(junk.data(), junk.size()));
  EXPECT_FALSE(sink.Finish());
  EXPECT_TRUE(out.bytes.empty());
}

}  // namespace
}  // namespace gitvirt
