#!/usr/bin/env bash
# PostgreSQL store benchmark (issue 16), side by side in one run:
#   1. the same N api lines (default 1,000,000, scripts/bench.sh's generator)
#      loaded by `mb-ingest --db postgres://...` and by `psql \copy` into an
#      equivalent table (api_usage's columns and indexes: unique id, unique
#      rowid, (customer_id, ts_ns)); target: mb-ingest >= 80 % of \copy's
#      rate. The peer gets the rows as CSV, already converted and priced
#      (exported from what mb-ingest stored), so it does no validation, no
#      duplicate or conflict check and no rollup: the ratio is what all of
#      mb's guarantees cost.
#   2. peak RSS of mb-ingest at N and at BIG lines (default 10,000,000, fed
#      through a pipe so no 4 GB file is needed): flat in the input size.
#   3. on the BIG-row database: one-customer month summary (target < 0.2 s)
#      and the all-customer invoice (< 5 s), with hyperfine.
#
#   scripts/bench-postgres.sh [N] [BIG]      BIG=0 skips steps 2b and 3
#
# Starts its own throwaway cluster (initdb in a temp dir, unix socket only,
# durable default settings: fsync and synchronous_commit on) as user
# mbpgtest when run as root, and removes it at the end. Needs Debian's
# postgresql (apt-get install -y postgresql), hyperfine and jq.
# BENCH_NO_LTO=1 builds the release binaries without LTO (minutes instead
# of half an hour on a small VM; mb-ingest is then a little slower, so the
# ratio is conservative).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
big=${2:-10000000}
runs=${RUNS:-3}

if [ -n "${BENCH_NO_LTO:-}" ]; then export CARGO_PROFILE_RELEASE_LTO=false; fi
cargo build --release --quiet --bin mb-ingest --bin mb-report --bin mb-customer --example gen_events
bin=$PWD/target/release
gen=$bin/examples/gen_events

pgbin=${MB_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$pgbin/initdb" ] || { echo "bench-postgres.sh: no initdb (apt-get install -y postgresql)" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mb-bench-pg.XXXXXX")
as=()
if [ "$(id -u)" = 0 ]; then
  id -u mbpgtest >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mbpgtest
  chown mbpgtest "$tmp"
  as=(runuser -u mbpgtest --)
fi
chmod 755 "$tmp"
stop() {
  "${as[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap stop EXIT
"${as[@]}" "$pgbin/initdb" -D "$tmp/data" -U bench --auth-local=trust -E UTF8 --locale=C >/dev/null
cat >>"$tmp/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$tmp'
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
EOF
"${as[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -l "$tmp/log" -w start >/dev/null
export PGHOST=$tmp PGPORT=5432 PGUSER=bench
psql() { command "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
spec() { echo "host=$tmp port=5432 user=bench dbname=$1"; }
export MB_CONFIG=/dev/null MB_NOW=2026-12-02T00:00:00Z

"$gen" api "$n" >"$tmp/api.jsonl"
echo "input: $n api lines, $(du -m "$tmp/api.jsonl" | cut -f1) MB"

# A database with mb's schema, as the template of every run's database.
psql -d postgres -c "CREATE DATABASE mb_tpl"
"$bin/mb-ingest" --quiet --db "$(spec mb_tpl)" </dev/null
# The peer's CSV: exactly the rows mb-ingest stores, in api_usage's columns.
psql -d postgres -c "CREATE DATABASE mb_csv TEMPLATE mb_tpl"
"$bin/mb-ingest" --quiet --db "$(spec mb_csv)" "$tmp/api.jsonl"
cols="id, ts_ns, customer_id, vm_id, provider, model, price_key, tokens_in, tokens_out, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_nusd, priced, price_table, request_id, failed, auth_type, client, service_tier, source_format, ingested_at, run_id"
psql -d mb_csv -c "\\copy (SELECT $cols FROM api_usage ORDER BY rowid) TO '$tmp/api.csv' CSV"
[ "$(wc -l <"$tmp/api.csv")" -eq "$n" ] || { echo "bench-postgres.sh: mb-ingest stored $(wc -l <"$tmp/api.csv") of $n rows" >&2; exit 2; }
psql -d postgres -c "DROP DATABASE mb_csv"

P="$pgbin/psql -X -q -v ON_ERROR_STOP=1"
reset_mb="$P -d postgres -c 'DROP DATABASE IF EXISTS mb_run' -c 'CREATE DATABASE mb_run TEMPLATE mb_tpl' -c CHECKPOINT"
reset_peer="$P -d mb_tpl -c 'DROP TABLE IF EXISTS api_peer' -c 'CREATE TABLE api_peer (LIKE api_usage INCLUDING ALL)' -c CHECKPOINT"
hyperfine --runs "$runs" --export-json "$tmp/load.json" \
  -n "mb-ingest --db postgres" --prepare "$reset_mb" \
  "$bin/mb-ingest --quiet --db '$(spec mb_run)' $tmp/api.jsonl" \
  -n "psql \\copy (unique id)" --prepare "$reset_peer" \
  "$pgbin/psql -X -q -v ON_ERROR_STOP=1 -d mb_tpl -c \"\\copy api_peer ($cols) FROM '$tmp/api.csv' CSV\""
[ "$(psql -d mb_run -Atc 'SELECT count(*) FROM api_usage')" -eq "$n" ] || { echo "bench-postgres.sh: rows missing after the timed run" >&2; exit 2; }

psql -d postgres -c "DROP DATABASE IF EXISTS mb_run" -c "CREATE DATABASE mb_run TEMPLATE mb_tpl"
rss_n=$(/usr/bin/time -f %M "$bin/mb-ingest" --quiet --db "$(spec mb_run)" "$tmp/api.jsonl" 2>&1 >/dev/null | tail -1)
rm -f "$tmp/api.jsonl" "$tmp/api.csv"
psql -d postgres -c "DROP DATABASE mb_run"

if [ "$big" -gt 0 ]; then
  psql -d postgres -c "CREATE DATABASE mb_big TEMPLATE mb_tpl"
  for i in $(seq 0 49); do
    "$bin/mb-customer" --db "$(spec mb_big)" add "$(printf cust-%04d "$i")" --tier pro --effective 2026-10-01 >/dev/null
  done
  start=$(date +%s)
  rss_big=$( { "$gen" api "$big" | /usr/bin/time -f %M "$bin/mb-ingest" --quiet --db "$(spec mb_big)" >/dev/null; } 2>&1 | tail -1)
  load_s=$(($(date +%s) - start))
  psql -d mb_big -c "VACUUM ANALYZE"
  hyperfine --warmup 1 --runs "$runs" --export-json "$tmp/report.json" -N \
    -n "summary, one customer-month" "$bin/mb-report --db '$(spec mb_big)' --month 2026-11 --customer cust-0007 --json" \
    -n "invoice, all 50 customers" "$bin/mb-report --db '$(spec mb_big)' invoice --month 2026-11 --usd-eur 0.92 --csv"
fi

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'), unix socket, fsync on"
jq -r --argjson n "$n" '.results[] | "\(.command)\t\(.mean) \(.min) \(.max)\t\($n / .mean)"' "$tmp/load.json" |
  awk -F'\t' '{ split($2, t, " "); printf "%-26s mean %.2f s (min %.2f, max %.2f) -> %\047.0f lines/s\n", $1, t[1], t[2], t[3], $3; r[NR] = $3 }
    END { printf "mb-ingest / \\copy: %.0f %% (target >= 80 %%)\n", 100 * r[1] / r[2] }'
echo "peak RSS of mb-ingest: $rss_n KiB at $n lines"
if [ "$big" -gt 0 ]; then
  echo "peak RSS of mb-ingest: $rss_big KiB at $big lines (loaded through a pipe in $load_s s)"
  jq -r '.results[] | "\(.command)\t\(.mean*1000 | floor) ms mean, \(.min*1000 | floor) min, \(.max*1000 | floor) max"' "$tmp/report.json" |
    awk -F'\t' 'BEGIN { t["summary, one customer-month"]="< 200 ms"; t["invoice, all 50 customers"]="< 5000 ms" }
      { printf "%-30s %-10s %s\n", $1, t[$1], $2 }'
fi
