#!/bin/sh
# Throughput of mb-dashboard's JSON summary (issue target: one
# customer-month on the 10-million-row database at >= 500 requests/s under
# wrk with 16 connections, p99 < 100 ms, RSS < 50 MiB). Figures go to
# docs/mb-dashboard.md.
#
# usage: scripts/bench-dashboard.sh [ROWS] [SECONDS]    (default 10000000 30)
#   BENCH_DB=/path/usage.db to reuse a database (generated when missing:
#   ROWS api events over 50 customers, 2026-11-01..27, a few minutes for 10M).
set -eu
cd "$(dirname "$0")/.."
ROWS=${1:-10000000}
SECS=${2:-30}
DB=${BENCH_DB:-${TMPDIR:-/tmp}/mb-bench-dashboard-${ROWS}.db}
command -v wrk >/dev/null || { echo "wrk missing (apt-get install -y wrk)" >&2; exit 2; }
cargo build --release --bin mb-ingest --bin mb-dashboard --example gen_events
if [ ! -s "$DB" ]; then
  echo "generating $ROWS api events into $DB"
  target/release/examples/gen_events api "$ROWS" 50 | target/release/mb-ingest --db "$DB"
fi
ERR=${TMPDIR:-/tmp}/bench-dashboard.err
target/release/mb-dashboard --db "$DB" --port 0 --customer cust-0007 2> "$ERR" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
i=0
until grep -qs 'listening on' "$ERR"; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$ERR" >&2; exit 2; }; sleep 0.1
done
BASE=$(sed -n 's/.*listening on \(http:[^ ]*\)\//\1/p' "$ERR")
URL="$BASE/api/v1/summary?month=2026-11"
echo "rows: $(sqlite3 "$DB" 'select count(*) from api_usage' 2>/dev/null || echo "$ROWS")"
curl -fsS "$URL" | head -c 300; echo
wrk -t2 -c16 -d"${SECS}s" --latency "$URL"
echo "mb-dashboard memory: $(grep -E 'VmHWM|VmRSS' /proc/$PID/status | tr -s ' \n' ' ')"
