#!/bin/sh
echo "remote_coverage_tools is a stub in sluice's offline Bazel build: no coverage" >&2
exit 1
