#!/usr/bin/env bash
# Benchmark mb-activity against its targets (issue 5):
#   - `run` adds at most 2 ms to the wrapped command;
#   - the shell hook costs under 5 ms per interactive command.
#
# Usage: scripts/bench-activity.sh [N_COMMANDS]   (needs hyperfine, script(1))
# Builds the release binary, works in a temp dir, prints hyperfine tables
# and the derived per-command figures.
set -euo pipefail

n=${1:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v hyperfine >/dev/null || { echo "hyperfine is needed (apt-get install -y hyperfine)" >&2; exit 2; }

# The static build is what scripts/install.sh installs; the dynamic one
# (cargo install, target/release) is measured too, for comparison.
cargo build --release --quiet --bin mb-activity
dyn=$root/target/release/mb-activity
bin=$root/$(scripts/build-static-activity.sh) || bin=$dyn
work=$(mktemp -d /tmp/mb-bench-activity.XXXXXX)
trap 'rm -rf "$work"' EXIT
export MB_CUSTOMER_ID=acme MB_VM_ID=vm-1 MB_CONFIG=/dev/null HOME=$work
spool=$work/spool

echo "== 1. run overhead: mb-activity run -- true vs true (fork+exec of /bin/true)"
echo "   static: $bin"
hyperfine -N --warmup 20 --runs 500 --export-json "$work/run.json" \
    --command-name 'true' '/bin/true' \
    --command-name 'mb-activity run -- true' "$bin run --spool $spool -- /bin/true" \
    --command-name 'dynamic mb-activity run -- true' "$dyn run --spool $spool -- /bin/true"
python3 - "$work/run.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["true"]
for name in ("mb-activity run -- true", "dynamic mb-activity run -- true"):
    w = r[name]
    print(f"{name}: overhead mean {1000*(w['mean']-base['mean']):.2f} ms, "
          f"median {1000*(w['median']-base['median']):.2f} ms")
EOF

echo
echo "== 2. the background job of the hook: mb-activity hook (one spool file)"
hyperfine -N --warmup 20 --runs 300 \
    "$bin hook --spool $spool --start 1795900000.25 --end 1795900001.5 --exit-code 0 --pid 1 -- 'make -j4 CFLAGS=-O2'"

echo
echo "== 3. shell hook cost: $n interactive bash commands, without and with the hook"
{
    for ((i = 0; i < n; i++)); do echo ":"; echo "echo $i >/dev/null"; done | head -n "$n"
    echo exit
} >"$work/input"
printf 'HISTFILE=/dev/null\nHISTCONTROL=ignoreboth\nPS1="$ "\n' >"$work/rc-plain"
{ cat "$work/rc-plain"; "$bin" init bash --spool "$spool"; } >"$work/rc-hook"
hyperfine --warmup 2 --runs 10 --export-json "$work/hook.json" \
    --command-name plain "script -qfec 'bash --noprofile --rcfile $work/rc-plain -i' /dev/null <$work/input >/dev/null" \
    --command-name hooked "script -qfec 'bash --noprofile --rcfile $work/rc-hook -i' /dev/null <$work/input >/dev/null"
python3 - "$work/hook.json" "$n" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
n = int(sys.argv[2])
d = r["hooked"]["mean"] - r["plain"]["mean"]
print(f"hook cost per command (foreground, prompt to prompt): {1000*d/n:.2f} ms")
EOF
echo "events written: $(find "$spool" -name '*.jsonl' | wc -l)"
