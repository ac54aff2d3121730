#pragma once

namespace sluice::exe {

// `sluice drain [options]`: the graceful end of a sluice that something else will stop (a
// Kubernetes preStop hook; docs/deployment.md). Over the running sluice's control socket:
// fails its readiness, waits --readiness-delay while it still accepts (load balancers and
// kube-proxy take time to stop sending), drains its listeners with the process kept up, and
// waits until its last downstream connection is gone (or --timeout). Exit 0 then; 1 when the
// running sluice cannot be reached or refuses; 2 on a usage error.
int DrainMain(int argc, char** argv);

}  // namespace sluice::exe
