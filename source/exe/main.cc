// sluice: an extensible L7 proxy. See README.md for the flags and configs/ for examples.

#include <fcntl.h>
#include <getopt.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "source/common/crash_handler.h"
#include "source/common/logging.h"
#include "source/config/bootstrap.h"
#include "source/exe/drain.h"
#include "source/exe/reload.h"
#include "source/server/server.h"
#include "source/tls/version.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

namespace {

constexpr const char kUsage[] =
    "Usage: sluice -c FILE [options]\n"
    "       sluice reload --control-socket PATH [options]   (a hot restart: sluice reload -h)\n"
    "       sluice drain --control-socket PATH [options]    (a graceful end before a signal,\n"
    "                                                        e.g. a preStop hook: sluice drain "
    "-h)\n"
    "\n"
    "An extensible L7 proxy. FILE is YAML (.yaml/.yml), JSON (.json) or text proto\n"
    "(.pb.txt/.pbtxt/.textproto/.txtpb) mapped onto sluice.config.v1.Bootstrap.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE        the config file (required)\n"
    "      --mode MODE          serve (default): run the proxy;\n"
    "                           validate: check the config, print \"ok\" or the errors, exit\n"
    "      --concurrency N      worker threads (default: the config's, else the number of cores)\n"
    "      --ports-file PATH    write \"<listener> <address>\" lines once every socket is bound\n"
    "      --control-socket PATH  the control socket (overrides the config's control_socket)\n"
    "      --hot-restart-from PATH  take over from the sluice whose control socket is PATH:\n"
    "                           its listening sockets, then it drains (docs/hot_restart.md)\n"
    "      --ready-fd N         write \"ready <pid>\" to descriptor N once serving (used by\n"
    "                           sluice reload)\n"
    "      --log-level LEVEL    trace, debug, info (default), warn, error, off (the admin's\n"
    "                           POST /logging?level= changes it at run time)\n"
    "  -h, --help               print this help and exit\n"
    "      --version            print the version and exit\n"
    "\n"
    "Signals: SIGTERM/SIGINT stop accepting, let open connections finish up to the config's\n"
    "drain_timeout, and exit 0; a second signal closes them at once. SIGHUP reloads TLS\n"
    "certificates, keys, OCSP staples and ticket keys from their files (the config itself is\n"
    "not re-read: that comes with hot restart), SIGUSR1 is logged (it would reopen log files;\n"
    "sluice logs to stderr only), SIGUSR2 is logged and ignored.\n";

enum LongOnly {
  kMode = 1000,
  kConcurrency,
  kPortsFile,
  kLogLevel,
  kVersion,
  kControlSocket,
  kHotRestartFrom,
  kReadyFd
};

int UsageError(const std::string& message) {
  fprintf(stderr, "sluice: %s\n\n%s", message.c_str(), kUsage);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // First: a crash anywhere after this (a plugin's included, at load or at run time) is reported.
  sluice::crash::Install();
  if (argc > 1 && std::string_view(argv[1]) == "reload") {
    return sluice::exe::ReloadMain(argc - 1, argv + 1);
  }
  if (argc > 1 && std::string_view(argv[1]) == "drain") {
    return sluice::exe::DrainMain(argc - 1, argv + 1);
  }
  std::string config_path;
  std::string mode = "serve";
  sluice::server::Options options;

  static const struct option kOptions[] = {
      {"config", required_argument, nullptr, 'c'},
      {"mode", required_argument, nullptr, kMode},
      {"concurrency", required_argument, nullptr, kConcurrency},
      {"ports-file", required_argument, nullptr, kPortsFile},
      {"control-socket", required_argument, nullptr, kControlSocket},
      {"hot-restart-from", required_argument, nullptr, kHotRestartFrom},
      {"ready-fd", required_argument, nullptr, kReadyFd},
      {"log-level", required_argument, nullptr, kLogLevel},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, kVersion},
      {nullptr, 0, nullptr, 0},
  };
  opterr = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, ":c:h", kOptions, nullptr)) != -1) {
    switch (opt) {
      case 'c':
        config_path = optarg;
        break;
      case kMode:
        mode = optarg;
        if (mode != "serve" && mode != "validate") {
          return UsageError("--mode must be serve or validate, not \"" + mode + "\"");
        }
        break;
      case kConcurrency: {
        uint32_t n;
        if (!absl::SimpleAtoi(optarg, &n) || n == 0 || n > 1024) {
          return UsageError(std::string("--concurrency must be 1..1024, not \"") + optarg + "\"");
        }
        options.concurrency = n;
        break;
      }
      case kPortsFile:
        options.ports_file = optarg;
        break;
      case kControlSocket:
        options.control_socket = optarg;
        break;
      case kHotRestartFrom:
        options.hot_restart_from = optarg;
        break;
      case kReadyFd: {
        int fd;
        if (!absl::SimpleAtoi(optarg, &fd) || fd < 3 || fcntl(fd, F_GETFD) < 0) {
          return UsageError(std::string("--ready-fd must be an open descriptor above 2, not \"") +
                            optarg + "\"");
        }
        // Not passed on to anything this process starts.
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        options.ready_fd = fd;
        break;
      }
      case kLogLevel: {
        sluice::log::Level level;
        if (!sluice::log::ParseLevel(optarg, &level)) {
          return UsageError(std::string("unknown --log-level \"") + optarg + "\"");
        }
        sluice::log::SetLevel(level);
        break;
      }
      case 'h':
        fputs(kUsage, stdout);
        return 0;
      case kVersion:
        printf("sluice %s (TLS: %s)\n", SLUICE_VERSION, sluice::tls::LibraryVersion().c_str());
        return 0;
      case ':':
        return UsageError(std::string("option ") + argv[optind - 1] + " needs a value");
      default:
        return UsageError(std::string("unknown option ") + argv[optind - 1]);
    }
  }
  if (optind < argc) return UsageError(std::string("unexpected argument ") + argv[optind]);
  if (config_path.empty()) return UsageError("a config file is required (-c FILE)");

  if (mode == "serve") {
    // A proxy never dies of these: ignored until the server's main loop listens for them (it
    // logs them, see server.cc), so that one sent while the config loads is harmless too.
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
  }

  options.config_path = config_path;
  options.command_line.assign(argv, argv + argc);
  options.version = SLUICE_VERSION;

  sluice::config::ValueSources sources;
  auto bootstrap = sluice::config::LoadBootstrap(config_path, &sources);
  if (!bootstrap.ok()) {
    fprintf(stderr, "%s\n", std::string(bootstrap.status().message()).c_str());
    return 1;
  }
  if (mode == "validate") {
    // Everything but sockets and threads: plugins are loaded and their configs built too.
    if (auto status = sluice::server::Validate(*bootstrap, sources); !status.ok()) {
      fprintf(stderr, "%s\n", std::string(status.message()).c_str());
      return 1;
    }
    printf("ok\n");
    return 0;
  }

  // Writes to a closed peer must fail with EPIPE, not kill the process.
  signal(SIGPIPE, SIG_IGN);
  // SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 reach the main event loop through libevent's
  // signal events; worker threads block them, so the kernel delivers them to the main thread.
  auto status = sluice::server::Run(*bootstrap, sources, options);
  if (!status.ok()) {
    SLUICE_LOG(kError, "%s", status.message());
    return 1;
  }
  return 0;
}
