#!/usr/bin/env bash
# Starts demo_status_server (fake data, a job every few seconds) on a free port, runs the
# browser test against it, and stops the server:
#   tests/browser/run_demo.sh path/to/demo_status_server
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
demo="${1:?usage: run_demo.sh path/to/demo_status_server}"
log="$(mktemp)"
"$demo" --listen 127.0.0.1:0 --vms 20 --steps 20 --step-ms 250 --pause-ms 3000 >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
url=""
for _ in $(seq 1 100); do
  url="$(sed -n 's/^listening on //p' "$log" | head -n1)"
  [[ -n "$url" ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[[ -n "$url" ]] || { echo "the demo server did not start"; cat "$log"; exit 1; }
# The demo's jobs have 20 steps: insist on seeing the bar move through several of them.
GITVIRT_MIN_PROGRESS_VALUES="${GITVIRT_MIN_PROGRESS_VALUES:-5}" "$here/run.sh" "$url"
