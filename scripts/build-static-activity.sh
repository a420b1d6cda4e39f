#!/bin/sh
# build-static-activity.sh: build mb-activity as a static executable and
# print its path.
#
#   scripts/build-static-activity.sh            -> target/<host>/release/mb-activity
#
# Why: mb-activity runs around every wrapped command (`mb-activity run`)
# and after every interactive command (the shell hook), so its start-up is
# paid each time. A static binary skips the dynamic loader (loading libc
# and libgcc_s, relocations, symbol binding): on the 2-core VM `run`'s
# overhead drops from about 2.3 ms to about 1.8 ms (scripts/bench-activity.sh).
# Only mb-activity is built this way; the other tools start once per cron
# run and keep the default dynamic linking.
#
# Static glibc cannot use NSS (getpwuid, getaddrinfo, ...) without the
# matching shared libraries at run time. mb-activity does not call any of
# it (it reads /etc/passwd itself); the build fails if that ever changes
# (the NSS entry points would then be in the binary's symbol table).
#
# Works on *-linux-gnu hosts (glibc's static libraries come with
# libc6-dev). Exit status: 0 built, 2 not possible here (message on stderr).
set -eu

cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
case $host in
*-linux-gnu) ;;
*)
    echo "build-static-activity.sh: host $host is not *-linux-gnu; use the dynamic target/release/mb-activity" >&2
    exit 2
    ;;
esac
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --target keeps the flag off build scripts and proc-macros (which cannot
# be static) and puts the result in its own directory. Thin LTO here only:
# [profile.release] has none (seven LTO links were most of the install
# time), but this one binary starts around every command, and LTO trims
# its start-up (README, "How long it takes").
if ! CARGO_PROFILE_RELEASE_LTO=thin RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$host" --bin mb-activity 2>"$log"; then
    cat "$log" >&2
    echo "build-static-activity.sh: static build failed (is libc6-dev installed?)" >&2
    exit 2
fi
bin=target/$host/release/mb-activity
nss_re='^(getpw(nam|uid|ent)|getgr(nam|gid|ent)|getgrouplist|initgroups|getaddrinfo|gethostby(name|addr)|getservby(name|port))(_r)?$'
if nss=$(nm "$bin" 2>/dev/null | awk '{print $NF}' | grep -E "$nss_re" | head -3) && [ -n "$nss" ]; then
    printf '%s\n' "$nss" >&2
    echo "build-static-activity.sh: mb-activity now uses NSS; a static build would misbehave" >&2
    exit 2
fi
echo "$bin"
