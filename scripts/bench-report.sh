#!/usr/bin/env bash
# mb-report on the issue-15 benchmark databases (scripts/bench-fleet-db.sh):
# targets one-customer month < 0.2 s, all-customer invoice < 5 s, and one
# customer with 100 VMs x 8,640 samples summarised in < 0.2 s. Each figure
# is printed beside its target and beside two references measured in the
# same run, so the ratio holds whatever the machine's speed:
#   - a plain sqlite3 aggregate of the same rows (the sqlite3 shell, default
#     settings): what "just ask SQLite" costs;
#   - mb-report reading every sample (MB_RESOURCE_PATH=raw, the reference
#     path the rollup must equal; also checked to the byte below).
#   scripts/bench-report.sh [RUNS] [SLOW_RUNS]    (default 10 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
slow_runs=${2:-3}
cargo build --release --quiet --bins --example gen_events
mapfile -t dbs < <(scripts/bench-fleet-db.sh)
fleet=${dbs[0]}
big=${dbs[1]}
export MB_NOW=2026-12-02T00:00:00Z
r=./target/release/mb-report
tmp=${TMPDIR:-/tmp}
# November 2026 in UTC, ns.
s=1793491200000000000
e=1796083200000000000
tok="tokens_in + tokens_out + cache_read_tokens + cache_write_tokens"
res="count(*), avg(memory_percent), max(disk_used_bytes), max(cpu_busy_ticks_cum) - min(cpu_busy_ticks_cum), max(net_in_bytes_cum) - min(net_in_bytes_cum)"
q_one="SELECT provider, model, count(*), sum($tok), sum(cost_nusd) FROM api_usage WHERE customer_id = 'cust-0007' AND ts_ns >= $s AND ts_ns < $e GROUP BY 1, 2; SELECT vm_id, $res FROM resource_usage WHERE customer_id = 'cust-0007' AND ts_ns >= $s AND ts_ns < $e GROUP BY 1;"
q_inv="SELECT customer_id, count(*), sum($tok), sum(cost_nusd) FROM api_usage WHERE ts_ns >= $s AND ts_ns < $e GROUP BY 1;"
q_big="SELECT vm_id, $res FROM resource_usage WHERE customer_id = 'cust-0000' AND ts_ns >= $s AND ts_ns < $e GROUP BY 1;"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
hyperfine --warmup 2 --runs "$runs" --export-json "$tmp/bench-report-fast.json" -N \
  -n "summary, one customer-month" "$r --db $fleet --month 2026-11 --customer cust-0007 --json" \
  -n "summary, Asia/Kolkata + as-of" "$r --db $fleet --month 2026-11 --customer cust-0007 --tz Asia/Kolkata --as-of 2026-12-02T06:00:00Z --json" \
  -n "invoice, all 50 customers" "$r --db $fleet invoice --month 2026-11 --usd-eur 0.92 --csv" \
  -n "summary, 100 VMs x 8640" "$r --db $big --month 2026-11 --customer cust-0000 --by-vm --json" \
  -n "series --by hour, one customer-month" "$r --db $fleet series --by hour --month 2026-11 --customer cust-0007 --csv"
load1=$(cut -d' ' -f1-3 /proc/loadavg)
hyperfine --warmup 1 --runs "$slow_runs" --export-json "$tmp/bench-report-slow.json" -N \
  -n "sqlite3 aggregate, one customer-month" "sqlite3 -readonly $fleet \"$q_one\"" \
  -n "summary, one customer-month, raw samples" "env MB_RESOURCE_PATH=raw $r --db $fleet --month 2026-11 --customer cust-0007 --json" \
  -n "sqlite3 aggregate, all customers' month" "sqlite3 -readonly $fleet \"$q_inv\"" \
  -n "sqlite3 aggregate, 100 VMs" "sqlite3 -readonly $big \"$q_big\"" \
  -n "summary, 100 VMs, raw samples" "env MB_RESOURCE_PATH=raw $r --db $big --month 2026-11 --customer cust-0000 --by-vm --json" \
  -n "series --by hour, all customers" "$r --db $fleet series --by hour --month 2026-11 --csv"
load2=$(cut -d' ' -f1-3 /proc/loadavg)
# The two paths must agree to the byte.
for db in "$fleet:cust-0007" "$big:cust-0000"; do
  a=$($r --db "${db%%:*}" --month 2026-11 --customer "${db##*:}" --by-vm --json --as-of 2026-12-02T06:00:00Z)
  b=$(MB_RESOURCE_PATH=raw $r --db "${db%%:*}" --month 2026-11 --customer "${db##*:}" --by-vm --json --as-of 2026-12-02T06:00:00Z)
  [ "$a" = "$b" ] && echo "rollup = raw for ${db##*:}: identical" || { echo "rollup and raw DIFFER for ${db##*:}" >&2; exit 1; }
done
echo
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "load average (1, 5, 15 min): before $load0; between the runs $load1; after $load2"
jq -s -r '[.[].results[]] | .[] | "\(.command)\t\(.mean)\t\(.min)\t\(.max)\t\(.user + .system)"' \
  "$tmp/bench-report-fast.json" "$tmp/bench-report-slow.json" |
  awk -F'\t' '
    BEGIN {
      t["summary, one customer-month"] = 0.2; t["summary, Asia/Kolkata + as-of"] = 0.2
      t["invoice, all 50 customers"] = 5; t["summary, 100 VMs x 8640"] = 0.2
      b["summary, one customer-month"] = "sqlite3 aggregate, one customer-month"
      b["summary, Asia/Kolkata + as-of"] = "sqlite3 aggregate, one customer-month"
      b["invoice, all 50 customers"] = "sqlite3 aggregate, all customers'"'"' month"
      b["summary, 100 VMs x 8640"] = "sqlite3 aggregate, 100 VMs"
      raw["summary, one customer-month"] = "summary, one customer-month, raw samples"
      raw["summary, 100 VMs x 8640"] = "summary, 100 VMs, raw samples"
      fail = 0
    }
    { n[NR] = $1; mean[$1] = $2; lo[$1] = $3; hi[$1] = $4; cpu[$1] = $5 }
    END {
      for (i = 1; i <= NR; i++) {
        c = n[i]
        line = sprintf("%-40s %8.0f ms mean (%.0f-%.0f, CPU %.0f ms)", c, mean[c] * 1000, lo[c] * 1000, hi[c] * 1000, cpu[c] * 1000)
        if (c in t) {
          ok = mean[c] < t[c]
          if (!ok) fail = 1
          line = line sprintf("  target < %g s: %s", t[c], ok ? "ok" : "MISSED")
          if (b[c] in mean) line = line sprintf("; %.1fx faster than the sqlite3 aggregate", mean[b[c]] / mean[c])
          if (raw[c] in mean) line = line sprintf(", %.0fx than raw samples", mean[raw[c]] / mean[c])
        } else {
          line = line (c ~ /^series/ ? "  (no target)" : "  (reference)")
        }
        print line
      }
      exit fail
    }'
