#!/usr/bin/env bash
# Build (once, then cached) a small Debian 12 guest for gitvirt's end-to-end tests.
#
#   tests/guest/build-image.sh            build if needed, print IMAGE=, KERNEL=, INITRD=
#   tests/guest/build-image.sh --check    same, then boot the image once in QEMU and verify it
#   eval "$(tests/guest/build-image.sh)"  typical use from a test script
#
# The image is a bare ext4 filesystem (no partition table, no bootloader) in a qcow2 v3 file,
# booted by direct kernel boot: <kernel>, <initrd>, <cmdline>root=/dev/vda rw console=ttyS0</cmdline>.
# It is cached outside the source tree, keyed by a hash of this script. See README.md.
#
# Everything but the KEY=value result lines goes to stderr, so stdout can be eval'ed.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")

# ---------------------------------------------------------------------------------------------
# What goes into the image. Any edit to this file changes the cache key, so it rebuilds.
# ---------------------------------------------------------------------------------------------
SUITE=bookworm
ARCH=amd64
# linux-image-cloud-amd64 is smaller but has no AHCI driver (CONFIG_SATA_AHCI is not set), so it
# cannot see a seed ISO attached as a SATA cdrom on q35, which is how gitvirt attaches it.
# The generic kernel is used instead, with the module trees a VM never needs left out (dpkg
# path-exclude below).
KERNEL_PKG=linux-image-amd64
PACKAGES=(
  "$KERNEL_PKG" initramfs-tools kmod
  systemd-sysv udev dbus
  # cloud-init 22.4 on Debian has no renderer configured, so it takes the first available from
  # eni, sysconfig, netplan, networkd. ifupdown is NOT installed (eni unavailable), netplan.io is,
  # and the renderer is also pinned to netplan in 90-gitvirt.cfg. netplan writes systemd-networkd
  # files; systemd-resolved takes the nameservers.
  cloud-init netplan.io systemd-resolved iproute2 iputils-ping
  qemu-guest-agent
  openssh-server openssh-sftp-server sudo
)
IMAGE_SIZE=4G          # virtual size of the root filesystem; grow the disk and cloud-init's
                       # resize_rootfs grows the filesystem at first boot
FS_LABEL=gitvirt-root
CMDLINE="root=/dev/vda rw console=ttyS0,115200n8"
# Modules forced into the initrd (MODULES=list): root disk on virtio-blk, virtio-scsi, SATA or
# IDE, and the SATA/IDE/SCSI cdrom with the NoCloud seed, so both exist before cloud-init-local.
INITRD_MODULES=(
  virtio_pci virtio_blk virtio_scsi virtio_net virtio_console
  sd_mod sr_mod ahci ata_piix ata_generic
  ext4 crc32c_generic crc32c_intel isofs
)

# ---------------------------------------------------------------------------------------------
SCRIPT_HASH=$(sha256sum "$SELF" | cut -c1-16)
CACHE_ROOT=${GITVIRT_CACHE_DIR:-/var/cache/gitvirt}
GUEST_DIR=$CACHE_ROOT/guest
OUT=$GUEST_DIR/debian12-$SCRIPT_HASH
DEB_CACHE=$GUEST_DIR/debs      # downloaded .deb files, reused by later builds

log() { printf '[build-image] %s\n' "$*" >&2; }
T_START=$(date +%s)
step() { log "[+$(($(date +%s) - T_START))s] $*"; }
die() { printf '[build-image] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  cat >&2 <<'EOF'
usage: build-image.sh [--check] [--force] [--help]

Builds a Debian 12 guest image once (cached under ${GITVIRT_CACHE_DIR:-/var/cache/gitvirt}/guest,
keyed by a hash of this script) and prints, as the last lines on stdout:
  CMDLINE=...  IMAGE=<qcow2>  KERNEL=<vmlinuz>  INITRD=<initrd.img>
  --check   boot the image once in qemu-system-x86_64 with a NoCloud seed and verify it
            (env GITVIRT_GUEST_ACCEL=kvm|tcg forces the accelerator,
             GITVIRT_GUEST_TIMEOUT=<seconds> the boot timeout)
  --force   rebuild even if a cached image exists
Must run as root (debootstrap, chroot, private mount namespaces).
Environment: GITVIRT_DEBIAN_MIRROR / GITVIRT_DEBIAN_SECURITY_MIRROR override the mirrors found
in /etc/apt.
EOF
}

# ---------------------------------------------------------------------------------------------
# Mirrors: the ones this machine's apt already uses.
# ---------------------------------------------------------------------------------------------
# find_mirror SUITE: print the first URI that apt uses for SUITE (deb822 or one-line format).
find_mirror() {
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    # deb822 paragraphs: remember URIs and Suites, print the URI when Suites lists $suite.
    awk -v want="$suite" '
      function flush() { if (uri != "" && has) { print uri; found = 1; exit } uri = ""; has = 0 }
      /^[[:space:]]*$/ { flush(); next }
      tolower($1) == "uris:"   { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == want) has = 1 }
      END { if (!found) flush() }' "$f"
  done | head -n1 | grep . && return 0
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    # deb [options] URI SUITE COMPONENTS...
    sed -E 's/\[[^]]*\]//' "$f" | awk -v want="$suite" '$1 == "deb" && $3 == want { print $2; exit }'
  done | head -n1 | grep . && return 0
  return 1
}

MIRROR=${GITVIRT_DEBIAN_MIRROR:-$(find_mirror "$SUITE" || echo http://deb.debian.org/debian)}
SECURITY_MIRROR=${GITVIRT_DEBIAN_SECURITY_MIRROR:-$(find_mirror "$SUITE-security" || echo http://deb.debian.org/debian-security)}

# ---------------------------------------------------------------------------------------------
# Stage 2, run as "$SELF --_configure ROOT" inside a private mount namespace (unshare -m), so
# every mount made here disappears with the namespace, even if the build is killed.
# ---------------------------------------------------------------------------------------------
configure_rootfs() {
  local root=$1
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /dev "$root/dev"
  mount --bind /dev/pts "$root/dev/pts"
  mkdir -p "$DEB_CACHE/partial" "$root/var/cache/apt/archives"
  mount --bind "$DEB_CACHE" "$root/var/cache/apt/archives"

  # Name resolution for apt during the build only; replaced by resolved's stub at the end.
  rm -f "$root/etc/resolv.conf"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"

  # No daemons started by maintainer scripts inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"

  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

  # Keep the image small: no docs, man pages or translations, and no kernel modules for
  # hardware a VM does not have (sound, media, wireless, physical NICs and SCSI HBAs, GPUs
  # other than virtual ones, ...). Kept NIC drivers: virtio-net, e1000, e1000e, rtl8139.
  cat >"$root/etc/dpkg/dpkg.cfg.d/90-gitvirt-minimal" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
path-exclude=/lib/modules/*/kernel/sound/*
path-exclude=/lib/modules/*/kernel/drivers/media/*
path-exclude=/lib/modules/*/kernel/drivers/net/wireless/*
path-exclude=/lib/modules/*/kernel/drivers/net/can/*
path-exclude=/lib/modules/*/kernel/drivers/net/usb/*
path-exclude=/lib/modules/*/kernel/drivers/net/ethernet/*
path-include=/lib/modules/*/kernel/drivers/net/ethernet/intel/e1000/*
path-include=/lib/modules/*/kernel/drivers/net/ethernet/intel/e1000e/*
path-include=/lib/modules/*/kernel/drivers/net/ethernet/realtek/8139*
path-exclude=/lib/modules/*/kernel/drivers/scsi/*/*
path-exclude=/lib/modules/*/kernel/drivers/hwmon/*
path-exclude=/lib/modules/*/kernel/drivers/mtd/*
path-exclude=/lib/modules/*/kernel/drivers/mmc/*
path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/amd/*
path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/i915/*
path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/nouveau/*
path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/radeon/*
path-exclude=/lib/modules/*/kernel/drivers/infiniband/*
path-exclude=/lib/modules/*/kernel/drivers/iio/*
path-exclude=/lib/modules/*/kernel/drivers/staging/*
path-exclude=/lib/modules/*/kernel/drivers/isdn/*
path-exclude=/lib/modules/*/kernel/drivers/comedi/*
path-exclude=/lib/modules/*/kernel/drivers/bluetooth/*
path-exclude=/lib/modules/*/kernel/net/bluetooth/*
path-exclude=/lib/modules/*/kernel/net/mac80211/*
path-exclude=/lib/modules/*/kernel/net/wireless/*
EOF
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/usr/share/lintian/*
  find "$root/usr/share/doc" -type f ! -name copyright -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete

  # Small initrd with exactly the drivers a VM needs (written before the kernel is installed).
  mkdir -p "$root/etc/initramfs-tools/conf.d"
  printf 'MODULES=list\n' >"$root/etc/initramfs-tools/conf.d/90-gitvirt.conf"
  printf '%s\n' "${INITRD_MODULES[@]}" >"$root/etc/initramfs-tools/modules"

  local -a apt=(chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
    apt-get -y -q -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false)
  "${apt[@]}" update
  "${apt[@]}" dist-upgrade
  "${apt[@]}" install "${PACKAGES[@]}"

  # --- system configuration ------------------------------------------------------------------
  echo gitvirt-guest >"$root/etc/hostname"
  cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
  printf 'LABEL=%s\t/\text4\trw,errors=remount-ro\t0\t1\n' "$FS_LABEL" >"$root/etc/fstab"
  printf 'LANG=C.UTF-8\n' >"$root/etc/default/locale"

  mkdir -p "$root/etc/cloud/cloud.cfg.d"
  cat >"$root/etc/cloud/cloud.cfg.d/90-gitvirt.cfg" <<'EOF'
# gitvirt test guest: NoCloud seed (ISO labelled cidata), None as the fallback.
datasource_list: [ NoCloud, None ]
system_info:
  network:
    renderers: [ netplan ]
# C.UTF-8 is built into glibc: nothing to generate at first boot.
locale: C.UTF-8
manage_etc_hosts: localhost
# The root filesystem is a bare ext4 on /dev/vda (no partition): resize_rootfs grows it.
growpart:
  mode: "off"
EOF

  # systemd-networkd does the work behind netplan; do not let a link without carrier hold
  # cloud-init.service (After=systemd-networkd-wait-online) for the default 2 minutes.
  mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
  cat >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/90-gitvirt.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=20
EOF
  # Host keys are removed from the image; cloud-init creates them per instance, this covers
  # a boot without a seed.
  mkdir -p "$root/etc/systemd/system/ssh.service.d"
  cat >"$root/etc/systemd/system/ssh.service.d/90-gitvirt.conf" <<'EOF'
[Service]
ExecStartPre=-/usr/bin/ssh-keygen -A
EOF
  chroot "$root" systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null
  # No network updates from inside test guests.
  chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer >/dev/null
  # qemu-guest-agent needs no enabling: its udev rule starts it as soon as the virtio-serial
  # port org.qemu.guest_agent.0 appears (libvirt <channel type='unix'> + <target type='virtio'
  # name='org.qemu.guest_agent.0'/>).
  [[ -f $root/lib/udev/rules.d/60-qemu-guest-agent.rules ]] || { echo "qemu-guest-agent udev rule missing" >&2; exit 1; }

  # --- versions for info.txt, initrd contents for a sanity check ------------------------------
  # shellcheck disable=SC2016 # dpkg-query format, not shell
  chroot "$root" dpkg-query -W -f '${Package}=${Version}\n' >"$root/../packages.txt"
  chroot "$root" sh -c 'lsinitramfs /boot/initrd.img-*' >"$root/../initrd.list"

  # --- clean up ----------------------------------------------------------------------------------
  rm -f "$root/usr/sbin/policy-rc.d"
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
  rm -f "$root"/etc/ssh/ssh_host_*
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id" "$root/var/lib/systemd/random-seed"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/cloud "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.bash_history
  find "$root/var/log" -type f -delete
}

# ---------------------------------------------------------------------------------------------
# Build: temp dir next to the final one, renamed into place at the end.
# ---------------------------------------------------------------------------------------------
BUILD_TMP=
cleanup_build() {
  if [[ -n $BUILD_TMP && -d $BUILD_TMP ]]; then
    rm -rf --one-file-system "$BUILD_TMP"
  fi
}

build_image() {
  local t0 t1 root
  t0=$(date +%s)
  BUILD_TMP=$(mktemp -d "$GUEST_DIR/.build-XXXXXX")
  chmod 0755 "$BUILD_TMP"   # libvirt's qemu runs as libvirt-qemu and must reach the files
  trap cleanup_build EXIT
  root=$BUILD_TMP/rootfs
  mkdir -p "$root" "$DEB_CACHE"
  log "building $OUT (mirror $MIRROR, security $SECURITY_MIRROR)"
  log "log: $BUILD_TMP/build.log"

  step "debootstrap --variant=minbase $SUITE"
  if ! unshare --mount --propagation private -- \
      debootstrap --variant=minbase --arch="$ARCH" --cache-dir="$DEB_CACHE" \
      --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
      "$SUITE" "$root" "$MIRROR" >>"$BUILD_TMP/build.log" 2>&1; then
    tail -n 30 "$BUILD_TMP/build.log" >&2
    die "debootstrap failed"
  fi

  step "installing packages and configuring the guest"
  if ! unshare --mount --propagation private -- "$SELF" --_configure "$root" \
      >>"$BUILD_TMP/build.log" 2>&1; then
    tail -n 30 "$BUILD_TMP/build.log" >&2
    die "configuring the root filesystem failed"
  fi
  rm -f "$root"/var/cache/apt/archives/*.deb

  local kver
  kver=$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tail -n1)
  cp "$root/boot/vmlinuz-$kver" "$BUILD_TMP/vmlinuz"
  cp "$root/boot/initrd.img-$kver" "$BUILD_TMP/initrd.img"
  local m
  for m in virtio_blk virtio_pci ahci sr_mod ext4; do
    grep -q "/$m\.ko" "$BUILD_TMP/initrd.list" || die "initrd lacks $m.ko"
  done
  rm -f "$BUILD_TMP/initrd.list"

  step "making the ext4 filesystem ($IMAGE_SIZE)"
  local used
  used=$(du -sx --block-size=1M "$root" | cut -f1)
  truncate -s "$IMAGE_SIZE" "$BUILD_TMP/root.raw"
  mkfs.ext4 -q -F -L "$FS_LABEL" -m 1 -d "$root" "$BUILD_TMP/root.raw" >>"$BUILD_TMP/build.log" 2>&1 \
    || die "mkfs.ext4 -d failed"
  rm -rf --one-file-system "$root"
  step "converting to qcow2"
  # Compressed clusters (zstd: fast to write and to read): a third of the size; guests only
  # read them, their writes go to an overlay.
  qemu-img convert -c -m 8 -W -f raw -O qcow2 -o compat=1.1,compression_type=zstd \
    "$BUILD_TMP/root.raw" "$BUILD_TMP/disk.qcow2"
  rm -f "$BUILD_TMP/root.raw"
  chmod 0444 "$BUILD_TMP/disk.qcow2"   # tests must use an overlay (qemu-img create -b)
  printf '%s\n' "$CMDLINE" >"$BUILD_TMP/cmdline"

  t1=$(date +%s)
  {
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "build_seconds=$((t1 - t0))"
    echo "script_sha256_16=$SCRIPT_HASH"
    echo "mirror=$MIRROR"
    echo "security_mirror=$SECURITY_MIRROR"
    echo "kernel=$kver"
    echo "rootfs_used_mib=$used"
    echo "qcow2_bytes=$(stat -c %s "$BUILD_TMP/disk.qcow2")"
    echo "cmdline=$CMDLINE"
  } >"$BUILD_TMP/info.txt"

  # Atomic publication: rename the finished directory into place.
  local old=
  if [[ -e $OUT ]]; then
    old=$GUEST_DIR/.old-$SCRIPT_HASH-$$
    mv -T "$OUT" "$old"
  fi
  mv -T "$BUILD_TMP" "$OUT"
  BUILD_TMP=
  if [[ -n $old ]]; then rm -rf --one-file-system "$old"; fi
  log "built in $((t1 - t0)) s; image $(du -h --apparent-size "$OUT/disk.qcow2" | cut -f1)"
}

ensure_image() {
  local force=$1
  # Readable by libvirt-qemu. Only our own guest/ directory is chmod'ed: GITVIRT_CACHE_DIR may be
  # a shared directory such as /tmp.
  mkdir -p "$GUEST_DIR"
  chmod 0755 "$GUEST_DIR"
  exec 9>"$GUEST_DIR/.lock"
  flock 9       # one build at a time; a second caller waits and then finds the image
  # Under the lock no build is running, so any .build-* left is from a killed build.
  local d
  for d in "$GUEST_DIR"/.build-* "$GUEST_DIR"/.old-*; do
    if [[ -d $d ]]; then rm -rf --one-file-system "$d"; fi
  done
  if [[ $force == 1 || ! -f $OUT/disk.qcow2 ]]; then
    build_image
    # Drop images built by other versions of this script that were not used for 14 days.
    find "$GUEST_DIR" -mindepth 1 -maxdepth 1 -type d -name 'debian12-*' ! -path "$OUT" \
      -mtime +14 -exec rm -rf --one-file-system {} + 2>/dev/null || true
  fi
  touch "$OUT"   # "last used", for the clean-up above
  exec 9>&-
}

# ---------------------------------------------------------------------------------------------
# --check: boot once with plain qemu-system-x86_64 and a NoCloud seed.
# ---------------------------------------------------------------------------------------------
QEMU_PID=
CHECK_DIR=
cleanup_check() {
  if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    local _
    for _ in $(seq 50); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$QEMU_PID" 2>/dev/null || true
  fi
  if [[ -n $QEMU_PID ]]; then wait "$QEMU_PID" 2>/dev/null || true; fi
  QEMU_PID=
  if [[ -n $CHECK_DIR && -d $CHECK_DIR ]]; then
    [[ -f $CHECK_DIR/console.log ]] && cp "$CHECK_DIR/console.log" "$GUEST_DIR/last-check-console.log"
    rm -rf "$CHECK_DIR"
  fi
}

# Does KVM run this image's kernel? An open /dev/kvm is not enough: on a host whose /dev/kvm is
# provided by kvm_pvm (PVM nested virtualisation, as on the gitvirt build machines) QEMU starts
# with -accel kvm but a stock Debian kernel hangs before printing anything. So boot the kernel
# (no disk, no initrd) and wait for its first console line; it then panics and QEMU exits.
kvm_works() {
  [[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]] || return 1
  local plog rc=1 pid
  plog=$(mktemp /tmp/gitvirt-kvm-probe.XXXXXX)
  qemu-system-x86_64 -machine q35 -accel kvm -cpu host -m 256 -nodefaults -display none \
    -no-reboot -serial "file:$plog" -kernel "$OUT/vmlinuz" \
    -append "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1" </dev/null >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do    # 10 s
    if grep -q 'Linux version' "$plog"; then rc=0; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if grep -q 'Linux version' "$plog"; then rc=0; fi
  rm -f "$plog"
  return "$rc"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Send one QGA command (JSON) and print the one-line reply; fds QGA_IN/QGA_OUT are open.
qga() {
  local line
  printf '%s\n' "$1" >&"$QGA_IN"
  IFS= read -r -t 15 line <&"$QGA_OUT" || return 1
  printf '%s\n' "$line"
}

run_check() {
  local image=$OUT/disk.qcow2 kernel=$OUT/vmlinuz initrd=$OUT/initrd.img
  local accel=${GITVIRT_GUEST_ACCEL:-} cpu timeout
  if [[ -z $accel ]]; then
    if kvm_works; then accel=kvm; else accel=tcg; log "check: KVM cannot run this kernel here, using TCG"; fi
  fi
  case $accel in
    kvm) cpu=host; timeout=${GITVIRT_GUEST_TIMEOUT:-180} ;;
    tcg) cpu=max; timeout=${GITVIRT_GUEST_TIMEOUT:-900} ;;
    *) die "GITVIRT_GUEST_ACCEL must be kvm or tcg" ;;
  esac

  CHECK_DIR=$(mktemp -d /tmp/gitvirt-guest-check.XXXXXX)
  trap cleanup_check EXIT
  local w=$CHECK_DIR
  # NIC 1: static address matched by MAC, kernel name kept; NIC 2: matched by MAC and renamed.
  local hn=gv-check-$SCRIPT_HASH mac=52:54:00:67:76:01 ip=10.0.2.50
  local mac2=52:54:00:67:76:02 ip2=10.0.3.50 name2=gvlan1
  hn=${hn:0:20}

  # Overlay 1 GiB larger than the base: checks that resize_rootfs grows the bare filesystem.
  local base_bytes
  base_bytes=$(qemu-img info --output=json "$image" | awk -F'[:,]' '/"virtual-size"/ { gsub(/ /, "", $2); print $2; exit }')
  qemu-img create -q -f qcow2 -o compat=1.1 -b "$image" -F qcow2 "$w/disk.qcow2" \
    "$((base_bytes + 1024 * 1024 * 1024))"

  local pubkey have_ssh=0
  if command -v ssh-keygen >/dev/null && command -v ssh >/dev/null; then
    ssh-keygen -q -t ed25519 -N '' -C gitvirt-check -f "$w/id_ed25519"
    pubkey=$(cat "$w/id_ed25519.pub")
    have_ssh=1
  else
    pubkey="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl0dmlydC1jaGVjay1kdW1teS1rZXktbm90LXVzZWQ gitvirt-check"
  fi

  mkdir -p "$w/seed"
  cat >"$w/seed/meta-data" <<EOF
instance-id: gitvirt-check-$(date +%s)
local-hostname: $hn
EOF
  cat >"$w/seed/user-data" <<EOF
#cloud-config
hostname: $hn
users:
  - name: gitvirt
    groups: [sudo]
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    shell: /bin/bash
    lock_passwd: true
    ssh_authorized_keys:
      - $pubkey
runcmd:
  - - sh
    - -c
    - |
      exec >/dev/ttyS0 2>&1
      echo "GITVIRT-HOSTNAME=\$(hostname)"
      echo "GITVIRT-QGA=\$(systemctl is-active qemu-guest-agent.service)"
      echo "GITVIRT-UPTIME=\$(cut -d' ' -f1 /proc/uptime)"
      echo "GITVIRT-RENDERER=\$(grep -o "Selected renderer '[a-z]*'" /var/log/cloud-init.log | tail -n1)"
      echo "GITVIRT-ROOT-MIB=\$(df -BM --output=size / | tail -n1 | tr -dc 0-9)"
      ip -4 -o addr show scope global | sed 's/^/GITVIRT-IP: /'
      ip -4 route show default | sed 's/^/GITVIRT-ROUTE: /'
      for f in /run/systemd/network/*.network /run/systemd/network/*.link; do
        [ -f "\$f" ] && sed "s|^|GITVIRT-NETWORKD: \$f: |" "\$f"
      done
      echo GITVIRT-GUEST-READY
EOF
  cat >"$w/seed/network-config" <<EOF
version: 2
ethernets:
  lan0:
    match:
      macaddress: "$mac"
    addresses: [$ip/24]
    routes:
      - to: default
        via: 10.0.2.2
    nameservers:
      addresses: [10.0.2.3]
  lan1:
    match:
      macaddress: "$mac2"
    set-name: $name2
    addresses: [$ip2/24]
EOF
  xorrisofs -quiet -output "$w/seed.iso" -volid cidata -joliet -rock \
    "$w/seed/user-data" "$w/seed/meta-data" "$w/seed/network-config" 2>/dev/null

  # Loopback port for ssh into the guest's static address.
  local port
  for port in $(shuf -i 20000-60000 -n 20); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done

  mkfifo "$w/qga.in" "$w/qga.out" "$w/mon.in" "$w/mon.out"
  : >"$w/console.log"
  log "check: booting with $accel (timeout ${timeout}s), console log $w/console.log"
  local t0 t_ready t_off
  t0=$(now)
  qemu-system-x86_64 -name gitvirt-guest-check \
    -machine q35 -accel "$accel" -cpu "$cpu" -smp 2 -m 1024 \
    -nodefaults -nographic -no-reboot \
    -serial "file:$w/console.log" \
    -chardev "pipe,id=mon0,path=$w/mon" -mon chardev=mon0,mode=readline \
    -kernel "$kernel" -initrd "$initrd" -append "$CMDLINE panic=-1" \
    -drive "file=$w/disk.qcow2,format=qcow2,if=virtio" \
    -drive "file=$w/seed.iso,format=raw,if=none,id=seed,media=cdrom,readonly=on" \
    -device ide-cd,drive=seed,bus=ide.0 \
    -netdev "user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:$port-$ip:22" \
    -device "virtio-net-pci,netdev=n0,mac=$mac" \
    -netdev "user,id=n1,net=10.0.3.0/24" \
    -device "virtio-net-pci,netdev=n1,mac=$mac2" \
    -device virtio-serial-pci \
    -chardev "pipe,id=qga0,path=$w/qga" \
    -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
    -device virtio-rng-pci \
    </dev/null >"$w/qemu.out" 2>&1 &
  QEMU_PID=$!

  local deadline ready=0
  deadline=$(($(date +%s) + timeout))
  while (($(date +%s) < deadline)); do
    if tr -d '\r' <"$w/console.log" | grep -qx 'GITVIRT-GUEST-READY'; then ready=1; break; fi
    kill -0 "$QEMU_PID" 2>/dev/null || break
    sleep 0.2
  done
  t_ready=$(now)
  local con   # console text without CRs and colour codes
  con=$(tr -d '\r' <"$w/console.log" | sed -E 's/\x1b\[[0-9;?]*[A-Za-z]//g')
  if ((ready == 0)); then
    printf '%s\n' "$con" | tail -n 60 >&2
    cat "$w/qemu.out" >&2
    die "check: no GITVIRT-GUEST-READY within ${timeout}s (console saved to $GUEST_DIR/last-check-console.log)"
  fi
  local boot_s
  boot_s=$(elapsed "$t0" "$t_ready")
  log "check: marker after ${boot_s}s"

  local fail=0 v
  v=$(sed -n 's/^GITVIRT-HOSTNAME=//p' <<<"$con" | tail -n1)
  if [[ $v == "$hn" ]]; then log "ok   hostname set by cloud-init: $v"
  else log "FAIL hostname is '$v', expected '$hn'"; fail=1; fi

  v=$(sed -n 's/^GITVIRT-QGA=//p' <<<"$con" | tail -n1)
  if [[ $v == active ]] && grep -q 'Started qemu-guest-agent.service' <<<"$con"; then
    log "ok   qemu-guest-agent.service active (systemd status line on the console)"
  else log "FAIL qemu-guest-agent is '$v'"; fail=1; fi

  local renderer
  renderer=$(sed -n "s/^GITVIRT-RENDERER=Selected renderer '\(.*\)'/\1/p" <<<"$con" | tail -n1)
  if [[ $renderer == netplan ]]; then log "ok   cloud-init network renderer: $renderer"
  else log "FAIL cloud-init network renderer: '$renderer'"; fail=1; fi

  if grep -q "^GITVIRT-IP: .* inet $ip/24 " <<<"$con"; then
    log "ok   static address from network-config v2 (match macaddress): $(grep "^GITVIRT-IP: .* inet $ip/24 " <<<"$con" | awk '{ print $3, $5 }')"
  else log "FAIL $ip/24 not configured:"; grep '^GITVIRT-IP:' <<<"$con" >&2 || true; fail=1; fi
  if grep -q "^GITVIRT-IP: [0-9]*: $name2 .* inet $ip2/24 " <<<"$con"; then
    log "ok   static address on the NIC matched by MAC and renamed (set-name): $name2 $ip2/24"
  else log "FAIL $name2 $ip2/24 not configured"; fail=1; fi

  v=$(sed -n 's/^GITVIRT-ROOT-MIB=//p' <<<"$con" | tail -n1)
  if [[ -n $v ]] && ((v > base_bytes / 1048576 + 512)); then
    log "ok   root filesystem grown to the 1 GiB larger overlay: ${v} MiB"
  else log "FAIL root filesystem not grown (${v:-?} MiB)"; fail=1; fi

  # Host side: the guest agent answers over its virtio-serial channel.
  exec {QGA_IN}>"$w/qga.in" {QGA_OUT}<"$w/qga.out"
  local r
  r=$(qga '{"execute":"guest-sync","arguments":{"id":4711}}') || r=
  if [[ $r == *4711* ]]; then
    r=$(qga '{"execute":"guest-get-host-name"}') || r=
    if [[ $r == *"\"$hn\""* ]]; then log "ok   guest agent answers from the host: $r"
    else log "FAIL guest-get-host-name: '$r'"; fail=1; fi
    r=$(qga '{"execute":"guest-network-get-interfaces"}') || r=
    if [[ $r == *"\"$ip\""* ]]; then log "ok   guest-network-get-interfaces reports $ip"
    else log "FAIL guest-network-get-interfaces: '$r'"; fail=1; fi
  else
    log "FAIL guest agent does not answer guest-sync: '$r'"; fail=1
  fi

  # ssh through the slirp port forward to the static address, with the key from user-data.
  if ((have_ssh)); then
    # shellcheck disable=SC2016 # expanded by the guest's shell
    r=$(timeout 60 ssh -q -i "$w/id_ed25519" -p "$port" -o BatchMode=yes -o ConnectTimeout=20 \
          -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
          gitvirt@127.0.0.1 'echo "$(hostname) $(sudo -n id -un)"' 2>&1) || true
    if [[ $r == "$hn root" ]]; then log "ok   ssh gitvirt@$ip with the user-data key, sudo works"
    else log "FAIL ssh: '$r'"; fail=1; fi
  fi

  # Graceful ACPI power-off (what virDomainShutdown does): logind handles the power button.
  printf 'system_powerdown\n' >"$w/mon.in"
  local t_pd off=0
  t_pd=$(now)
  for _ in $(seq 600); do
    kill -0 "$QEMU_PID" 2>/dev/null || { off=1; break; }
    sleep 0.1
  done
  t_off=$(now)
  local off_s
  off_s=$(elapsed "$t_pd" "$t_off")
  if ((off)); then log "ok   ACPI power button: guest powered off in ${off_s}s"
  else log "FAIL guest did not power off within 60s of system_powerdown"; fail=1; fi
  exec {QGA_IN}>&- {QGA_OUT}<&-

  local uptime
  uptime=$(sed -n 's/^GITVIRT-UPTIME=//p' <<<"$con" | tail -n1)
  log "check: accel=$accel boot-to-marker=${boot_s}s (guest uptime at marker ${uptime}s)"
  echo "CHECK_ACCEL=$accel"
  echo "CHECK_BOOT_SECONDS=$boot_s"
  echo "CHECK_POWEROFF_SECONDS=$off_s"
  echo "CHECK_NETWORK_RENDERER=$renderer"
  cleanup_check
  ((fail == 0)) || die "check failed (console saved to $GUEST_DIR/last-check-console.log)"
  echo "CHECK_RESULT=ok"
}

print_paths() {
  printf "CMDLINE='%s'\n" "$(cat "$OUT/cmdline")"
  printf 'IMAGE=%q\n' "$OUT/disk.qcow2"
  printf 'KERNEL=%q\n' "$OUT/vmlinuz"
  printf 'INITRD=%q\n' "$OUT/initrd.img"
}

main() {
  # Run the EXIT trap (remove the temp build dir, kill qemu) on Ctrl-C and kill too.
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [[ ${1:-} == --_configure ]]; then
    configure_rootfs "$2"
    return
  fi
  local check=0 force=0 a
  for a in "$@"; do
    case $a in
      --check) check=1 ;;
      --force) force=1 ;;
      -h|--help) usage; return 0 ;;
      *) usage; die "unknown argument: $a" ;;
    esac
  done
  (($(id -u) == 0)) || die "must run as root"
  local t
  for t in debootstrap qemu-img mkfs.ext4 unshare flock; do
    command -v "$t" >/dev/null || die "missing tool: $t"
  done
  if ((check)); then
    for t in qemu-system-x86_64 xorrisofs mkfifo; do
      command -v "$t" >/dev/null || die "missing tool: $t"
    done
  fi

  ensure_image "$force"
  if ((check)); then run_check; fi
  print_paths
}

main "$@"
