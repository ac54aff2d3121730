#pragma once

namespace sluice::exe {

// `sluice reload [options]`: a hot restart in one command (docs/hot_restart.md). Asks the
// running sluice (its control socket) how it was started, starts this binary — the one on disk
// now, so a new version deploys this way — alike with --hot-restart-from, and waits until the
// successor serves or fails. Exit 0: the successor serves and the old process drains; 1: the old
// process still serves alone (the successor's log says why); 2: a usage error.
int ReloadMain(int argc, char** argv);

}  // namespace sluice::exe
