#!/usr/bin/env bash
# Runs one integration test script under Bazel (bazel/sluice.bzl: sluice_integration_test) with
# the environment CMake's sluice_integration_test() gives it, pointed at the Bazel outputs.
set -euo pipefail
script=$(readlink -f "$1")
runfiles=${RUNFILES_DIR:-$PWD}
export SLUICE_REPO_ROOT=$(dirname "$(readlink -f "$runfiles/sluice/WORKSPACE" 2>/dev/null || readlink -f WORKSPACE)")
bin=$(readlink -f source/exe/sluice)
export SLUICE_BIN=$bin
export SLUICE_PLUGIN_DIR=$(dirname "$bin")/plugins
export SLUICE_TEST_PLUGIN_DIR=$(dirname "$(readlink -f test/plugin/plugins/noop.so)")
export PYTHONPATH=$SLUICE_REPO_ROOT/test/integration
exec /usr/bin/python3 "$script"
