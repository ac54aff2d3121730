#include "source/exe/drain.h"

#include <getopt.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "api/sluice/control/v1/control.pb.h"
#include "source/exe/control_client.h"

namespace sluice::exe {

namespace {

namespace pb = sluice::control::v1;

constexpr const char kUsage[] =
    "Usage: sluice drain --control-socket PATH [options]\n"
    "\n"
    "Ends a running sluice gracefully before something else stops it (a Kubernetes preStop\n"
    "hook): fails its readiness (/ready answers 503), keeps it accepting for the readiness\n"
    "delay while load balancers and kube-proxy stop sending, then stops its listeners and waits\n"
    "until its last connection has finished. The process stays up: the SIGTERM that follows\n"
    "finds it drained and it exits at once.\n"
    "\n"
    "Options:\n"
    "      --control-socket PATH      the running sluice's control socket (required)\n"
    "      --readiness-delay DURATION how long to keep accepting after /ready turns 503\n"
    "                                 (default 5s; 0s for none)\n"
    "      --timeout DURATION         the longest wait for connections to finish (default: the\n"
    "                                 running sluice's drain_timeout, after which it closes\n"
    "                                 them, plus 1s)\n"
    "  -h, --help                     print this help and exit\n"
    "\n"
    "DURATION: 500ms, 5s, 1.5m, 1h (a bare number is seconds).\n"
    "Exit status: 0 drained (or the timeout passed: the rest is SIGTERM's); 1 the running\n"
    "sluice could not be reached or refused; 2 a usage error.\n";

// Between two looks at the open connections: the request is a local round trip, so a few a
// second cost nothing, and the hook returns soon after the last connection closes.
constexpr auto kPollInterval = std::chrono::milliseconds(250);
constexpr absl::Duration kMaxDuration = absl::Hours(24);

int Fail(const std::string& message) {
  fprintf(stderr, "sluice drain: %s\n", message.c_str());
  return 1;
}

void Say(const std::string& message) {
  fprintf(stderr, "sluice drain: %s\n", message.c_str());
  fflush(stderr);
}

// "5s", "250ms", "1.5m", or a bare number of seconds; not negative, at most a day.
bool ParseDuration(const char* text, absl::Duration& out) {
  double seconds;
  if (absl::SimpleAtod(text, &seconds)) {
    out = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &out)) {
    return false;
  }
  return out >= absl::ZeroDuration() && out <= kMaxDuration;
}

pb::Request NewRequest() {
  pb::Request r;
  r.set_protocol(pb::PROTOCOL_VERSION);
  return r;
}

}  // namespace

int DrainMain(int argc, char** argv) {
  std::string path;
  absl::Duration readiness_delay = absl::Seconds(5);
  std::optional<absl::Duration> timeout;
  enum { kControlSocket = 1000, kReadinessDelay, kTimeout };
  static const struct option kOptions[] = {
      {"control-socket", required_argument, nullptr, kControlSocket},
      {"readiness-delay", required_argument, nullptr, kReadinessDelay},
      {"timeout", required_argument, nullptr, kTimeout},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  auto usage = [](const std::string& message) {
    fprintf(stderr, "sluice drain: %s\n\n%s", message.c_str(), kUsage);
    return 2;
  };
  opterr = 0;
  optind = 1;
  int opt;
  while ((opt = getopt_long(argc, argv, ":h", kOptions, nullptr)) != -1) {
    switch (opt) {
      case kControlSocket:
        path = optarg;
        break;
      case kReadinessDelay:
        if (!ParseDuration(optarg, readiness_delay)) {
          return usage(absl::StrCat("--readiness-delay must be a duration of 0s..24h, not \"",
                                    optarg, "\""));
        }
        break;
      case kTimeout: {
        absl::Duration d;
        if (!ParseDuration(optarg, d) || d <= absl::ZeroDuration()) {
          return usage(absl::StrCat("--timeout must be a duration above 0 of at most 24h, not \"",
                                    optarg, "\""));
        }
        timeout = d;
        break;
      }
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

  // Who is there, first: a wrong path is an error before anything changes.
  pb::Request request = NewRequest();
  request.mutable_status();
  pb::Response response;
  if (auto s = AskControl(path, request, response); !s.ok()) {
    return Fail(absl::StrCat("cannot reach a running sluice at ", path, ": ", s.message()));
  }
  const uint32_t pid = response.status().pid();
  Say(absl::StrCat("draining pid ", pid, " (", response.status().downstream_connections_active(),
                   " open connections)"));

  // (a) Out of rotation, still serving.
  request = NewRequest();
  request.mutable_set_health()->set_failing(true);
  if (auto s = AskControl(path, request, response); !s.ok()) {
    if (!absl::IsFailedPrecondition(s)) {
      return Fail(absl::StrCat("failing the readiness of pid ", pid, ": ", s.message()));
    }
    // No admin endpoint: nothing to fail, but the drain is still worth doing.
    Say(absl::StrCat("readiness not failed: ", s.message()));
  } else {
    Say("readiness failed: /ready answers 503");
  }

  // (b) Endpoints, kube-proxy's rules and load balancers learn of it only after a while; until
  // they do they still send new connections here, and a closed listener would refuse them.
  if (readiness_delay > absl::ZeroDuration()) {
    Say(absl::StrCat("accepting for another ", absl::FormatDuration(readiness_delay),
                     " while load balancers stop sending"));
    absl::SleepFor(readiness_delay);
  }

  // (c) The listeners close; open connections finish (HTTP: Connection: close, GOAWAY).
  request = NewRequest();
  request.mutable_drain()->set_keep_process(true);
  if (auto s = AskControl(path, request, response); !s.ok()) {
    return Fail(absl::StrCat("draining the listeners of pid ", pid, ": ", s.message()));
  }
  const absl::Duration server_bound = absl::Milliseconds(response.drain().drain_timeout_ms());
  const absl::Duration wait = timeout.value_or(server_bound + absl::Seconds(1));
  Say(absl::StrCat("listeners closed; waiting up to ", absl::FormatDuration(wait),
                   " for open connections to finish"));

  // (d) Until the last connection is gone.
  const absl::Time deadline = absl::Now() + wait;
  uint64_t open = 0;
  while (true) {
    request = NewRequest();
    request.mutable_status();
    if (auto s = AskControl(path, request, response); !s.ok()) {
      // The process ended (a signal came early): no connection of it is left open.
      Say(absl::StrCat("pid ", pid, " no longer answers (", s.message(), "): done"));
      return 0;
    }
    open = response.status().downstream_connections_active();
    if (open == 0) {
      Say(absl::StrCat("pid ", pid, " has no open connection left: drained"));
      return 0;
    }
    if (absl::Now() >= deadline) break;
    absl::SleepFor(std::min(absl::FromChrono(kPollInterval), deadline - absl::Now()));
  }
  Say(absl::StrCat(open, " connections of pid ", pid, " still open after ",
                   absl::FormatDuration(wait), "; done waiting (a signal closes them)"));
  return 0;
}

}  // namespace sluice::exe
