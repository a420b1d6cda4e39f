#!/usr/bin/env bash
# Benchmark one-shot mb-sample runs with a state file (the cron case).
#
# Target (issue 3): at most 5 ms wall and 4 MiB peak RSS per run.
# Measures the real /proc and /sys of this machine (default mounts and
# interfaces), with an existing state file so every timed run does the full
# cycle: lock, read state, read /proc, statvfs, write the line, fsync'd
# atomic state replace.
#
# Usage: scripts/bench-sample.sh            (builds --release first)
#        SKIP_BUILD=1 scripts/bench-sample.sh
set -euo pipefail

cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install -y hyperfine" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing: apt-get install -y time" >&2; exit 2; }

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release --bin mb-sample
fi
bin="${CARGO_TARGET_DIR:-target}/release/mb-sample"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
state="$work/sample.state"
run=("$bin" --customer bench --vm bench-vm --config /dev/null --state "$state")
# --config /dev/null: an empty config, so a machine's /etc/mb/mb.toml does not change the run.

"${run[@]}" >/dev/null  # first run writes the state

echo "== wall time (hyperfine, 200 runs after 20 warm-up runs)"
hyperfine --warmup 20 --runs 200 -N --export-json "$work/h.json" "${run[*]}"
python3 - "$work/h.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"mean {r['mean']*1e3:.2f} ms, median {r['median']*1e3:.2f} ms, "
      f"min {r['min']*1e3:.2f} ms, max {r['max']*1e3:.2f} ms")
EOF

echo "== peak RSS (/usr/bin/time -v, 20 runs, worst)"
worst=0
for _ in $(seq 20); do
    kb=$(/usr/bin/time -v "${run[@]}" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}')
    [ "$kb" -gt "$worst" ] && worst=$kb
done
echo "max RSS ${worst} KiB ($(awk -v k="$worst" 'BEGIN {printf "%.2f", k/1024}') MiB)"
