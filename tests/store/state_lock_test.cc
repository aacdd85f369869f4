// StateLock between real processes: a child holds the lock (or tries to) and the two sides step
// through the scenario over a pipe, so no test waits on a guessed delay.

#include "gitvirt/store/state_lock.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "temp_dir.h"

namespace gitvirt {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

// A pipe the parent and a child use to say "now": one byte per message.
class Signal {
 public:
  Signal() {
    if (::pipe(fds_) != 0) throw std::runtime_error("pipe failed");
  }
  ~Signal() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  void Send() { (void)!::write(fds_[1], "x", 1); }
  // True once a byte arrives; false when every writer has gone (the other side died).
  bool Wait() {
    char c;
    return ::read(fds_[0], &c, 1) == 1;
  }

 private:
  int fds_[2];
};

// A child that takes the lock, reports it on `locked`, and releases it and exits when told on
// `release` (or keeps it until it is killed).
pid_t SpawnHolder(const std::string& state, Signal& locked, Signal& release) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int code = 1;
    {
      auto lock = StateLock::Acquire(state, seconds(10));
      if (lock) {
        locked.Send();
        release.Wait();
        code = 0;
      }
    }  // released here
    ::_exit(code);
  }
  return pid;
}

int Reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class StateLockTest : public ::testing::Test {
 protected:
  testing::TempDir dir_{"gv-lock"};
  std::string state_ = (dir_.path() / "gitvirt.db").string();
};

TEST_F(StateLockTest, CreatesTheLockFileHoldingOurPid) {
  auto lock = StateLock::Acquire(state_, milliseconds(0));
  ASSERT_TRUE(lock.has_value()) << lock.error().ToString();
  EXPECT_TRUE(lock->held());
  EXPECT_EQ(lock->lock_path(), state_ + ".lock");
  std::ifstream in(state_ + ".lock");
  std::string pid;
  std::getline(in, pid);
  EXPECT_EQ(pid, std::to_string(::getpid()));
}

TEST_F(StateLockTest, AnotherProcessIsRefusedWithTheHoldersPidUntilRelease) {
  Signal locked, release;
  const pid_t holder = SpawnHolder(state_, locked, release);
  ASSERT_TRUE(locked.Wait());

  auto refused = StateLock::Acquire(state_, milliseconds(20));  // exercises the retry loop
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(refused.error().message, "state file " + state_ + " is locked by process " +
                                         std::to_string(holder) +
                                         " (another gitvirt serve or apply)");

  // Released while we wait: Acquire keeps retrying and gets it.
  release.Send();
  auto acquired = StateLock::Acquire(state_, seconds(30));
  ASSERT_TRUE(acquired.has_value()) << acquired.error().ToString();
  EXPECT_EQ(Reap(holder), 0);
}

TEST_F(StateLockTest, ProcessIsRefusedWhileWeHoldIt) {
  auto lock = StateLock::Acquire(state_, milliseconds(0));
  ASSERT_TRUE(lock.has_value());
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto refused = StateLock::Acquire(state_, milliseconds(0));
    const bool names_parent =
        !refused &&
        refused.error().message.find("process " + std::to_string(::getppid())) != std::string::npos;
    ::_exit(names_parent ? 0 : 1);
  }
  EXPECT_EQ(Reap(child), 0);
}

TEST_F(StateLockTest, LockIsFreedWhenTheHolderIsKilled) {
  Signal locked, release;
  const pid_t holder = SpawnHolder(state_, locked, release);
  ASSERT_TRUE(locked.Wait());
  ::kill(holder, SIGKILL);
  EXPECT_EQ(Reap(holder), 128 + SIGKILL);
  auto lock = StateLock::Acquire(state_, milliseconds(0));
  EXPECT_TRUE(lock.has_value()) << lock.error().ToString();
}

TEST_F(StateLockTest, MovedLockStaysHeldAndAssigningOverItReleasesIt) {
  // flock conflicts between two opens of the file even inside one process.
  auto first = StateLock::Acquire(state_, milliseconds(0));
  ASSERT_TRUE(first.has_value());
  StateLock moved = std::move(*first);
  EXPECT_FALSE(first->held());
  EXPECT_TRUE(moved.held());
  EXPECT_FALSE(StateLock::Acquire(state_, milliseconds(0)).has_value());

  moved = std::move(*first);  // an empty lock: the held one is released
  EXPECT_FALSE(moved.held());
  EXPECT_TRUE(StateLock::Acquire(state_, milliseconds(0)).has_value());
}

TEST_F(StateLockTest, MissingDirectoryIsCreated) {
  const auto state = dir_.path() / "missing" / "deeper" / "gitvirt.db";
  auto lock = StateLock::Acquire(state.string(), seconds(0));
  ASSERT_TRUE(lock.has_value()) << lock.error().ToString();
  EXPECT_TRUE(std::filesystem::exists(state.string() + ".lock"));
}

TEST_F(StateLockTest, AnUncreatableDirectoryIsAnIoError) {
  std::ofstream(dir_.path() / "file") << "not a directory";
  auto lock = StateLock::Acquire((dir_.path() / "file" / "gitvirt.db").string(), seconds(0));
  ASSERT_FALSE(lock.has_value());
  EXPECT_EQ(lock.error().code, ErrorCode::kIo);
  EXPECT_THAT(lock.error().message, HasSubstr("file"));
}

}  // namespace
}  // namespace gitvirt
