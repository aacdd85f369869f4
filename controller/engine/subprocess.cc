#include "gitvirt/engine/subprocess.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace gitvirt {

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                 const std::map<std::string, std::string>& extra_env) {
  if (argv.empty()) return Fail(ErrorCode::kInvalidArgument, "no program to run");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Fail(ErrorCode::kIo, std::strerror(errno), "pipe");
  // Build argv/envp before fork: only async-signal-safe calls in the child.
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    if (!extra_env.contains(key)) env_storage.push_back(entry);
  }
  for (const auto& [k, v] : extra_env) env_storage.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return Fail(ErrorCode::kIo, std::strerror(errno), "fork");
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    execvpe(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(fds[1]);
  ProcessResult result;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) result.output.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (result.exit_code == 127 && result.output.empty()) {
    return Fail(ErrorCode::kNotFound, "cannot run " + argv[0] + " (is it installed?)");
  }
  return result;
}

Result<std::string> RunChecked(const std::vector<std::string>& argv,
                               const std::map<std::string, std::string>& extra_env) {
  auto r = RunProcess(argv, extra_env);
  if (!r) return std::unexpected(r.error());
  if (r->exit_code != 0) {
    std::string output = r->output;
    if (output.size() > 2000) output = output.substr(output.size() - 2000);
    return Fail(ErrorCode::kInternal, argv[0] + " exited with " + std::to_string(r->exit_code) + ": " + output);
  }
  return r->output;
}

}  // namespace gitvirt
