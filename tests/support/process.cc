#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gitvirt::testing {
namespace {

// Async-signal-safe: used between fork and exec.
void WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
}

[[noreturn]] void ExecChild(char* const* argv, int out_fd, int max_fd, const std::string& what) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);

  int in_fd = ::open("/dev/null", O_RDONLY);
  if (in_fd >= 0 && in_fd != STDIN_FILENO) {
    ::dup2(in_fd, STDIN_FILENO);
  }
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(out_fd, STDERR_FILENO);
  if (::close_range(3, ~0U, 0) != 0) {
    for (int fd = 3; fd < max_fd; ++fd) ::close(fd);
  }

  ::execvp(argv[0], argv);

  // Report the failure in the captured output: "<what>: errno N".
  int err = errno;
  WriteAll(STDERR_FILENO, what.data(), what.size());
  char digits[16];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + err % 10);
    err /= 10;
  } while (err > 0 && n < 15);
  WriteAll(STDERR_FILENO, ": errno ", 8);
  while (n > 0) WriteAll(STDERR_FILENO, &digits[--n], 1);
  WriteAll(STDERR_FILENO, "\n", 1);
  ::_exit(127);
}

}  // namespace

int RunCommand(std::vector<std::string> argv, std::string* output) {
  std::string discard;
  std::string& out = output != nullptr ? *output : discard;
  out.clear();
  if (argv.empty()) {
    out = "RunCommand: empty argv";
    return -1;
  }

  // Everything the child needs is prepared before fork: the caller may be multithreaded.
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (std::string& arg : argv) cargv.push_back(arg.data());
  cargv.push_back(nullptr);
  const std::string what = "cannot execute " + argv[0];
  long open_max = ::sysconf(_SC_OPEN_MAX);
  int max_fd = open_max > 0 && open_max < 65536 ? static_cast<int>(open_max) : 65536;

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    out = std::string("RunCommand: pipe: ") + std::strerror(errno);
    return -1;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    out = std::string("RunCommand: fork: ") + std::strerror(err);
    return -1;
  }
  if (pid == 0) {
    ExecChild(cargv.data(), fds[1], max_fd, what);
  }

  ::close(fds[1]);
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      out += std::string("RunCommand: waitpid: ") + std::strerror(errno);
      return -1;
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace gitvirt::testing
