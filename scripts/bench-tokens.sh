#!/bin/sh
# Throughput of mb-tokens on CLIProxyAPI usage-queue JSONL, side by side with
# jq reading the same file and extracting four fields of each record (the
# issue's peer: mb-tokens must be at least 5x jq). Both run in one hyperfine
# session, alternating, so the machine's speed (which varies up to 3x on a
# shared host) affects both alike. Figures go to README.md and
# docs/mb-tokens.md.
#
# usage: scripts/bench-tokens.sh [MEGABYTES]      (default 300: about 300,000 records)
#   BENCH_DATA=/path/file.jsonl to reuse a generated file.
set -eu
cd "$(dirname "$0")/.."
MB=${1:-300}
TMP=${TMPDIR:-/tmp}
DATA=${BENCH_DATA:-$TMP/mb-usage-queue-${MB}MB.jsonl}
for t in hyperfine jq python3; do
  command -v "$t" >/dev/null || { echo "$t missing (apt-get install -y $t)" >&2; exit 2; }
done
cargo build --release --bin mb-tokens
BIN=target/release/mb-tokens
[ -s "$DATA" ] || python3 scripts/gen-usage-queue.py "$MB" > "$DATA"
BYTES=$(wc -c < "$DATA")
LINES=$(wc -l < "$DATA")
echo "input: $DATA, $BYTES bytes, $LINES lines; $(nproc) cores, $(uname -m)"
# mb-tokens needs its client-key secret; a private one for the benchmark.
KEYDIR=$(mktemp -d)
trap 'rm -rf "$KEYDIR"' EXIT
export MB_CLIENT_KEY="$KEYDIR/client.key"
# One model in the data is deliberately unknown to the price table, so
# mb-tokens exits 1 (unpriced lines): -i keeps hyperfine going.
JQ="jq -c '[.timestamp, .model, .tokens.input_tokens, .tokens.output_tokens]' $DATA > /dev/null"
MBT="$BIN --customer bench --vm bench $DATA > /dev/null 2>&1"
hyperfine -i --warmup 1 --runs 5 --export-json "$TMP/bench-tokens.json" "$JQ" "$MBT"
python3 - "$BYTES" "$TMP/bench-tokens.json" <<'PY'
import json, sys
b = int(sys.argv[1]); r = json.load(open(sys.argv[2]))["results"]
jq, mbt = r[0], r[1]
for name, x in (("jq (4 fields)", jq), ("mb-tokens", mbt)):
    print("%-14s mean %.3f s (min %.3f) = %.0f MB/s" % (name, x["mean"], x["min"], b / x["mean"] / 1e6))
print("ratio mb-tokens / jq: %.1fx (means), %.1fx (best runs)" % (jq["mean"] / mbt["mean"], jq["min"] / mbt["min"]))
PY
# Peak memory: the same for a 10x smaller file means it does not grow.
if [ -x /usr/bin/time ]; then
  head -c $((BYTES / 10)) "$DATA" | sed '$d' > "$DATA.small"
  for f in "$DATA.small" "$DATA"; do
    /usr/bin/time -f "max RSS %M KiB for $(wc -c < "$f") bytes" \
      "$BIN" --customer bench --vm bench "$f" > /dev/null 2> "$TMP/bench-tokens.err" || true
    tail -1 "$TMP/bench-tokens.err"
  done
  rm -f "$DATA.small"
fi
