#!/usr/bin/env bash
# Build (once) the benchmark databases of issue 15, with the release
# binaries, and print their paths:
#   fleet.db  10M api rows (50 customers, 2026-11-01..27) + 3M resource
#             rows (200 VMs sampled every 5 minutes from 2026-10-10, about
#             one line in 400 lost, one VM in 7 rebooting every 2,000
#             intervals), customers cust-0000..0049 registered;
#   big.db    one customer (cust-0000, registered with its VMs) with 100
#             VMs x 8,640 samples: the month of 2026-11.
# Kept in $BENCH_DIR (default /tmp/mb-bench); about 35 minutes on a busy
# 2-core VM, 4.5 GB. Run from the repository root after a release build.
#   scripts/bench-fleet-db.sh [N_API] [N_RES]    (default 10000000 3000000)
set -euo pipefail
cd "$(dirname "$0")/.."
n_api=${1:-10000000}
n_res=${2:-3000000}
dir=${BENCH_DIR:-/tmp/mb-bench}
mkdir -p "$dir"
fleet="$dir/fleet-$n_api-$n_res.db"
big="$dir/big-100x8640.db"
bin=target/release
# Ingest stamps a day after the data, so --as-of cutoffs are reproducible.
export MB_NOW=2026-12-02T00:00:00Z
if [ ! -f "$fleet" ]; then
  echo "building $fleet ..." >&2
  rm -f "$fleet.tmp"*
  "$bin/examples/gen_events" api "$n_api" 50 | "$bin/mb-ingest" --quiet --db "$fleet.tmp"
  GEN_VMS=200 GEN_START=2026-10-10T00:00:00Z "$bin/examples/gen_events" resource "$n_res" 50 |
    "$bin/mb-ingest" --quiet --db "$fleet.tmp"
  for i in $(seq 0 49); do
    c=$(printf 'cust-%04d' "$i")
    vms=()
    for v in $(seq "$i" 50 199); do vms+=(--vm "$(printf 'vm-%04d' "$v")"); done
    "$bin/mb-customer" --db "$fleet.tmp" add "$c" --tier pro --effective 2026-10-01 \
      --stripe-customer "cus_$i" "${vms[@]}" >/dev/null
  done
  mv "$fleet.tmp" "$fleet"
fi
if [ ! -f "$big" ]; then
  echo "building $big ..." >&2
  rm -f "$big.tmp"*
  GEN_VMS=100 GEN_START=2026-11-01T00:00:00Z "$bin/examples/gen_events" resource 864000 1 |
    "$bin/mb-ingest" --quiet --db "$big.tmp"
  vms=()
  for v in $(seq 0 99); do vms+=(--vm "$(printf 'vm-%04d' "$v")"); done
  "$bin/mb-customer" --db "$big.tmp" add cust-0000 --tier pro --effective 2026-10-01 \
    --stripe-customer cus_0 "${vms[@]}" >/dev/null
  mv "$big.tmp" "$big"
fi
# A database built by an older mb is migrated by one run on empty input
# (a no-op for a current one; it records an empty ingest run).
for db in "$fleet" "$big"; do
  "$bin/mb-ingest" --quiet --db "$db" </dev/null
done
echo "$fleet"
echo "$big"
