#!/usr/bin/env bash
# The test command of the README and of CI (.ci/run): set up, build, run every test.
# Needs root (integration tests start private libvirtd daemons in mount namespaces).
#
# The guest tests (ctest label `guest`) boot a Debian 12 image built with debootstrap by
# tests/guest/build-image.sh and cached in /var/cache/gitvirt/guest (GITVIRT_CACHE_DIR), so only
# the first run on a machine builds it (it needs the Debian mirror; see tests/guest/README.md for
# the times). It is built here, before the tests, so its time is not charged to a test's timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/build.sh
start=$(date +%s)
tests/guest/build-image.sh >/dev/null
echo "test.sh: guest image ready in $(( $(date +%s) - start ))s"
cd build
# --no-tests=error: a run that executes no test is a failure, not a success.
ctest --output-on-failure --no-tests=error -j 2 "$@"
