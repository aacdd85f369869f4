#!/usr/bin/env bash
# Runs the dashboard's browser test against a running server:
#   tests/browser/run.sh URL [TOKEN]
# Installs playwright-core into tests/browser/node_modules first if it is missing (npm ci from
# package-lock.json). Uses Debian's /usr/bin/chromium; no browser is downloaded.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
url="${1:?usage: run.sh URL [TOKEN]}"
if [[ ! -d "$here/node_modules/playwright-core" ]]; then
  (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
export GITVIRT_URL="$url"
if [[ $# -ge 2 ]]; then export GITVIRT_TOKEN="$2"; fi
exec node --test --test-reporter=spec "$here/dashboard.test.mjs"
