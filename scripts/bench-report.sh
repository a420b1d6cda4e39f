#!/usr/bin/env bash
# Report benchmark on a central-size database: N_API api rows (50
# customers) plus N_RES resource rows (1000 VMs), the issue's "about a month
# of 1,000 VMs". Builds the database once (kept in $BENCH_DIR, default
# /tmp/mb-bench), then times a one-customer monthly summary and the monthly
# invoice of all customers with hyperfine.
#   scripts/bench-report.sh [N_API] [N_RES]     (default 10000000 3000000)
set -euo pipefail
cd "$(dirname "$0")/.."
n_api=${1:-10000000}
n_res=${2:-3000000}
dir=${BENCH_DIR:-/tmp/mb-bench}
db="$dir/report-$n_api-$n_res.db"
export MB_NOW=2026-12-02T00:00:00Z
cargo build --release --quiet --bins --example gen_events
mkdir -p "$dir"
if [ ! -f "$db" ]; then
  echo "building $db ..."
  time (./target/release/examples/gen_events api "$n_api" 50 | ./target/release/mb-ingest --quiet --db "$db")
  time (./target/release/examples/gen_events resource "$n_res" 50 | ./target/release/mb-ingest --quiet --db "$db")
  for i in $(seq 0 49); do
    ./target/release/mb-customer --db "$db" add "$(printf 'cust-%04d' "$i")" --tier pro \
      --effective 2026-10-01 --stripe-customer "cus_$i" 2>/dev/null
  done
fi
ls -la "$db"
hyperfine --warmup 2 --runs 10 \
  "./target/release/mb-report --db $db --month 2026-11 --customer cust-0007 --json" \
  "./target/release/mb-report --db $db invoice --month 2026-11 --usd-eur 0.92 --csv" \
  "./target/release/mb-report --db $db --month 2026-11 --customer cust-0007 --tz Europe/Prague --as-of 2026-12-02T06:00:00Z --json"
