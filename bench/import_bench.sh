#!/usr/bin/env bash
# `gitvirt import` of N domains gitvirt does not own, on libvirt's test driver (no daemon, no
# root needed): a test:///FILE node whose file defines N domains as people make them by hand (a
# qcow2 volume disk, a raw file disk on SATA, two NICs with fixed MACs, a cdrom, VNC; every
# third one UEFI with a TPM; every fifth with a sound card, which import names as unexpressed).
# Times, best and median of R runs, `gitvirt import --all --out DIR` (a fresh DIR each run):
# connect, observe every domain, choose, emit N manifests, load them back to validate, write
# N files. Target (issue 15): N = 1,000 in under 2 s. Wall-clock time and the CPU time the
# process used are both printed: on a shared machine the first waits for the cores.
#
# usage: bench/import_bench.sh [--vms N] [--runs R]   (defaults 1000, 5; KEEP=1 keeps the work dir)
set -euo pipefail

vms=1000 runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --vms) vms=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "usage: $0 [--vms N] [--runs R]" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
gitvirt=${GITVIRT:-$root/build/gitvirt}
work=$(mktemp -d /tmp/gvimport-bench-XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

python3 - "$work/host.xml" "$vms" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
out = ["<node><cpu><mode>32</mode><nodes>1</nodes><sockets>1</sockets><cores>32</cores><threads>1</threads>"
       "<active>32</active><mhz>3000</mhz><model>x86_64</model></cpu><memory>1073741824</memory>"
       "<pool type='dir'><name>default</name><uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>"
       "<capacity>1099511627776</capacity><allocation>0</allocation><available>1099511627776</available>"
       "<target><path>/var/lib/libvirt/images</path></target>"]
for i in range(n):
    out.append("<volume type='file'><name>imp-%05d-root.qcow2</name><capacity unit='GiB'>20</capacity>"
               "<allocation unit='GiB'>1</allocation><target><path>/var/lib/libvirt/images/imp-%05d-root.qcow2</path>"
               "<format type='qcow2'/></target></volume>" % (i, i))
out.append("</pool>")
for i in range(n):
    uefi = i % 3 == 0
    os = ("<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type></os>" if uefi else
          "<os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>")
    dev = ("<disk type='volume' device='disk'><driver name='qemu' type='qcow2' cache='none'/>"
           "<source pool='default' volume='imp-%05d-root.qcow2'/><target dev='vda' bus='virtio'/></disk>"
           "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/srv/data/imp-%05d.raw'/>"
           "<target dev='sdb' bus='sata'/></disk>"
           "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/srv/iso/tools.iso'/>"
           "<target dev='sdc' bus='sata'/><readonly/></disk>"
           "<interface type='network'><mac address='52:54:%02x:%02x:%02x:01'/><source network='default'/><model type='virtio'/></interface>"
           "<interface type='bridge'><mac address='52:54:%02x:%02x:%02x:02'/><source bridge='br0'/><model type='e1000'/><vlan><tag id='100'/></vlan></interface>"
           "<graphics type='vnc' autoport='yes' listen='127.0.0.1'/><video><model type='virtio'/></video>"
           % (i, i, i >> 16, (i >> 8) & 255, i & 255, i >> 16, (i >> 8) & 255, i & 255))
    if uefi:
        dev += "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"
    if i % 5 == 0:
        dev += "<sound model='ich9'/>"
    out.append("<domain type='kvm'><name>imp-%05d</name><memory unit='MiB'>2048</memory><vcpu>2</vcpu>%s"
               "<features><acpi/><apic/></features><devices>%s</devices></domain>" % (i, os, dev))
out.append("</node>")
open(path, "w").write("".join(out))
PY

cat > "$work/gitvirt.yaml" <<YAML
apiVersion: gitvirt.dev/v1
kind: ControllerConfig
nodes:
  - name: hv1
    uri: test://$work/host.xml
state: $work/state.db
YAML

times=() cpus=()
TIMEFORMAT='%R %U %S'
for r in $(seq 1 "$runs"); do
  out="$work/out-$r"
  # bash's `time`: wall-clock seconds, then user and system CPU seconds of the process.
  t=$( { time "$gitvirt" --config "$work/gitvirt.yaml" import --all --out "$out" > "$work/import-$r.log" 2>&1 \
         || { cat "$work/import-$r.log" >&2; exit 1; } ; } 2>&1 )
  written=$(ls "$out" | wc -l)
  [ "$written" = "$vms" ] || { echo "wrote $written files, expected $vms" >&2; exit 1; }
  read -r real user sys <<< "$t"
  times+=("$real")
  cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f", u + s }')")
done
"$gitvirt" --config "$work/gitvirt.yaml" validate -f "$work/out-1" > /dev/null \
  || { echo "the imported manifests do not validate" >&2; exit 1; }
stats() {  # best and median of the arguments
  local sorted
  sorted=$(printf '%s\n' "$@" | sort -n)
  echo "$(echo "$sorted" | head -1) $(echo "$sorted" | sed -n "$(( ($# + 1) / 2 ))p")"
}
read -r best median <<< "$(stats "${times[@]}")"
read -r cbest cmedian <<< "$(stats "${cpus[@]}")"
printf 'import --all of %d domains (test driver), %d runs: wall best %.3f s, median %.3f s; CPU (user+sys) best %.3f s, median %.3f s\n' \
  "$vms" "$runs" "$best" "$median" "$cbest" "$cmedian"
echo "load: $(uptime)"
