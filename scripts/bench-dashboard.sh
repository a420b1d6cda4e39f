#!/usr/bin/env bash
# mb-dashboard on the issue-15 benchmark database (scripts/bench-fleet-db.sh:
# 10M api + 3M resource rows, 50 customers, 200 VMs), with wrk at 16
# connections against the summary, the series, the page and /metrics (when
# the server has it), one customer-month each. Targets: >= 500 req/s and
# p99 < 100 ms per URL, peak RSS < 50 MiB. Also prints each URL's first
# (uncached) response time: the cache keeps figures until a commit.
#   scripts/bench-dashboard.sh [SECONDS]    (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
command -v wrk >/dev/null || { echo "wrk missing (apt-get install -y wrk)" >&2; exit 2; }
cargo build --release --quiet --bins --example gen_events
mapfile -t dbs < <(scripts/bench-fleet-db.sh)
db=${dbs[0]}
err=${TMPDIR:-/tmp}/bench-dashboard.err
export MB_NOW=2026-12-02T00:00:00Z
target/release/mb-dashboard --db "$db" --port 0 --customer cust-0007 2>"$err" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
i=0
until grep -qs 'listening on' "$err"; do
  i=$((i + 1)); [ $i -lt 300 ] || { cat "$err" >&2; exit 2; }; sleep 0.1
done
base=$(sed -n 's/.*listening on \(http:[^ ]*\)\//\1/p' "$err")
urls=("/api/v1/summary?month=2026-11" "/api/v1/series?month=2026-11&by=day" "/?month=2026-11")
if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/metrics")" = 200 ]; then
  urls+=("/metrics")
else
  echo "(no /metrics on this server: skipped)"
fi
results=()
for u in "${urls[@]}"; do
  first=$(curl -fsS -o /dev/null -w '%{time_total}' "$base$u")
  w=$(wrk -t2 -c16 -d"${secs}s" --latency "$base$u")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$w")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$w")
  errs=$(awk '/Non-2xx|Socket errors/' <<<"$w")
  results+=("$(printf '%-38s %10s req/s  p99 %8s  first %6.1f ms %s' "$u" "$rps" "$p99" "$(echo "$first * 1000" | bc -l)" "$errs")")
done
rss=$(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status")
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rows: $(sqlite3 "$db" 'select (select count(*) from api_usage) || " api, " || (select count(*) from resource_usage) || " resource"')"
echo "targets: >= 500 req/s, p99 < 100 ms each; peak RSS < 50 MiB"
printf '%s\n' "${results[@]}"
echo "mb-dashboard peak RSS: $rss"
