#!/usr/bin/env bash
# The README's first command: set up, build, and run gitvirt's main job on embedded defaults:
# the example manifests on three simulated hypervisor nodes (libvirt's test driver, state in
# examples/state/), journaled in examples/gitvirt.db.
#
# GITVIRT_DEMO_BUILD=0 skips set-up and build (build/ must hold a build); GITVIRT_DEMO_ONCE=1 ends
# with one reconcile pass of serve instead of serving (e2e.demo runs it that way).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${GITVIRT_DEMO_BUILD:-1}" != 0 ]; then ./deploy/build.sh; fi
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

# Finally the controller: a local git repository made from the examples, reconciled every 10s.
# Commit to it (examples/state/demo-repo) and watch the dashboard. Ctrl-C stops it.
repo=examples/state/demo-repo
if [ ! -d "$repo/.git" ]; then
  mkdir -p "$repo"
  cp -r examples/manifests examples/images "$repo/"
  git -C "$repo" init -q -b main
  git -C "$repo" add .
  git -C "$repo" -c user.name=gitvirt-demo -c user.email=demo@gitvirt.invalid commit -q -m "example manifests"
fi
step "gitvirt serve: reconciling $repo (try: edit a manifest there and git commit)"
serve_args=()
if [ "${GITVIRT_DEMO_ONCE:-0}" = 1 ]; then serve_args=(--once); fi
exec ./build/gitvirt --config examples/gitvirt-git.yaml serve "${serve_args[@]}"
