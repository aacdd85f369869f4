#!/usr/bin/env bash
# Status API throughput against nginx serving the same bytes, in one run.
#
#   bench/api_bench.sh --demo build/tests/api/demo_status_server   # starts it with 1,000 VMs
#   bench/api_bench.sh --url http://127.0.0.1:8080 [--token T]      # a running gitvirt serve
#
# Options: --duration SECONDS (10, per target), --rounds N (2), --connections N (64),
# --threads N (2: wrk threads, demo server io threads and nginx workers alike), --vms N (1000,
# demo only), --no-check.
#
# wrk GETs /api/v1/resources?limit=1000 from gitvirt and the same path from a private nginx
# (temporary prefix and config, another port) serving the JSON body gitvirt answered, saved to
# a file. The targets take turns, `rounds` times each for duration/rounds seconds, so that
# whatever else the machine is doing weighs on both alike. Prints requests/s (all requests over
# all rounds), p99 latency (the worst round) and errors for both, and the ratio gitvirt/nginx;
# exits 1 when gitvirt had errors or reached less than half of nginx's throughput (unless
# --no-check). Builds nothing; every process it starts is stopped on exit.
set -euo pipefail

demo="" url="" token="" duration=10 rounds=2 connections=64 threads=2 vms=1000 check=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --demo) demo="$2"; shift 2 ;;
    --url) url="${2%/}"; shift 2 ;;
    --token) token="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --vms) vms="$2"; shift 2 ;;
    --no-check) check=0; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "api_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$demo" || -n "$url" ]] || { echo "api_bench: give --demo PATH or --url URL" >&2; exit 2; }
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || [[ -x "/usr/sbin/$tool" ]] || { echo "api_bench: $tool is not installed" >&2; exit 2; }
done
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

work="$(mktemp -d /tmp/gitvirt-api-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [[ -n "$demo" ]]; then
  "$demo" --listen 127.0.0.1:0 --vms "$vms" --no-jobs --threads "$threads" >"$work/demo.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    url="$(sed -n 's/^listening on //p' "$work/demo.log" | head -n1)"
    [[ -n "$url" ]] && break
    sleep 0.1
  done
  [[ -n "$url" ]] || { echo "api_bench: the demo server did not start" >&2; cat "$work/demo.log" >&2; exit 1; }
fi

path="/api/v1/resources?limit=1000"
auth=()
[[ -n "$token" ]] && auth=(-H "Authorization: Bearer $token")

# The body nginx will serve: exactly what gitvirt answers.
mkdir -p "$work/www" "$work/logs"
status="$(curl -sS "${auth[@]}" -o "$work/www/resources.json" -w '%{http_code}' "$url$path")"
[[ "$status" == 200 ]] || { echo "api_bench: GET $url$path answered $status" >&2; exit 1; }
bytes="$(stat -c %s "$work/www/resources.json")"
chmod -R a+rX "$work"  # nginx workers run as nobody

nginx_port="$(free_port)"
cat >"$work/nginx.conf" <<EOF
worker_processes $threads;
daemon off;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp;
  scgi_temp_path $work/tmp;
  server {
    listen 127.0.0.1:$nginx_port;
    location = /api/v1/resources {
      default_type application/json;
      alias $work/www/resources.json;
    }
  }
}
EOF
mkdir -p "$work/tmp"
"$nginx_bin" -e "$work/logs/error.log" -p "$work" -c "$work/nginx.conf" &
pids+=($!)
for _ in $(seq 1 50); do
  curl -s -o /dev/null "http://127.0.0.1:$nginx_port$path" && break
  sleep 0.1
done
nginx_bytes="$(curl -sS "http://127.0.0.1:$nginx_port$path" | wc -c)"
[[ "$nginx_bytes" == "$bytes" ]] || { echo "api_bench: nginx serves $nginx_bytes bytes, gitvirt $bytes" >&2; exit 1; }

# Runs wrk once; prints "requests seconds p99_ms errors".
run_wrk() {
  local target="$1" out="$2" seconds="$3"
  shift 3
  wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency "$@" "$target" >"$out" 2>&1 || true
  awk '
    / requests in / { requests = $1; secs = $4; sub(/s,?$/, "", secs) }
    /^ +99%/ { v = $2; ms = v + 0
               if (v ~ /us$/) ms = ms / 1000; else if (v ~ /ms$/) ms = ms + 0;
               else if (v ~ /s$/) ms = ms * 1000; p99 = ms }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
    END { printf "%d %s %.2f %d\n", requests, (secs == "" ? 0 : secs), p99, errors }' "$out"
}

round_seconds=$(( duration / rounds ))
(( round_seconds >= 1 )) || round_seconds=1
echo "status API benchmark: GET $path ($bytes bytes), wrk -t$threads -c$connections," \
     "$rounds rounds of ${round_seconds}s per target, taking turns"
wrk_auth=()
[[ -n "$token" ]] && wrk_auth=(-H "Authorization: Bearer $token")
# A short warm-up of each, so neither pays for first-touch costs in the measured run.
wrk -t1 -c4 -d1s "${wrk_auth[@]}" "$url$path" >/dev/null 2>&1 || true
wrk -t1 -c4 -d1s "http://127.0.0.1:$nginx_port$path" >/dev/null 2>&1 || true

declare -A requests=() seconds=() p99=() errors=()
for name in gitvirt nginx; do requests[$name]=0; seconds[$name]=0; p99[$name]=0; errors[$name]=0; done
for round in $(seq 1 "$rounds"); do
  for name in gitvirt nginx; do
    if [[ $name == gitvirt ]]; then
      result="$(run_wrk "$url$path" "$work/wrk.$name.$round.txt" "$round_seconds" "${wrk_auth[@]}")"
    else
      result="$(run_wrk "http://127.0.0.1:$nginx_port$path" "$work/wrk.$name.$round.txt" "$round_seconds")"
    fi
    read -r n secs ms errs <<<"$result"
    requests[$name]=$(( ${requests[$name]} + n ))
    seconds[$name]="$(awk -v a="${seconds[$name]}" -v b="$secs" 'BEGIN { print a + b }')"
    p99[$name]="$(awk -v a="${p99[$name]}" -v b="$ms" 'BEGIN { print (b > a ? b : a) }')"
    errors[$name]=$(( ${errors[$name]} + errs ))
  done
done

rate() { awk -v n="${requests[$1]}" -v s="${seconds[$1]}" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
g_rps="$(rate gitvirt)" n_rps="$(rate nginx)" g_err="${errors[gitvirt]}"
printf '%-8s %12s %10s %8s\n' target "requests/s" "p99 ms" errors
printf '%-8s %12d %10.2f %8d\n' gitvirt "$g_rps" "${p99[gitvirt]}" "$g_err"
printf '%-8s %12d %10.2f %8d\n' nginx "$n_rps" "${p99[nginx]}" "${errors[nginx]}"
ratio="$(awk -v g="$g_rps" -v n="$n_rps" 'BEGIN { printf "%.2f", (n > 0 ? g / n : 0) }')"
echo "ratio gitvirt/nginx: $ratio (target >= 0.50, zero errors)"

if [[ "$check" == 1 ]]; then
  if [[ "$g_err" != 0 ]]; then echo "api_bench: FAIL: gitvirt had $g_err errors" >&2; exit 1; fi
  if awk -v r="$ratio" 'BEGIN { exit !(r < 0.5) }'; then
    echo "api_bench: FAIL: gitvirt reached less than half of nginx's throughput" >&2; exit 1
  fi
fi
