#include "source/exe/reload.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/sluice/control/v1/control.pb.h"
#include "source/exe/control_client.h"

namespace sluice::exe {

namespace {

namespace pb = sluice::control::v1;

constexpr const char kUsage[] =
    "Usage: sluice reload --control-socket PATH [options]\n"
    "\n"
    "A hot restart: starts the sluice binary on disk now as the successor of the one whose\n"
    "control socket is PATH, with that one's command line (and working directory), and waits\n"
    "until it serves — then the old one drains — or fails, leaving the old one serving.\n"
    "\n"
    "Options:\n"
    "      --control-socket PATH  the running sluice's control socket (required)\n"
    "  -c, --config FILE          the successor's config (default: the running one's)\n"
    "      --concurrency N        the successor's worker threads (default: as running)\n"
    "      --timeout SECONDS      longest wait for the successor to serve (default 60)\n"
    "      --wait-exit            also wait for the old process to finish its drain and exit\n"
    "  -h, --help                 print this help and exit\n"
    "\n"
    "Exit status: 0 the successor serves; 1 it did not (the old one still serves; the\n"
    "successor's log, on this command's standard error, says why); 2 a usage error.\n";

int Fail(const std::string& message) {
  fprintf(stderr, "sluice reload: %s\n", message.c_str());
  return 1;
}

// One request and its one response over a fresh connection.
bool Ask(const std::string& path, const pb::Request& request, pb::Response& response,
         std::string& error) {
  const absl::Status s = AskControl(path, request, response);
  if (!s.ok()) error = std::string(s.message());
  return s.ok();
}

// The successor's arguments: the running one's, without what names its own handoff, with the
// config and worker count replaced when given.
std::vector<std::string> SuccessorArgs(const pb::StatusResponse& status, const std::string& config,
                                       const std::string& concurrency, const std::string& path,
                                       int ready_fd) {
  std::vector<std::string> out;
  const auto& argv = status.command_line();
  for (int i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    auto drop_with_value = [&](const std::string& flag, bool replace) {
      if (a == flag) {
        ++i;  // the value follows
        return true;
      }
      return replace && absl::StartsWith(a, absl::StrCat(flag, "="));
    };
    if (drop_with_value("--hot-restart-from", true) || drop_with_value("--ready-fd", true)) {
      continue;
    }
    if (!config.empty() && (drop_with_value("-c", false) || drop_with_value("--config", true) ||
                            (absl::StartsWith(a, "-c") && a.size() > 2))) {
      continue;
    }
    if (!concurrency.empty() && drop_with_value("--concurrency", true)) continue;
    out.push_back(a);
  }
  if (!config.empty()) {
    out.push_back("-c");
    out.push_back(config);
  }
  if (!concurrency.empty()) {
    out.push_back("--concurrency");
    out.push_back(concurrency);
  }
  out.push_back("--hot-restart-from");
  out.push_back(path);
  out.push_back("--ready-fd");
  out.push_back(std::to_string(ready_fd));
  return out;
}

// Waits for `pid` to exit (not our child): a pidfd where the kernel has one, else polling.
bool WaitExit(pid_t pid, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    const int r = poll(&p, 1, seconds * 1000);
    ::close(pidfd);
    return r == 1;
  }
  while (kill(pid, 0) == 0 || errno != ESRCH) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    usleep(50 * 1000);
  }
  return true;
}

}  // namespace

int ReloadMain(int argc, char** argv) {
  std::string path, config, concurrency;
  int timeout_seconds = 60;
  bool wait_exit = false;
  enum { kControlSocket = 1000, kConcurrency, kTimeout, kWaitExit };
  static const struct option kOptions[] = {
      {"control-socket", required_argument, nullptr, kControlSocket},
      {"config", required_argument, nullptr, 'c'},
      {"concurrency", required_argument, nullptr, kConcurrency},
      {"timeout", required_argument, nullptr, kTimeout},
      {"wait-exit", no_argument, nullptr, kWaitExit},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  auto usage = [](const std::string& message) {
    fprintf(stderr, "sluice reload: %s\n\n%s", message.c_str(), kUsage);
    return 2;
  };
  opterr = 0;
  optind = 1;
  int opt;
  while ((opt = getopt_long(argc, argv, ":c:h", kOptions, nullptr)) != -1) {
    switch (opt) {
      case kControlSocket:
        path = optarg;
        break;
      case 'c':
        config = optarg;
        break;
      case kConcurrency: {
        uint32_t n;
        if (!absl::SimpleAtoi(optarg, &n) || n == 0 || n > 1024) {
          return usage(std::string("--concurrency must be 1..1024, not \"") + optarg + "\"");
        }
        concurrency = optarg;
        break;
      }
      case kTimeout:
        if (!absl::SimpleAtoi(optarg, &timeout_seconds) || timeout_seconds <= 0 ||
            timeout_seconds > 3600) {
          return usage(std::string("--timeout must be 1..3600 seconds, not \"") + optarg + "\"");
        }
        break;
      case kWaitExit:
        wait_exit = true;
        break;
      case 'h':
        fputs(kUsage, stdout);
        return 0;
      case ':':
        return usage(std::string("option ") + argv[optind - 1] + " needs a value");
      default:
        return usage(std::string("unknown option ") + argv[optind - 1]);
    }
  }
  if (optind < argc) return usage(std::string("unexpected argument ") + argv[optind]);
  if (path.empty()) return usage("the running sluice's --control-socket is required");
  // The successor starts in the running process's directory: a config named relative to ours
  // is made absolute.
  if (!config.empty() && config[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) {
      return Fail(absl::StrCat("getcwd: ", strerror(errno)));
    }
    config = absl::StrCat(cwd, "/", config);
  }

  pb::Request request;
  request.set_protocol(pb::PROTOCOL_VERSION);
  request.mutable_status();
  pb::Response response;
  std::string error;
  if (!Ask(path, request, response, error)) return Fail(error);
  const pb::StatusResponse status = response.status();
  if (status.state() != "live") {
    return Fail(absl::StrCat("pid ", status.pid(), " is ", status.state(), ", not live"));
  }
  if (status.command_line_size() == 0)
    return Fail("the running sluice did not say its command line");

  // This binary: after an upgrade on disk, the new version.
  char self[4096];
  const ssize_t self_len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (self_len <= 0) return Fail(absl::StrCat("readlink /proc/self/exe: ", strerror(errno)));
  self[self_len] = '\0';

  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return Fail(absl::StrCat("pipe: ", strerror(errno)));
  // The write end as the child will see it (dup'd without CLOEXEC there).
  constexpr int kChildReadyFd = 3;
  std::vector<std::string> args = SuccessorArgs(status, config, concurrency, path, kChildReadyFd);
  std::vector<char*> cargs;
  cargs.push_back(self);
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);

  const pid_t child = fork();
  if (child < 0) return Fail(absl::StrCat("fork: ", strerror(errno)));
  if (child == 0) {
    // Its own session: it outlives this command (and the terminal or unit that ran it).
    setsid();
    if (!status.working_directory().empty() && chdir(status.working_directory().c_str()) != 0) {
      fprintf(stderr, "sluice reload: chdir %s: %s\n", status.working_directory().c_str(),
              strerror(errno));
      _exit(127);
    }
    const int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    // Without CLOEXEC: the successor inherits it (dup2 onto itself would keep the flag).
    if (ready[1] == kChildReadyFd) {
      fcntl(kChildReadyFd, F_SETFD, 0);
    } else {
      dup2(ready[1], kChildReadyFd);
    }
    execv(self, cargs.data());
    fprintf(stderr, "sluice reload: exec %s: %s\n", self, strerror(errno));
    _exit(127);
  }
  ::close(ready[1]);
  fprintf(stderr, "sluice reload: pid %d starts as the successor of pid %u\n",
          static_cast<int>(child), status.pid());

  // "ready <pid>" once it serves; the end of the pipe without it: it exited (the descriptor
  // is closed only by the ready line or the process's end).
  std::string got;
  bool ended = false;
  pollfd p{ready[0], POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  while (got.find('\n') == std::string::npos && !ended) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    const int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    char buf[128];
    const ssize_t n = ::read(ready[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ended = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(ready[0]);
  if (!absl::StartsWith(got, "ready ")) {
    if (ended) {
      int wstatus = 0;
      while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
      }
      return Fail(absl::StrCat("the successor (pid ", child, ") ",
                               WIFEXITED(wstatus)
                                   ? absl::StrCat("exited with status ", WEXITSTATUS(wstatus))
                                   : absl::StrCat("died of signal ", WTERMSIG(wstatus)),
                               " before serving; pid ", status.pid(), " still serves"));
    }
    // It hangs: stopped, so that the old process keeps serving alone.
    kill(child, SIGTERM);
    return Fail(absl::StrCat("the successor (pid ", child, ") did not serve within ",
                             timeout_seconds, "s and was stopped; pid ", status.pid(),
                             " still serves"));
  }
  fprintf(stderr, "sluice reload: pid %d serves; pid %u drains\n", static_cast<int>(child),
          status.pid());
  if (wait_exit) {
    if (!WaitExit(static_cast<pid_t>(status.pid()), timeout_seconds)) {
      return Fail(absl::StrCat("pid ", status.pid(), " still runs after ", timeout_seconds, "s"));
    }
    fprintf(stderr, "sluice reload: pid %u exited\n", status.pid());
  }
  return 0;
}

}  // namespace sluice::exe
