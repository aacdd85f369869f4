#!/usr/bin/env bash
# Private libvirtd instances for gitvirt's integration tests.
#
#   libvirtd.sh start   DIR [--uuid UUID] [--tcp ADDR:PORT]
#                                           start a daemon whose whole state lives in DIR;
#                                           --tcp: also listen on loopback TCP, no auth
#   libvirtd.sh stop    DIR                 destroy its guests, stop it (safe to repeat)
#   libvirtd.sh restart DIR                 restart the daemon only: same host_uuid, same
#                                           definitions; running guests keep running and
#                                           the new daemon reconnects to them
#   libvirtd.sh status  DIR                 print DIR/env and exit 0 if the daemon answers
#
# Each daemon runs in its own mount namespace (unshare -m) in which DIR's sub-directories
# are bind-mounted over /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt
# and /var/log/libvirt, so nothing global is written and several daemons can run side by
# side. See tests/harness/README.md for details and measured timings.
#
# Environment:
#   LIBVIRTD_START_TIMEOUT   seconds to wait for the socket to answer (default 120)
#   LIBVIRTD_STOP_TIMEOUT    seconds between SIGTERM and SIGKILL (default 20)
#   GITVIRT_VIRT_TYPE        force VIRT_TYPE (kvm|qemu) instead of probing
#   GITVIRT_CACHE_DIR        shared cache root (default /var/cache/gitvirt); QEMU
#                            capabilities are kept in $GITVIRT_CACHE_DIR/qemu-caps
#   GITVIRT_QEMU_CAPS_CACHE  0 to give each daemon an empty capabilities cache
#   GITVIRT_LIBVIRTD_CPU     CPU list libvirtd is pinned to, so its QEMU capabilities
#                            cache stays valid (default 0; "none" = no pinning)
#   LIBVIRTD_LOG_LEVEL       libvirtd log level written to DIR/libvirtd.log (default 3)
#   LIBVIRTD_LOG_FILTERS     libvirtd log_filters, e.g. "1:qemu.qemu_capabilities"
set -euo pipefail

prog=${0##*/}
# libvirtd lives in /usr/sbin, which a test runner's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

die() {
  echo "$prog: $*" >&2
  exit 1
}

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------------------
# Process helpers. The daemon is not our child once start returns, and PID 1 on some
# machines never reaps orphans, so a zombie counts as dead.
alive() {
  local pid=$1 state
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" != "Z" ] && [ "$state" != "X" ]
}

cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# Is PID the libvirtd that was started for $dir (and not a recycled PID)?
is_our_daemon() {
  local pid=$1
  alive "$pid" || return 1
  [[ "$(cmdline_of "$pid")" == *"libvirtd --config $dir/libvirtd.conf"* ]]
}

# wait_gone SECONDS PID... : 0 once all are gone, 1 on timeout
wait_gone() {
  local secs=$1 deadline pid any
  shift
  deadline=$(($(now_ms) + secs * 1000))
  while :; do
    any=0
    for pid in "$@"; do
      if alive "$pid"; then any=1; fi
    done
    [ "$any" -eq 0 ] && return 0
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

# terminate SECONDS PID... : SIGTERM, wait, then SIGKILL whatever is left
terminate() {
  local secs=$1 pid
  shift
  [ "$#" -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  if ! wait_gone "$secs" "$@"; then
    for pid in "$@"; do
      if alive "$pid"; then
        echo "$prog: pid $pid did not exit after SIGTERM, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
    wait_gone 10 "$@" || echo "$prog: warning: pid(s) $* still alive after SIGKILL" >&2
  fi
}

# ---------------------------------------------------------------------------------------
# Paths and configuration.
set_dir() {
  [ -n "${1:-}" ] || usage
  local d=$1
  case "$d" in /*) ;; *) d="$PWD/$d" ;; esac
  # Only characters that need no quoting anywhere (env file, URIs, mount options).
  [[ "$d" =~ ^[A-Za-z0-9._/+-]+$ ]] ||
    die "DIR '$d' may only contain letters, digits and . _ / + -"
  dir=${d%/}
  # sun_path holds 107 characters; the longest socket is libvirt-admin-sock.
  [ "${#dir}" -le 80 ] || die "DIR '$dir' is too long for a unix socket path (max 80 chars)"
  sock="$dir/sock/libvirt-sock"
  qemu_uri="qemu+unix:///system?socket=$sock"
  test_uri="test+unix:///default?socket=$sock"
}

read_pid() {
  local p=""
  [ -r "$dir/libvirtd.pid" ] && p=$(tr -dc '0-9' <"$dir/libvirtd.pid")
  echo "$p"
}

virsh_q() { timeout "${VIRSH_TIMEOUT:-30}" virsh -q -c "$qemu_uri" "$@"; }

check_prerequisites() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (mount namespaces, bind mounts, libvirtd)"
  local tool
  for tool in libvirtd unshare virsh mount timeout setsid; do
    command -v "$tool" >/dev/null 2>&1 ||
      die "'$tool' not found; run deploy/setup.sh to install the test dependencies"
  done
  getent passwd libvirt-qemu >/dev/null ||
    die "user 'libvirt-qemu' is missing (libvirt's QEMU driver looks it up at start-up); run deploy/setup.sh to create it"
  getent group libvirt-qemu >/dev/null ||
    die "group 'libvirt-qemu' is missing; run deploy/setup.sh to create it"
}

write_configs() {
  local uuid=$1 tcp=$2
  local tcp_conf="listen_tcp = 0"
  if [ -n "$tcp" ]; then
    # A "remote" node for tests: the remote driver over plain TCP. Loopback only, no auth.
    tcp_conf="listen_tcp = 1
listen_addr = \"${tcp%:*}\"
tcp_port = \"${tcp##*:}\"
auth_tcp = \"none\""
  fi
  # With filters, the output must pass debug messages (the filters do the selecting).
  local out_level=${LIBVIRTD_LOG_LEVEL:-3}
  [ -z "${LIBVIRTD_LOG_FILTERS:-}" ] || out_level=1
  cat >"$dir/libvirtd.conf.tmp" <<EOF
# Written by tests/harness/libvirtd.sh; regenerated on every start.
unix_sock_dir = "$dir/sock"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
listen_tls = 0
$tcp_conf
host_uuid = "$uuid"
log_level = ${LIBVIRTD_LOG_LEVEL:-3}
log_outputs = "$out_level:file:$dir/libvirtd.log"
${LIBVIRTD_LOG_FILTERS:+log_filters = \"$LIBVIRTD_LOG_FILTERS\"}
EOF
  mv -f "$dir/libvirtd.conf.tmp" "$dir/libvirtd.conf"

  # qemu.conf is written once, so a test may edit it and call restart.
  [ -e "$dir/etc/qemu.conf" ] && return 0
  cat >"$dir/etc/qemu.conf.tmp" <<'EOF'
# Written by tests/harness/libvirtd.sh for a private test daemon (kept across restarts).
# Guests run as root with no security driver: the images live in the test's own dir.
user = "root"
group = "root"
security_driver = "none"
dynamic_ownership = 0
remember_owner = 0
# No virtlogd here: QEMU writes its stdout/stderr to /var/log/libvirt/qemu/NAME.log.
stdio_handler = "file"
# No cgroup placement (the host's cgroup v1 tree is shared by every daemon).
cgroup_controllers = [ ]
# Keep QEMU in the daemon's mount namespace (no private /dev per guest), so guests see
# the same bind mounts and stop can find them.
namespaces = [ ]
# No graphics in tests; never listen on anything but loopback.
vnc_listen = "127.0.0.1"
spice_listen = "127.0.0.1"
EOF
  mv -f "$dir/etc/qemu.conf.tmp" "$dir/etc/qemu.conf"
}

# ---------------------------------------------------------------------------------------
cmd_start() {
  local uuid="" tcp="" tcp_uri=""
  set_dir "${1:-}"
  shift
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --uuid) [ "$#" -ge 2 ] || die "--uuid needs a value"; uuid=$2; shift 2 ;;
      --uuid=*) uuid=${1#--uuid=}; shift ;;
      --tcp) [ "$#" -ge 2 ] || die "--tcp needs ADDR:PORT"; tcp=$2; shift 2 ;;
      --tcp=*) tcp=${1#--tcp=}; shift ;;
      *) die "start: unknown argument '$1'" ;;
    esac
  done
  check_prerequisites

  local pid
  pid=$(read_pid)
  if is_our_daemon "$pid"; then
    die "a daemon for $dir is already running (pid $pid); stop it first"
  fi

  # host_uuid: the given one, else the one this DIR already has (restart), else new.
  if [ -z "$uuid" ] && [ -r "$dir/libvirtd.conf" ]; then
    uuid=$(sed -n 's/^host_uuid = "\(.*\)"$/\1/p' "$dir/libvirtd.conf")
  fi
  [ -n "$uuid" ] || uuid=$(cat /proc/sys/kernel/random/uuid)
  # TCP: the given address, else the one this DIR already listens on (restart).
  if [ -z "$tcp" ] && [ -r "$dir/libvirtd.conf" ] && grep -qx 'listen_tcp = 1' "$dir/libvirtd.conf"; then
    tcp="$(sed -n 's/^listen_addr = "\(.*\)"$/\1/p' "$dir/libvirtd.conf"):$(sed -n 's/^tcp_port = "\(.*\)"$/\1/p' "$dir/libvirtd.conf")"
  fi
  if [ -n "$tcp" ]; then
    [[ "$tcp" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$ ]] ||
      die "--tcp '$tcp': expected a loopback address 127.x.y.z:PORT (the daemon has no auth)"
    tcp_uri="qemu+tcp://$tcp/system"
  fi
  uuid=${uuid,,}
  [[ "$uuid" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] ||
    die "invalid UUID '$uuid' (expected 8-4-4-4-12 hex digits)"
  [[ "${uuid//-/}" =~ ^(.)\1*$ ]] &&
    die "invalid UUID '$uuid': libvirt rejects UUIDs made of one repeated digit"
  mkdir -p "$dir"/{etc,sock,run,lib,cache,log,pool}
  chmod 0755 "$dir"
  write_configs "$uuid" "$tcp"

  # Mount points. On a machine without libvirt-daemon-system these standard libvirt
  # directories may not exist; empty directories are created once (nothing is written
  # into them: inside the namespace they are covered by the binds below).
  local mp
  for mp in /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
    [ -d "$mp" ] || mkdir -p "$mp" || die "cannot create mount point $mp"
  done

  # Shared QEMU capabilities cache (survives test runs; probing QEMU is slow).
  local caps_dir=""
  if [ "${GITVIRT_QEMU_CAPS_CACHE:-1}" != "0" ]; then
    caps_dir="${GITVIRT_CACHE_DIR:-/var/cache/gitvirt}/qemu-caps"
    if ! mkdir -p "$caps_dir" 2>/dev/null; then
      echo "$prog: warning: cannot create $caps_dir; using a private capabilities cache" >&2
      caps_dir=""
    fi
  fi
  mkdir -p "$dir/cache/qemu/capabilities"

  # libvirt re-probes QEMU when the host CPUID data it reads differs from the cached
  # data, and on some VMs that data depends on which CPU the reading thread runs on
  # (leaf 0x1f/0xb carry the current x2APIC id). Pinning the daemon to one CPU keeps the
  # cache (shared, or DIR's own across restarts) valid; libvirt gives QEMU processes all
  # host CPUs regardless.
  local pin=""
  if command -v taskset >/dev/null 2>&1; then
    pin=${GITVIRT_LIBVIRTD_CPU-0}
    [ "$pin" != "none" ] || pin=""
  fi

  # Stale sockets of a killed daemon would make the wait below succeed too early.
  rm -f "$dir/sock/libvirt-sock" "$dir/sock/libvirt-sock-ro" "$dir/sock/libvirt-admin-sock" \
        "$dir/libvirtd.pid"

  local caps_mount="# no shared capabilities cache"
  [ -z "$caps_dir" ] || caps_mount="mount --bind '$caps_dir' /var/cache/libvirt/qemu/capabilities"

  cat >"$dir/ns-init.sh" <<EOF
# Runs inside the private mount namespace, then becomes libvirtd (same PID).
set -eu
mount --bind '$dir/etc' /etc/libvirt
mount --bind '$dir/run' /run/libvirt
mount --bind '$dir/lib' /var/lib/libvirt
mount --bind '$dir/cache' /var/cache/libvirt
$caps_mount
mount --bind '$dir/log' /var/log/libvirt
exec ${pin:+taskset -c $pin }libvirtd --config '$dir/libvirtd.conf' --pid-file '$dir/libvirtd.pid'${tcp:+ --listen}
EOF

  local t0 t1 t2
  t0=$(now_ms)
  # setsid: own session, so a test runner's terminal signals don't reach the daemon;
  # stdio to a file, so a caller reading our stdout through a pipe sees EOF.
  setsid unshare --mount --propagation private bash "$dir/ns-init.sh" \
    </dev/null >>"$dir/daemon.out" 2>&1 &
  local launcher=$!

  local timeout_s=${LIBVIRTD_START_TIMEOUT:-120}
  local deadline=$((t0 + timeout_s * 1000)) ok=0
  while :; do
    pid=$(read_pid)
    if [ -S "$sock" ] && [ -n "$pid" ] &&
       timeout 10 virsh -q -c "$qemu_uri" uri >/dev/null 2>&1 &&
       { [ -z "$tcp" ] || timeout 10 virsh -q -c "$tcp_uri" uri >/dev/null 2>&1; }; then
      ok=1
      break
    fi
    if ! alive "$launcher" && ! is_our_daemon "$pid"; then
      break
    fi
    [ "$(now_ms)" -ge "$deadline" ] && break
    sleep 0.1
  done
  t1=$(now_ms)
  if [ "$ok" -ne 1 ]; then
    if [ "$(now_ms)" -ge "$deadline" ]; then
      echo "$prog: libvirtd for $dir did not answer on $sock within ${timeout_s}s" >&2
    else
      echo "$prog: libvirtd for $dir exited during start-up" >&2
    fi
    echo "---- $dir/daemon.out (tail) ----" >&2
    tail -n 20 "$dir/daemon.out" >&2 2>/dev/null || true
    echo "---- $dir/libvirtd.log (tail) ----" >&2
    tail -n 20 "$dir/libvirtd.log" >&2 2>/dev/null || true
    pid=$(read_pid)
    is_our_daemon "$pid" && terminate 5 "$pid"
    alive "$launcher" && terminate 5 "$launcher"
    exit 1
  fi
  [ "$pid" = "$launcher" ] ||
    echo "$prog: note: libvirtd pid $pid differs from launcher pid $launcher" >&2

  # Remember the namespace: leftover QEMU processes are found through it by stop.
  local ns self_ns
  ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null || true)
  self_ns=$(readlink /proc/self/ns/mnt)
  if [ -n "$ns" ] && [ "$ns" != "$self_ns" ] && ! grep -qxF "$ns" "$dir/mntns" 2>/dev/null; then
    echo "$ns" >>"$dir/mntns"
  fi

  # VIRT_TYPE=kvm only if this libvirt can really run KVM guests.
  local virt_type=${GITVIRT_VIRT_TYPE:-}
  if [ -z "$virt_type" ]; then
    virt_type=qemu
    # (Captured first: with pipefail, "virsh | grep -q" fails when grep exits early and
    # virsh gets SIGPIPE.)
    local domcaps=""
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
      domcaps=$(timeout 120 virsh -q -c "$qemu_uri" domcapabilities --virttype kvm 2>/dev/null) ||
        domcaps=""
    fi
    [[ "$domcaps" != *"<domain>kvm</domain>"* ]] || virt_type=kvm
  fi
  case "$virt_type" in kvm|qemu) ;; *) die "GITVIRT_VIRT_TYPE must be kvm or qemu" ;; esac
  t2=$(now_ms)

  cat >"$dir/env.tmp" <<EOF
LIBVIRTD_PID=$pid
LIBVIRTD_DIR=$dir
HOST_UUID=$uuid
QEMU_URI=$qemu_uri
TEST_URI=$test_uri
POOL_DIR=$dir/pool
VIRT_TYPE=$virt_type
LIBVIRTD_LOG=$dir/libvirtd.log
EOF
  [ -z "$tcp" ] || echo "TCP_URI=$tcp_uri" >>"$dir/env.tmp"
  mv -f "$dir/env.tmp" "$dir/env"
  echo "$(date -Is) start pid=$pid socket_ms=$((t1 - t0)) probe_ms=$((t2 - t1))" \
    >>"$dir/timings.log"
  cat "$dir/env"
}

# ---------------------------------------------------------------------------------------
# Guests: destroy them through the daemon, then kill whatever QEMU is left.
destroy_guests_via_daemon() {
  local name names
  names=$(virsh_q list --name 2>/dev/null) || return 0
  # In parallel: each destroy takes 1-2 s (libvirt waits for QEMU to exit).
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    (VIRSH_TIMEOUT=60 virsh_q destroy "$name" >/dev/null 2>&1 ||
       echo "$prog: warning: could not destroy domain '$name' through the daemon" >&2) &
  done <<<"$names"
  wait
}

# Does PID live in a mount namespace made for $dir, i.e. one where $dir/run is mounted
# on /run/libvirt? (Guards against PID and namespace-inode reuse.) mountinfo shows the
# bind source relative to its filesystem, so compare by suffix.
in_our_namespace() {
  local root mp base=${dir##*/}
  while read -r _ _ _ root mp _; do
    if [ "$mp" = /run/libvirt ] && [[ "$root" == */"$base"/run ]] &&
       [[ "$dir/run" == *"$root" ]]; then
      return 0
    fi
  done 2>/dev/null <"/proc/$1/mountinfo"
  return 1
}

leftover_guest_pids() {
  local f p ns
  local -A seen=()
  # 1. PID files libvirt keeps in /run/libvirt/qemu (= DIR/run/qemu).
  for f in "$dir"/run/qemu/*.pid; do
    [ -e "$f" ] || continue
    p=$(tr -dc '0-9' <"$f")
    if [ -n "$p" ] && alive "$p" && in_our_namespace "$p"; then seen[$p]=1; fi
  done
  # 2. Any process still living in one of this DIR's mount namespaces ("mnt:[INODE]").
  if [ -s "$dir/mntns" ]; then
    local inodes self_ino line
    local -A verdict=()
    inodes=" $(tr -dc '0-9\n' <"$dir/mntns" | tr '\n' ' ') "
    self_ino=$(stat -L -c %i /proc/self/ns/mnt)
    while read -r line; do
      p=${line%% *}
      ns=${line##* }
      p=${p#/proc/}
      p=${p%%/*}
      if [ "$ns" = "$self_ino" ] || [[ "$inodes" != *" $ns "* ]]; then continue; fi
      if [ -z "${verdict[$ns]:-}" ]; then
        verdict[$ns]=no
        if in_our_namespace "$p"; then verdict[$ns]=yes; fi
      fi
      if [ "${verdict[$ns]}" = yes ] && alive "$p"; then seen[$p]=1; fi
    done < <(stat -L -c '%n %i' /proc/[0-9]*/ns/mnt 2>/dev/null || true)
  fi
  echo "${!seen[@]}"
}

stop_daemon() {
  local pid
  pid=$(read_pid)
  if [ -z "$pid" ] && [ -r "$dir/env" ]; then
    pid=$(sed -n 's/^LIBVIRTD_PID=//p' "$dir/env")
  fi
  if is_our_daemon "$pid"; then
    terminate "${LIBVIRTD_STOP_TIMEOUT:-20}" "$pid"
  fi
  rm -f "$dir/libvirtd.pid"
}

cmd_stop() {
  set_dir "${1:-}"
  [ "$#" -le 1 ] || die "stop: unexpected argument '$2'"
  [ -d "$dir" ] || return 0
  [ "$(id -u)" -eq 0 ] || die "must run as root"
  if is_our_daemon "$(read_pid)" && [ -S "$sock" ]; then
    destroy_guests_via_daemon
  fi
  stop_daemon
  local pids
  # shellcheck disable=SC2207
  pids=($(leftover_guest_pids))
  if [ "${#pids[@]}" -gt 0 ]; then
    echo "$prog: killing leftover process(es) of $dir: ${pids[*]}" >&2
    terminate 10 "${pids[@]}"
  fi
  rm -f "$dir/env" "$dir/mntns"
}

cmd_restart() {
  set_dir "${1:-}"
  [ "$#" -le 1 ] || die "restart: unexpected argument '$2'"
  [ -r "$dir/libvirtd.conf" ] || die "$dir has never been started"
  check_prerequisites
  stop_daemon
  cmd_start "$dir"
}

cmd_status() {
  set_dir "${1:-}"
  is_our_daemon "$(read_pid)" || { echo "$prog: no daemon running for $dir" >&2; return 1; }
  timeout 10 virsh -q -c "$qemu_uri" uri >/dev/null 2>&1 ||
    { echo "$prog: daemon for $dir does not answer" >&2; return 1; }
  cat "$dir/env"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  restart) shift; cmd_restart "$@" ;;
  status) shift; cmd_status "$@" ;;
  -h|--help|help) usage 0 ;;
  *) usage ;;
esac
