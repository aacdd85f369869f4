#!/usr/bin/env bash
# The README's first command: set up, build, and run gitvirt's main job on embedded defaults:
# the example manifests on three simulated hypervisor nodes (libvirt's test driver, state in
# examples/state/), journaled in examples/gitvirt.db.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/build.sh
gitvirt() { ./build/gitvirt --config examples/gitvirt.yaml "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "gitvirt validate: every manifest, every problem at once"
gitvirt validate
step "gitvirt plan: what would change"
gitvirt plan
step "gitvirt apply: do it (journaled; FULL rollback on failure)"
gitvirt apply --auto-approve
step "gitvirt get vms -o wide: what runs now"
gitvirt get vms -o wide
step "gitvirt get clusters"
gitvirt get clusters
step "gitvirt plan --detailed-exitcode: right after an apply there is nothing to do"
gitvirt plan --detailed-exitcode
