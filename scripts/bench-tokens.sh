#!/bin/sh
# Throughput of mb-tokens on CLIProxyAPI usage-queue JSONL (issue target:
# >= 100 MB/s into priced lines, memory flat). Figures go to docs/mb-tokens.md.
#
# usage: scripts/bench-tokens.sh [MEGABYTES]      (default 256)
#   BENCH_DATA=/path/file.jsonl to reuse a generated file.
set -eu
cd "$(dirname "$0")/.."
MB=${1:-256}
DATA=${BENCH_DATA:-${TMPDIR:-/tmp}/mb-usage-queue-${MB}MB.jsonl}
command -v hyperfine >/dev/null || { echo "hyperfine missing (apt-get install -y hyperfine)" >&2; exit 2; }
cargo build --release --bin mb-tokens
BIN=target/release/mb-tokens
[ -s "$DATA" ] || python3 scripts/gen-usage-queue.py "$MB" > "$DATA"
BYTES=$(wc -c < "$DATA")
LINES=$(wc -l < "$DATA")
echo "input: $DATA, $BYTES bytes, $LINES lines"
# One model in the data is deliberately unknown to the price table, so
# mb-tokens exits 1 (unpriced lines): -i keeps hyperfine going.
hyperfine -i --warmup 1 --runs 5 --export-json "${TMPDIR:-/tmp}/bench-tokens.json" \
  "cat $DATA > /dev/null" \
  "$BIN --customer bench --vm bench $DATA > /dev/null 2>&1"
python3 - "$BYTES" "${TMPDIR:-/tmp}/bench-tokens.json" <<'PY'
import json, sys
b = int(sys.argv[1]); r = json.load(open(sys.argv[2]))["results"][1]
print("mb-tokens: mean %.3f s (min %.3f) = %.0f MB/s (best %.0f MB/s)" % (
    r["mean"], r["min"], b / r["mean"] / 1e6, b / r["min"] / 1e6))
PY
# Peak memory: the same for a 10x smaller file means it does not grow.
if [ -x /usr/bin/time ]; then
  head -c $((BYTES / 10)) "$DATA" | sed '$d' > "$DATA.small"
  for f in "$DATA.small" "$DATA"; do
    /usr/bin/time -f "max RSS %M KiB for $(wc -c < "$f") bytes" \
      "$BIN" --customer bench --vm bench "$f" > /dev/null 2> "${TMPDIR:-/tmp}/bench-tokens.err" || true
    tail -1 "${TMPDIR:-/tmp}/bench-tokens.err"
  done
  rm -f "$DATA.small"
fi
