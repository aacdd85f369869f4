#!/usr/bin/env bash
# The test command of the README and of CI (.ci/run): set up, build, run every test.
# Needs root (integration tests start private libvirtd daemons in mount namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/build.sh
cd build
# --no-tests=error: a run that executes no test is a failure, not a success.
ctest --output-on-failure --no-tests=error -j 2 "$@"
