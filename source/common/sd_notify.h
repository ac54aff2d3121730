#pragma once

#include <string_view>

namespace sluice::sd {

// systemd's readiness protocol (sd_notify(3)), without libsystemd: one datagram of
// "KEY=value" lines to the unix socket $NOTIFY_SOCKET names (a path, or "@name" in the abstract
// namespace). Nothing happens when the variable is unset (not started by systemd with
// Type=notify). The protocol is one of systemd's documented stable interfaces.
// Returns false if a socket was named and the message could not be sent.
bool Notify(std::string_view state);

}  // namespace sluice::sd
