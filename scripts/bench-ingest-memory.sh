#!/usr/bin/env bash
# Peak RSS of mb-ingest on hostile input (issue 12): a 1 GiB line between
# two valid lines, and a 1 GiB stream without any newline. Both are read
# through without being buffered (at most MAX_LINE_BYTES + 1 of a line is
# held), rejected with FILE:LINE, and the valid lines are stored.
#   scripts/bench-ingest-memory.sh [BYTES]     (default 1073741824)
# Prints the peak RSS of each run (GNU time, %M) and checks the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=${1:-1073741824}
cargo build --release --quiet --bin mb-ingest
bin=./target/release/mb-ingest
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
valid() {
    printf '{"v":1,"kind":"api","id":"mem-%s","ts":"2026-11-03T10:00:00Z","customer_id":"acme","vm_id":"vm-1","provider":"openai","model":"gpt-4o","price_key":null,"tokens_in":1,"tokens_out":0,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":null,"priced":false,"price_table":null}\n' "$1"
}
x() { head -c "$bytes" /dev/zero | tr '\0' 'x'; }
export MB_CONFIG=/dev/null
echo "input: a line of $bytes bytes between two valid lines"
{ valid a; x; echo; valid b; } |
    /usr/bin/time -f "peak RSS %M KiB, %e s" "$bin" --db "$tmp/u.db" || [ $? -eq 1 ]
echo "input: a stream of $bytes bytes without a newline"
x | /usr/bin/time -f "peak RSS %M KiB, %e s" "$bin" --db "$tmp/u.db" || [ $? -eq 1 ]
sqlite3 "$tmp/u.db" "SELECT 'stored api rows: ' || count(*) FROM api_usage;
  SELECT 'reject: line ' || line_no || ', ' || line_len || ' bytes, ' || length(line) || ' kept' FROM rejects;"
