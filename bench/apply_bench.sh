#!/usr/bin/env bash
# Apply benchmark: in one run, on one private libvirtd (its test driver, through the daemon's
# socket, as a remote hypervisor would be reached), time
#   1. `gitvirt apply` of N VMs (define + start) from manifests, parallel and --parallel 1;
#   2. the same libvirt calls in a plain C loop, one thread and P threads (the limit);
#   3. `virsh define` + `virsh start` in a shell loop;
#   4. Ansible's community.libvirt.virt module (command: define, then state: running);
#   5. a no-op `gitvirt plan` over the N VMs vs the C loop reading what it must read;
# and print seconds, milliseconds per VM and ratios to the C loop.
#
# usage: bench/apply_bench.sh [--vms N] [--virsh-vms N] [--ansible-vms N] [--parallel P] [--baseline DIR]
#   defaults: 1000 VMs for gitvirt and C, 200 for virsh, 100 for Ansible, P = 8.
#   --baseline DIR: also time another build's gitvirt (DIR/gitvirt, e.g. a build of an earlier
#   commit) in the same run, interleaved with this one: apply at P and at 1, and the no-op plan,
#   twice each, the best of each reported before -> after.
# Needs root (the private libvirtd) and `deploy/setup.sh --bench` (ansible, python3-libvirt);
# the binaries come from BUILD_DIR (default build/): `cmake --build build --target gitvirt bench_raw_apply`.
set -euo pipefail

vms=1000 virsh_vms=200 ansible_vms=100 parallel=8 baseline=
while [ $# -gt 0 ]; do
  case "$1" in
    --vms) vms=$2; shift 2 ;;
    --virsh-vms) virsh_vms=$2; shift 2 ;;
    --ansible-vms) ansible_vms=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --baseline) baseline=$(cd "$2" && pwd); shift 2 ;;
    *) echo "usage: $0 [--vms N] [--virsh-vms N] [--ansible-vms N] [--parallel P] [--baseline DIR]" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
gitvirt=$build/gitvirt
raw=$build/bench/bench_raw_apply
before=${baseline:+$baseline/gitvirt}
for bin in "$gitvirt" "$raw" $before; do
  [ -x "$bin" ] || { echo "missing $bin: cmake --build $build --target gitvirt bench_raw_apply" >&2; exit 1; }
done
command -v ansible-playbook >/dev/null && /usr/bin/python3 -c 'import libvirt' 2>/dev/null ||
  { echo "needs ansible and python3-libvirt: deploy/setup.sh --bench" >&2; exit 1; }

work=$(mktemp -d /tmp/gvb-XXXXXX)   # short: the daemon's socket path must fit in sockaddr_un
holder=
cleanup() {
  [ -n "$holder" ] && kill "$holder" 2>/dev/null || true
  "$root/tests/harness/libvirtd.sh" stop "$work/d" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

eval "$("$root/tests/harness/libvirtd.sh" start "$work/d")"
uri=$TEST_URI
# The test driver keeps its state only while a connection is open: hold one for the whole run.
/usr/bin/python3 -c 'import libvirt, sys, time
c = libvirt.open(sys.argv[1]); print("ok", flush=True); time.sleep(1e9)' "$uri" > "$work/holder.out" &
holder=$!
for _ in $(seq 50); do grep -q ok "$work/holder.out" 2>/dev/null && break; sleep 0.1; done

now() { date +%s.%N; }
elapsed() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.4f", a - b }'; }
clean() { "$raw" "$uri" --clean "$1" > /dev/null; }

# --- manifests and gitvirt's configuration -------------------------------------------------------
mkdir -p "$work/manifests" "$work/state"
python3 - "$work/manifests" "$vms" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for f in range(0, n, 100):
    with open(os.path.join(d, "vms-%03d.yaml" % (f // 100)), "w") as out:
        for i in range(f + 1, min(f + 100, n) + 1):
            out.write("""---
apiVersion: gitvirt.dev/v1
kind: VirtualMachine
metadata:
  name: g%04d
  labels: {bench: apply}
spec:
  node: hv1
  vcpus: 1
  memory: 512MiB
  networks: []
  powerState: Running
""" % i)
EOF
cat > "$work/gitvirt.yaml" <<EOF
apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {path: manifests}
nodes:
  - name: hv1
    uri: "$uri"
    maxParallel: $parallel
apply: {parallel: $parallel, rollback: FULL}
state: state/gitvirt.db
EOF

gv() { (cd "$work" && exec "${GV_BIN:-$gitvirt}" --config gitvirt.yaml "$@"); }

# --- 1. gitvirt apply ----------------------------------------------------------------------------
run_gitvirt() {  # $1: --parallel value
  rm -rf "$work/state"/*
  local t; t=$(now)
  gv apply --auto-approve --no-color --parallel "$1" > "$work/apply.log" 2>&1 ||
    { tail -20 "$work/apply.log" >&2; exit 1; }
  elapsed "$t"
}
gitvirt_par=$(run_gitvirt "$parallel")
# The no-op plan over everything just applied, then the C loop reading the same.
t=$(now); gv plan --detailed-exitcode --no-color > "$work/plan.log" 2>&1 ||
  { echo "the plan after apply is not empty:" >&2; tail -20 "$work/plan.log" >&2; exit 1; }
plan_noop=$(elapsed "$t")
observe_raw=$("$raw" "$uri" --observe | cut -d' ' -f1)
# The domain gitvirt defined is the template for the others (same XML, same validation).
virsh -c "$uri" dumpxml --inactive g0001 | grep -v '<uuid>' | sed 's/g0001/@NAME@/g' > "$work/template.xml"
clean g
gitvirt_seq=$(run_gitvirt 1)
clean g

# --- 2. the C loop --------------------------------------------------------------------------------
raw_seq=$("$raw" "$uri" "$work/template.xml" c "$vms" | cut -d' ' -f1)
clean c
raw_par=$("$raw" "$uri" "$work/template.xml" c "$vms" --parallel "$parallel" | cut -d' ' -f1)
clean c

# --- 3. virsh in a shell loop ----------------------------------------------------------------------
mkdir -p "$work/virsh"
for i in $(seq -f '%04g' 1 "$virsh_vms"); do sed "s/@NAME@/v$i/g" "$work/template.xml" > "$work/virsh/v$i.xml"; done
t=$(now)
for i in $(seq -f '%04g' 1 "$virsh_vms"); do
  virsh -q -c "$uri" define --validate "$work/virsh/v$i.xml" > /dev/null
  virsh -q -c "$uri" start "v$i" > /dev/null
done
virsh_s=$(elapsed "$t")
clean v

# --- 4. Ansible ------------------------------------------------------------------------------------
cat > "$work/playbook.yaml" <<'EOF'
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    template: "{{ lookup('file', template_file) }}"
  tasks:
    - name: define
      community.libvirt.virt:
        uri: "{{ uri }}"
        command: define
        xml: "{{ template | replace('@NAME@', 'a%04d' % item) }}"
      loop: "{{ range(1, (count | int) + 1) | list }}"
    - name: start
      community.libvirt.virt:
        uri: "{{ uri }}"
        name: "{{ 'a%04d' % item }}"
        state: running
      loop: "{{ range(1, (count | int) + 1) | list }}"
EOF
t=$(now)
ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 \
  ansible-playbook -i localhost, "$work/playbook.yaml" \
  -e "ansible_python_interpreter=/usr/bin/python3 uri=$uri template_file=$work/template.xml count=$ansible_vms" > "$work/ansible.log" 2>&1 ||
  { tail -30 "$work/ansible.log" >&2; exit 1; }
ansible_s=$(elapsed "$t")
[ "$(virsh -c "$uri" list --name | grep -c '^a')" -eq "$ansible_vms" ] ||
  { echo "ansible did not start $ansible_vms domains" >&2; exit 1; }
clean a

# --- 5. before -> after: the baseline build in the same run, interleaved ------------------------------
if [ -n "$before" ]; then
  best() { awk 'BEGIN { b = -1 } { if (b < 0 || $1 < b) b = $1 } END { printf "%.3f", b }'; }
  : > "$work/ba-par-after"; : > "$work/ba-par-before"; : > "$work/ba-seq-after"; : > "$work/ba-seq-before"
  : > "$work/ba-plan-after"; : > "$work/ba-plan-before"
  for round in 1 2; do
    for side in after before; do
      bin=$gitvirt; [ "$side" = before ] && bin=$before
      GV_BIN=$bin run_gitvirt "$parallel" >> "$work/ba-par-$side"; echo >> "$work/ba-par-$side"
      t=$(now); GV_BIN=$bin gv plan --detailed-exitcode --no-color > "$work/plan.log" 2>&1 ||
        { echo "the $side plan after apply is not empty:" >&2; tail -20 "$work/plan.log" >&2; exit 1; }
      elapsed "$t" >> "$work/ba-plan-$side"; echo >> "$work/ba-plan-$side"
      clean g
      GV_BIN=$bin run_gitvirt 1 >> "$work/ba-seq-$side"; echo >> "$work/ba-seq-$side"
      clean g
    done
  done
fi

# --- report ----------------------------------------------------------------------------------------
per() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.3f", 1000 * s / n }'; }
ratio() { awk -v a="$1" -v n="$2" -v b="$3" -v m="$4" 'BEGIN { printf "%.2f", (a / n) / (b / m) }'; }
printf '\n%s, %s, libvirt %s, test driver through a private libvirtd, %s cores, load %s\n' \
  "$(date -u +%Y-%m-%dT%H:%MZ)" "$("$gitvirt" version | head -1)" "$(virsh --version)" "$(nproc)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %6s %9s %9s %s\n' "what" "VMs" "seconds" "ms/VM" "ratio to the C loop (same parallelism)"
row() { printf '%-44s %6d %9.3f %9.3f %s\n' "$1" "$2" "$3" "$(per "$3" "$2")" "$4"; }
row "C loop, 1 thread (the limit)" "$vms" "$raw_seq" "1.00"
row "C loop, $parallel threads" "$vms" "$raw_par" "1.00"
row "gitvirt apply --parallel 1" "$vms" "$gitvirt_seq" "$(ratio "$gitvirt_seq" "$vms" "$raw_seq" "$vms")"
row "gitvirt apply --parallel $parallel" "$vms" "$gitvirt_par" "$(ratio "$gitvirt_par" "$vms" "$raw_par" "$vms")"
row "virsh define + start, shell loop" "$virsh_vms" "$virsh_s" "$(ratio "$virsh_s" "$virsh_vms" "$raw_seq" "$vms")"
row "ansible community.libvirt.virt" "$ansible_vms" "$ansible_s" "$(ratio "$ansible_s" "$ansible_vms" "$raw_seq" "$vms")"
row "gitvirt plan, no changes (observe + plan)" "$vms" "$plan_noop" "$(ratio "$plan_noop" "$vms" "$observe_raw" "$vms") (C: list + XML + state + autostart)"
echo
echo "gitvirt apply / C loop: $(ratio "$gitvirt_seq" "$vms" "$raw_seq" "$vms") sequential, $(ratio "$gitvirt_par" "$vms" "$raw_par" "$vms") at $parallel; target <= 1.3"
echo "gitvirt is $(ratio "$virsh_s" "$virsh_vms" "$gitvirt_seq" "$vms")x faster than virsh and $(ratio "$ansible_s" "$ansible_vms" "$gitvirt_seq" "$vms")x faster than Ansible per VM (sequential)"
if [ -n "$before" ]; then
  echo
  echo "before ($("$before" version | head -1), $before) -> after (this build), best of two, interleaved:"
  printf '%-44s %10s %10s %8s
' "what" "before s" "after s" "after/before"
  ba() { local b a; b=$(best < "$work/ba-$2-before"); a=$(best < "$work/ba-$2-after")
         printf '%-44s %10s %10s %8s
' "$1" "$b" "$a" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')"; }
  ba "gitvirt apply --parallel $parallel ($vms VMs)" par
  ba "gitvirt apply --parallel 1 ($vms VMs)" seq
  ba "gitvirt plan, no changes ($vms VMs)" plan
fi
