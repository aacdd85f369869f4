#!/usr/bin/env bash
# Installs every Debian package gitvirt needs to build, test and run, and the
# system users libvirt expects. Safe to run any number of times: it installs only
# what is missing and never changes what is already configured.
#
#   deploy/setup.sh            build + test dependencies (what the README commands use),
#                              including the browser tests' node packages (tests/browser)
#   deploy/setup.sh --bench    also the benchmark peers (ansible, wrk, nginx, hyperfine)
set -euo pipefail

want_bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) want_bench=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg'" >&2; exit 1 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

packages=(
  # toolchain; dpkg-dev for the Debian package (cpack's dpkg-shlibdeps, tests/package)
  g++ cmake ninja-build pkg-config git ca-certificates dpkg-dev
  # libraries
  libyaml-cpp-dev libboost1.81-dev libvirt-dev libgit2-dev libsqlite3-dev sqlite3
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libpugixml-dev libcli11-dev
  nlohmann-json3-dev libssl-dev libzstd-dev zlib1g-dev libcrypt-dev
  libhowardhinnant-date-dev
  # bench/placement_bench (built only when found)
  libbenchmark-dev
  # real hypervisor for integration tests: libvirtd + QEMU + qemu-img
  libvirt-daemon libvirt-daemon-driver-qemu
  libvirt-clients qemu-system-x86 qemu-utils ovmf swtpm-tools
  # the test guest image (tests/guest/build-image.sh), and DHCP/DNS (dnsmasq, run by libvirt)
  # for the libvirt network the guest tests define
  debootstrap dnsmasq-base
  # cloud-init NoCloud seeds
  xorriso
  # schema tests (Debian's python, not a pyenv one)
  python3 python3-jsonschema python3-yaml
  # dashboard test in headless Chromium
  chromium
  # process tools used by the test harness
  util-linux procps iproute2 curl
  # command-line tools tests check gitvirt's output with: zstd (backups decompressed by zstd's
  # own tool), openssl (the https source test's CA and certificate)
  zstd openssl
  # sshd for the ssh:// git source test (tests/e2e/ssh_source_test.py), which runs its own on
  # 127.0.0.1 and a free port; the package's system service (where systemd starts it) is unused
  openssh-server
)
if [ "$want_bench" -eq 1 ]; then
  packages+=(ansible python3-libvirt python3-lxml wrk nginx-light hyperfine)
fi

# Node.js drives the dashboard test (playwright-core). Machines of this kind ship
# nodesource's nodejs, which conflicts with Debian's npm: take Debian's only when
# there is no node at all.
if ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${#missing[@]} package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup.sh: all ${#packages[@]} packages present"
fi

# libvirt's QEMU driver looks this user up at start-up even when qemu.conf runs
# guests as root; Debian creates it only in libvirt-daemon-system, which we do
# not install (it would start a system-wide daemon).
if ! getent group libvirt-qemu >/dev/null; then groupadd --system libvirt-qemu; fi
if ! getent passwd libvirt-qemu >/dev/null; then
  useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt --no-create-home \
          --shell /usr/sbin/nologin libvirt-qemu
fi
if ! getent group kvm >/dev/null; then groupadd --system kvm; fi

# The dashboard test's node packages (playwright-core, no browser download: it drives Debian's
# chromium), so the test suite itself needs no network. tests/browser/run.sh does the same on
# first use when this was skipped.
browser_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/browser" && pwd)"
if [ ! -d "$browser_dir/node_modules/playwright-core" ]; then
  echo "setup.sh: installing the browser test's node packages (npm ci in tests/browser)"
  (cd "$browser_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
