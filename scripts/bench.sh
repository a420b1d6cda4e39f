#!/usr/bin/env bash
# Ingest throughput benchmark: N synthetic api lines into a fresh database.
#   scripts/bench.sh [N]          (default 1000000)
# Ids are mb-tokens' (time first); GEN_IDS=random scripts/bench.sh measures
# random ids (request id first), as a producer other than mb-tokens might send.
# Needs hyperfine (apt-get install -y hyperfine) and, for the side-by-side
# peer, sqlite-utils (pip install sqlite-utils). Prints lines/s and the ratio.
# MB_INGEST=PATH benchmarks another mb-ingest binary (a before/after).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
cargo build --release --quiet --bin mb-ingest --example gen_events
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./target/release/examples/gen_events api "$n" > "$tmp/api.jsonl"
echo "input: $n api lines, $(du -m "$tmp/api.jsonl" | cut -f1) MB, ids: ${GEN_IDS:-time-first (mb-tokens)}"
# sync: each run starts with the previous run's 400 MB written back, so it
# pays for its own writes (synchronous=FULL fsyncs them) and not for those.
hyperfine --runs 5 --prepare "rm -f $tmp/u.db $tmp/u.db-wal $tmp/u.db-shm; sync" \
  --export-json "$tmp/h.json" \
  "${MB_INGEST:-./target/release/mb-ingest} --quiet --db $tmp/u.db $tmp/api.jsonl"
# The peer: sqlite-utils (pip install sqlite-utils), loading the same lines
# as JSON into a table with no validation, no dedup and no rollup; run side
# by side so the ratio holds whatever the machine's load (SKIP_PEER=1 skips).
peer=
if [ -z "${SKIP_PEER:-}" ] && command -v sqlite-utils >/dev/null; then
  peer=1
  hyperfine --runs "${PEER_RUNS:-2}" --prepare "rm -f $tmp/p.db $tmp/p.db-wal $tmp/p.db-shm; sync" \
    --export-json "$tmp/p.json" \
    "sqlite-utils insert $tmp/p.db api $tmp/api.jsonl --nl"
fi
python3 - "$tmp/h.json" "$n" "${peer:+$tmp/p.json}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
n = int(sys.argv[2])
print(f"mb-ingest: mean {r['mean']:.3f} s -> {n / r['mean']:,.0f} lines/s (min {r['min']:.3f} s, max {r['max']:.3f} s)")
if len(sys.argv) > 3 and sys.argv[3]:
    p = json.load(open(sys.argv[3]))["results"][0]
    print(f"sqlite-utils: mean {p['mean']:.3f} s -> {n / p['mean']:,.0f} lines/s; mb-ingest is {p['mean'] / r['mean']:.1f}x faster")
PY
rm -f "$tmp/u.db"*
/usr/bin/time -f "peak RSS %M KiB" ./target/release/mb-ingest --quiet --db "$tmp/u.db" "$tmp/api.jsonl"
