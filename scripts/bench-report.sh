#!/usr/bin/env bash
# mb-report on the issue-15 benchmark databases (scripts/bench-fleet-db.sh):
# targets one-customer month < 0.2 s, all-customer invoice < 5 s, and one
# customer with 100 VMs x 8,640 samples summarised in < 0.2 s. Each
# resource summary is timed through the rollup (the default) and, side by
# side in the same hyperfine run, through every sample (MB_RESOURCE_PATH=raw,
# the reference path), so the ratio holds whatever the machine's speed.
#   scripts/bench-report.sh [RUNS]     (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
cargo build --release --quiet --bins --example gen_events
mapfile -t dbs < <(scripts/bench-fleet-db.sh)
fleet=${dbs[0]}
big=${dbs[1]}
export MB_NOW=2026-12-02T00:00:00Z
r=./target/release/mb-report
out=${TMPDIR:-/tmp}/bench-report.json
hyperfine --warmup 2 --runs "$runs" --export-json "$out" -N \
  -n "summary, one customer-month" "$r --db $fleet --month 2026-11 --customer cust-0007 --json" \
  -n "summary, same, raw samples" "env MB_RESOURCE_PATH=raw $r --db $fleet --month 2026-11 --customer cust-0007 --json" \
  -n "summary, Asia/Kolkata + as-of" "$r --db $fleet --month 2026-11 --customer cust-0007 --tz Asia/Kolkata --as-of 2026-12-02T06:00:00Z --json" \
  -n "invoice, all 50 customers" "$r --db $fleet invoice --month 2026-11 --usd-eur 0.92 --csv" \
  -n "summary, 100 VMs x 8640" "$r --db $big --month 2026-11 --customer cust-0000 --by-vm --json" \
  -n "summary, 100 VMs, raw samples" "env MB_RESOURCE_PATH=raw $r --db $big --month 2026-11 --customer cust-0000 --by-vm --json"
# The two paths must agree to the byte.
for db in "$fleet:cust-0007" "$big:cust-0000"; do
  a=$($r --db "${db%%:*}" --month 2026-11 --customer "${db##*:}" --by-vm --json --as-of 2026-12-02T06:00:00Z)
  b=$(MB_RESOURCE_PATH=raw $r --db "${db%%:*}" --month 2026-11 --customer "${db##*:}" --by-vm --json --as-of 2026-12-02T06:00:00Z)
  [ "$a" = "$b" ] && echo "rollup = raw for ${db##*:}: identical" || { echo "rollup and raw DIFFER for ${db##*:}" >&2; exit 1; }
done
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
jq -r '.results[] | "\(.command)\t\(.mean*1000 | floor) ms mean, \(.min*1000 | floor) min, \(.max*1000 | floor) max"' "$out" |
  awk -F'\t' 'BEGIN { t["summary, one customer-month"]="< 200 ms"; t["summary, Asia/Kolkata + as-of"]="< 200 ms";
    t["invoice, all 50 customers"]="< 5000 ms"; t["summary, 100 VMs x 8640"]="< 200 ms" }
    { printf "%-34s %-12s %s\n", $1, (t[$1] ? t[$1] : "(baseline)"), $2 }'
