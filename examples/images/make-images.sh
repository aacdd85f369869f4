#!/usr/bin/env bash
# Rebuilds the two tiny images the example manifests import, byte for byte:
#   tiny.qcow2  an empty 1 GiB qcow2 (qemu-img output is deterministic for an empty image)
#   tiny.iso    a one-file ISO 9660 image, with every timestamp pinned by SOURCE_DATE_EPOCH
# Their sha256 values are written in examples/manifests/image-*.yaml; if this script ever
# produces different bytes (another qemu-img or xorriso version), update those values too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SOURCE_DATE_EPOCH=1700000000 TZ=UTC LC_ALL=C

rm -f "$here/tiny.qcow2"
qemu-img create -q -f qcow2 -o compat=1.1 "$here/tiny.qcow2" 1G

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/root"
printf 'gitvirt example ISO.\nA tiny image so the examples can attach a CD-ROM.\n' >"$tmp/root/README.TXT"
chmod 0644 "$tmp/root/README.TXT"
chmod 0755 "$tmp/root"
touch -d "@$SOURCE_DATE_EPOCH" "$tmp/root/README.TXT" "$tmp/root"
rm -f "$here/tiny.iso"
xorrisofs -quiet -no-pad -r -J -V GITVIRT_TOOLS -o "$here/tiny.iso" "$tmp/root" 2>/dev/null

cd "$here" && sha256sum tiny.qcow2 tiny.iso
