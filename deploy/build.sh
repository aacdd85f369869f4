#!/usr/bin/env bash
# Installs what is missing and builds gitvirt into build/ (the `dev` preset). Used by
# deploy/demo.sh and deploy/test.sh; safe to run again (it rebuilds only what changed).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/setup.sh
cmake --preset dev >/dev/null
cmake --build --preset dev -j "$(nproc)"
