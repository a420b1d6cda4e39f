#!/usr/bin/env bash
# mb-dashboard on the issue-15 benchmark database (scripts/bench-fleet-db.sh:
# 10M api + 3M resource rows, 50 customers, 200 VMs), with wrk at 16
# connections. Targets for each URL: >= 500 req/s and p99 < 100 ms; peak
# RSS < 50 MiB per server.
#   - a customer's dashboard (--customer cust-0007): the summary, the
#     series, the page and /metrics of the month;
#   - the operator's dashboard (no --customer): /metrics, /api/v1/vms,
#     /api/v1/customers and the fleet page.
# Also prints each URL's first response time: the cache keeps figures until
# a commit, so that is what the first request after an ingest costs.
#   scripts/bench-dashboard.sh [SECONDS]    (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
command -v wrk >/dev/null || { echo "wrk missing (apt-get install -y wrk)" >&2; exit 2; }
cargo build --release --quiet --bins --example gen_events
mapfile -t dbs < <(scripts/bench-fleet-db.sh)
db=${dbs[0]}
export MB_NOW=2026-12-02T00:00:00Z
out=()
fail=0
loads=()

# bench NAME ARGS... -- URL...: start a server with ARGS, wrk each URL.
bench() {
  local name=$1
  shift
  local args=()
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  local err
  err=$(mktemp)
  target/release/mb-dashboard --db "$db" --port 0 "${args[@]}" 2>"$err" &
  local pid=$!
  local i=0
  until grep -qs 'listening on' "$err"; do
    i=$((i + 1)); [ $i -lt 300 ] || { cat "$err" >&2; kill $pid; exit 2; }; sleep 0.1
  done
  local base
  base=$(sed -n 's/.*listening on \(http:[^ ]*\)\//\1/p' "$err")
  out+=("$name (mb-dashboard ${args[*]}):")
  for u in "$@"; do
    local first w rps p99 p99ms errs verdict
    first=$(curl -fsS -o /dev/null -w '%{time_total}' "$base$u")
    w=$(wrk -t2 -c16 -d"${secs}s" --latency "$base$u")
    loads+=("$(cut -d' ' -f1 /proc/loadavg)")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$w")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$w")
    # wrk prints us, ms or s.
    p99ms=$(awk -v v="$p99" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/) n *= 1000; print n }')
    errs=$(awk '/Non-2xx|Socket errors/' <<<"$w" | tr -s ' ' | tr '\n' ' ')
    if awk -v r="$rps" -v p="$p99ms" 'BEGIN { exit !(r >= 500 && p < 100) }' && [ -z "$errs" ]; then
      verdict=ok
    else
      verdict=MISSED; fail=1
    fi
    out+=("$(printf '  %-40s %9s req/s (>= 500)  p99 %8s (< 100ms)  first %7.1f ms  %s %s' \
      "$u" "$rps" "$p99" "$(echo "$first * 1000" | bc -l)" "$verdict" "$errs")")
  done
  local rss
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM $pid
  wait $pid 2>/dev/null || true
  rm -f "$err"
  local v=ok
  [ "$rss" -lt 51200 ] || { v=MISSED; fail=1; }
  out+=("$(printf '  peak RSS %.1f MiB (< 50 MiB) %s' "$(echo "$rss / 1024" | bc -l)" "$v")")
}

bench "customer cust-0007" --customer cust-0007 -- \
  "/api/v1/summary?month=2026-11" "/api/v1/series?month=2026-11&by=day" "/?month=2026-11" "/metrics"
bench "operator" -- \
  "/metrics" "/api/v1/vms" "/api/v1/customers?month=2026-11" "/?month=2026-11"

echo
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "load average (1 min) after each wrk run: ${loads[*]}"
echo "rows: $(sqlite3 "$db" 'select (select count(*) from api_usage) || " api, " || (select count(*) from resource_usage) || " resource"')"
echo "wrk: 2 threads, 16 connections, ${secs} s per URL"
printf '%s\n' "${out[@]}"
exit $fail
