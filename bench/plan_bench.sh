#!/usr/bin/env bash
# Loader and no-op plan benchmark on simulated nodes (no daemon, no root needed):
#   1. `gitvirt validate` of N realistic VirtualMachine documents (two disks, two NICs,
#      cloud-init, labels, tags; 100 files) — the loader;
#   2. `gitvirt apply` of N plain VMs (a linked clone of an Image, a data disk, one NIC) over
#      K simulated nodes — once, to own them (reported, not a target);
#   3. `gitvirt plan --detailed-exitcode` over them, nothing to change — observe every domain of
#      every node, diff, plan:
#        3a. the first plan after the apply: the apply changed every node, so every node's files
#            are loaded into libvirt's test driver (and the observation kept as the node's
#            snapshot) — once;
#        3b. the plans after it: nothing changed the nodes, each is answered from its
#            observation snapshot (see DEVELOPERS.md, "Simulated nodes") — best and median of R;
#        3c. the same with the snapshots turned off (GITVIRT_SIM_SNAPSHOTS=0): every plan loads
#            every node — best and median of R;
#   4. the limit for 3: a C program per node, all at once, opening the same simulated node with
#      libvirt's test driver (which parses the node's files) and reading every domain's XML and
#      state (bench/raw_apply.c --observe);
#   5. the same no-op plan inside `gitvirt serve`, which keeps its node connections open (so
#      the test driver parses its files once, at start-up): the reconcile pass's duration from
#      /metrics, R passes.
#
# usage: bench/plan_bench.sh [--vms N] [--nodes K] [--runs R] [--reuse DIR] [--baseline DIR]
#   defaults 10000, 10, 5
#   --reuse DIR: the work directory of an earlier run kept with KEEP=1 (same N and K): skip the
#   generation and the apply (reported as "-"), measure the rest again.
#   --baseline DIR: also time another build's gitvirt (DIR/gitvirt, e.g. a build of an earlier
#   commit) in the same run: validate and the no-op plan with snapshots off interleaved with this
#   build's, R runs each; the warm no-op plan in alternating blocks (each build keeps its own
#   snapshot key, so each block's first plan warms it), 2 blocks of R each; medians before -> after.
# Targets (issues 2 and 3): loading 10,000 documents < 1 s; the no-op plan of 10,000 < 1.5 s.
set -euo pipefail

vms=10000 nodes=10 runs=5 reuse= baseline=
while [ $# -gt 0 ]; do
  case "$1" in
    --vms) vms=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --reuse) reuse=$2; shift 2 ;;
    --baseline) baseline=$(cd "$2" && pwd); shift 2 ;;
    *) echo "usage: $0 [--vms N] [--nodes K] [--runs R] [--reuse DIR] [--baseline DIR]" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
gitvirt=${BUILD_DIR:-$root/build}/gitvirt
[ -x "$gitvirt" ] || { echo "missing $gitvirt: cmake --build build --target gitvirt" >&2; exit 1; }
if [ -n "$reuse" ]; then
  work=$(cd "$reuse" && pwd)
  [ -f "$work/gitvirt.yaml" ] && [ -d "$work/rich" ] || { echo "$reuse is not a kept plan_bench directory" >&2; exit 1; }
else
  work=$(mktemp -d /tmp/gvplan-XXXXXX)
  [ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
fi

now() { date +%s.%N; }
load() { cut -d' ' -f1 /proc/loadavg; }
elapsed() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.3f", a - b }'; }
stats() {  # prints "best median" of the numbers on stdin
  sort -n | awk '{ v[NR] = $1 } END { printf "%.3f %.3f\n", v[1], v[int((NR + 1) / 2)] }'
}

# --- 1. the loader -----------------------------------------------------------------------------------
[ -n "$reuse" ] || python3 "$root/bench/gen_manifests.py" "$work/rich" "$vms" --files 100
: > "$work/validate.times"
for _ in $(seq "$runs"); do
  t=$(now)
  "$gitvirt" validate -f "$work/rich" > "$work/validate.log"
  elapsed "$t" >> "$work/validate.times"; echo >> "$work/validate.times"
done
read -r validate_best validate_median < <(stats < "$work/validate.times")
validate_load=$(load)

# --- 2. own N VMs on K simulated nodes -----------------------------------------------------------
gv() { (cd "$work" && exec "${GV_BIN:-$gitvirt}" --config gitvirt.yaml "$@"); }
apply_s=- apply_load=-
if [ -z "$reuse" ]; then
cp "$root/examples/images/tiny.qcow2" "$work/base.qcow2"
sha=$(sha256sum "$work/base.qcow2" | cut -d' ' -f1)
python3 "$root/bench/gen_manifests.py" "$work/manifests" "$vms" --files 100 --nodes "$nodes" --plain \
  --image "$work/base.qcow2" --sha256 "$sha"
{
  echo "apiVersion: gitvirt.dev/v1"
  echo "kind: ControllerConfig"
  echo "source: {path: manifests, interval: 1s}"
  echo "nodes:"
  for n in $(seq "$nodes"); do
    echo "  - {name: hv$n, uri: 'sim:sim/hv$n.xml', capacity: {vcpus: 100000, memory: 100TiB}, maxParallel: 8}"
  done
  echo "apply: {parallel: 16}"
  echo "api: {listen: '127.0.0.1:${PLAN_BENCH_PORT:-18931}'}"
  echo "state: state/gitvirt.db"
} > "$work/gitvirt.yaml"
t=$(now)
gv apply --auto-approve --no-color > "$work/apply.log" 2>&1 || { tail -20 "$work/apply.log" >&2; exit 1; }
apply_s=$(elapsed "$t") apply_load=$(load)
fi

# --- 3. the no-op plan ------------------------------------------------------------------------------
noop_plan() {  # appends the seconds of one no-op plan to $1
  local t; t=$(now)
  gv plan --detailed-exitcode --no-color > "$work/plan.log" 2>&1 ||
    { echo "the plan is not empty (exit $?):" >&2; tail -20 "$work/plan.log" >&2; exit 1; }
  elapsed "$t" >> "$1"; echo >> "$1"
}
# Reused: the snapshots an earlier run kept would answer; without them it is as after the apply.
[ -z "$reuse" ] || rm -f "$work"/sim/*.xml.d/observed.snapshot
: > "$work/plan-first.times"
noop_plan "$work/plan-first.times"
first_s=$(head -1 "$work/plan-first.times") first_load=$(load)
: > "$work/plan.times"
for _ in $(seq "$runs"); do noop_plan "$work/plan.times"; done
read -r plan_best plan_median < <(stats < "$work/plan.times")
plan_load=$(load)
: > "$work/plan-cold.times"
for _ in $(seq "$runs"); do GITVIRT_SIM_SNAPSHOTS=0 noop_plan "$work/plan-cold.times"; done
read -r cold_best cold_median < <(stats < "$work/plan-cold.times")
cold_load=$(load)

# --- 4. the limit: libvirt alone, every node at once ---------------------------------------------------
raw=${BUILD_DIR:-$root/build}/bench/bench_raw_apply
raw_best=- raw_median=- ratio=- cold_ratio=- raw_load=-
if [ -x "$raw" ]; then
  : > "$work/raw.times"
  for _ in $(seq "$runs"); do
    t=$(now)
    for n in $(seq "$nodes"); do "$raw" "test://$work/sim/hv$n.xml" --observe > /dev/null & done
    wait
    elapsed "$t" >> "$work/raw.times"; echo >> "$work/raw.times"
  done
  read -r raw_best raw_median < <(stats < "$work/raw.times")
  raw_load=$(load)
  ratio=$(awk -v a="$plan_median" -v b="$raw_median" 'BEGIN { printf "%.2f", a / b }')
  cold_ratio=$(awk -v a="$cold_median" -v b="$raw_median" 'BEGIN { printf "%.2f", a / b }')
fi

# --- 5. the reconcile pass in serve ------------------------------------------------------------------
(cd "$work" && exec "$gitvirt" --config gitvirt.yaml serve) > "$work/serve.log" 2>&1 &
serve_pid=$!
metric() { curl -s "http://127.0.0.1:${PLAN_BENCH_PORT:-18931}/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
: > "$work/serve.times"
seen=0 deadline=$(( $(date +%s) + 120 + 10 * runs ))
while [ "$(wc -l < "$work/serve.times")" -lt "$runs" ] && [ "$(date +%s)" -lt "$deadline" ]; do
  sleep 0.2
  total=$(metric gitvirt_reconciles_total || true)
  [ -n "$total" ] || continue
  total=${total%.*}
  # The first pass also connects; count the ones after it.
  if [ "$total" -gt "$seen" ]; then
    [ "$seen" -ge 1 ] && metric gitvirt_reconcile_duration_seconds >> "$work/serve.times"
    seen=$total
  fi
done
kill -TERM "$serve_pid"; wait "$serve_pid" || true
serve_best=- serve_median=- serve_load=$(load)
[ -s "$work/serve.times" ] && read -r serve_best serve_median < <(stats < "$work/serve.times")

# --- 6. before -> after: the baseline build in the same run --------------------------------------------
if [ -n "$baseline" ]; then
  before=$baseline/gitvirt
  [ -x "$before" ] || { echo "missing $before" >&2; exit 1; }
  for f in validate plan cold; do : > "$work/ba-$f-after"; : > "$work/ba-$f-before"; done
  for _ in $(seq "$runs"); do
    for side in after before; do
      bin=$gitvirt; [ "$side" = before ] && bin=$before
      t=$(now); "$bin" validate -f "$work/rich" > "$work/validate.log"
      elapsed "$t" >> "$work/ba-validate-$side"; echo >> "$work/ba-validate-$side"
      GV_BIN=$bin GITVIRT_SIM_SNAPSHOTS=0 noop_plan "$work/ba-cold-$side"
    done
  done
  for _ in 1 2; do
    for side in after before; do
      bin=$gitvirt; [ "$side" = before ] && bin=$before
      GV_BIN=$bin noop_plan "$work/ba-warmup"  # loads every node and keeps this build's snapshot
      for _ in $(seq "$runs"); do GV_BIN=$bin noop_plan "$work/ba-plan-$side"; done
    done
  done
fi

printf '\n%s, %s, %s cores, load %s now\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$("$gitvirt" version | head -1)" \
  "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
row() { printf '%-66s %8s %8s %6s  %s\n' "$@"; }
row "what" "best s" "median s" "load" "target"
row "validate: load $vms VirtualMachine documents (100 files)" "$validate_best" "$validate_median" "$validate_load" "< 1 s"
row "apply: create + start $vms VMs on $nodes simulated nodes (once)" "$apply_s" "-" "$apply_load" "-"
row "plan, first after the apply (every node loaded; snapshots cold)" "$first_s" "-" "$first_load" "-"
row "plan, no changes, repeated (snapshots warm)" "$plan_best" "$plan_median" "$plan_load" "< 1.5 s"
row "plan, no changes, GITVIRT_SIM_SNAPSHOTS=0 (every node loaded)" "$cold_best" "$cold_median" "$cold_load" "-"
row "C: load the same $nodes node files + read every domain" "$raw_best" "$raw_median" "$raw_load" "limit (cold)"
row "serve: no-op reconcile pass over the same" "$serve_best" "$serve_median" "$serve_load" "< 1.5 s"
echo "no-op plan / C limit (medians): snapshots warm $ratio, snapshots off $cold_ratio"
if [ -n "$baseline" ]; then
  echo
  echo "before ($("$before" version | head -1), $before) -> after (this build), medians, same run:"
  printf '%-66s %10s %10s %8s\n' "what" "before s" "after s" "after/before"
  ba() { local b a; b=$(stats < "$work/ba-$2-before" | cut -d' ' -f2); a=$(stats < "$work/ba-$2-after" | cut -d' ' -f2)
         printf '%-66s %10s %10s %8s\n' "$1" "$b" "$a" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')"; }
  ba "validate: load $vms VirtualMachine documents (100 files)" validate
  ba "plan, no changes, repeated (snapshots warm)" plan
  ba "plan, no changes, GITVIRT_SIM_SNAPSHOTS=0 (every node loaded)" cold
fi
