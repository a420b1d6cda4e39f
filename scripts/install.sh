#!/bin/sh
# install.sh: install mb on this machine (binaries, man pages, a default
# /etc/mb/mb.toml, the state directory with safe modes) and schedule it with
# either the user's crontab (setup_cron.sh) or systemd timers.
#
#   sudo scripts/install.sh --systemd --customer acme --vm vm-acme-1
#   scripts/install.sh --cron --prefix ~/.local --config-dir ~/.config/mb \
#       --state-dir ~/.local/state/mb --customer acme --vm vm-acme-1
#   scripts/install.sh --systemd --destdir /tmp/pkg     # stage for a package
#
# --destdir ROOT writes every file under ROOT (the paths written *into* files
# stay the final ones, as with make DESTDIR=) and performs no system action
# (no useradd, chown, systemctl or crontab); it prints them instead.
# --dry-run prints every action and changes nothing.
#
# Exit status: 0 installed; 2 usage error or bad environment (no binaries,
# unwritable target, missing tool), with a message naming the fix.
set -u

PROG=install.sh
SRC=$(cd "$(dirname "$0")/.." && pwd) || exit 2

usage() {
    cat <<'EOF'
Usage: install.sh [--cron | --systemd | --no-schedule] [OPTIONS]

  --cron               schedule with this user's crontab (scripts/setup_cron.sh)
  --systemd            install and enable the systemd units and timers (root)
  --no-schedule        install files only
  --prefix DIR         binaries in DIR/bin, man pages in DIR/share/man (default /usr/local)
  --destdir DIR        stage everything under DIR; no system changes (packaging, tests)
  --bin-src DIR        take the built binaries from DIR (default: target/release,
                       built with cargo build --release --locked if missing, and
                       mb-activity built static where possible)
  --config-dir DIR     where mb.toml goes (default /etc/mb)
  --state-dir DIR      database, state, spool, logs, reports (default /var/lib/mb)
  --logrotate-dir DIR  where the logrotate snippet goes (default /etc/logrotate.d; 'none' skips it)
  --user NAME          the system user of the systemd units (default mb; created if missing)
  --customer ID        customer_id for the new mb.toml and the cron jobs [CUSTOMER_ID]
  --vm ID              vm_id [VM_ID] (default: the host name)
  --tokens-log FILE    proxy usage log for mb-tokens (cron mode) [MB_TOKENS_LOG]
  --no-tokens          cron mode: no mb-tokens job
  --no-dashboard       no dashboard at boot
  --dry-run            print what would be done
  -h, --help           this text
EOF
}

die() {
    printf '%s: %s\n' "$PROG" "$1" >&2
    [ $# -gt 1 ] && printf '  fix: %s\n' "$2" >&2
    exit 2
}
say() { printf '%s: %s\n' "$PROG" "$*"; }
need_arg() { [ $# -ge 2 ] || die "$1 needs a value" "see $PROG --help"; }

MODE=
PREFIX=/usr/local
DESTDIR=
BIN_SRC=
CONFIG_DIR=/etc/mb
STATE_DIR=/var/lib/mb
SVC_USER=mb
LOGROTATE_DIR=/etc/logrotate.d
CUSTOMER=${CUSTOMER_ID:-${MB_CUSTOMER_ID:-}}
VM=${VM_ID:-${MB_VM_ID:-}}
CRON_EXTRA=
DASHBOARD=yes
DRY_RUN=no

while [ $# -gt 0 ]; do
    case $1 in
    --cron) MODE=cron ;;
    --systemd) MODE=systemd ;;
    --no-schedule) MODE=none ;;
    --prefix) need_arg "$@"; PREFIX=$2; shift ;;
    --destdir) need_arg "$@"; DESTDIR=$2; shift ;;
    --bin-src) need_arg "$@"; BIN_SRC=$2; shift ;;
    --config-dir) need_arg "$@"; CONFIG_DIR=$2; shift ;;
    --state-dir) need_arg "$@"; STATE_DIR=$2; shift ;;
    --logrotate-dir) need_arg "$@"; LOGROTATE_DIR=$2; shift ;;
    --user) need_arg "$@"; SVC_USER=$2; shift ;;
    --customer) need_arg "$@"; CUSTOMER=$2; shift ;;
    --vm) need_arg "$@"; VM=$2; shift ;;
    --tokens-log) need_arg "$@"; CRON_EXTRA="$CRON_EXTRA --tokens-log $2"; shift ;;
    --no-tokens) CRON_EXTRA="$CRON_EXTRA --no-tokens" ;;
    --no-dashboard) DASHBOARD=no; CRON_EXTRA="$CRON_EXTRA --no-dashboard" ;;
    --dry-run) DRY_RUN=yes ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1" "see $PROG --help" ;;
    esac
    shift
done

[ -n "$MODE" ] || die "choose how the jobs are scheduled" "pass --cron, --systemd or --no-schedule"
for v in PREFIX CONFIG_DIR STATE_DIR; do
    eval "val=\$$v"
    case $val in
    /*) ;;
    *) die "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be an absolute path (got '$val')" ;;
    esac
done
case $DESTDIR in
'' | /*) ;;
*) DESTDIR=$(pwd)/$DESTDIR ;;
esac
[ -z "$VM" ] && VM=$(hostname 2>/dev/null || uname -n)
if [ -n "$CUSTOMER" ]; then
    printf '%s' "$CUSTOMER" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' ||
        die "customer id '$CUSTOMER' is not 1-64 of [A-Za-z0-9._-]" "pass a valid --customer"
fi
printf '%s' "$VM" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' ||
    die "vm id '$VM' is not 1-64 of [A-Za-z0-9._-]" "pass a valid --vm"

BINS="mb-sample mb-tokens mb-activity mb-ingest mb-customer mb-report mb-dashboard"
BIN_DIR=$PREFIX/bin
MAN_DIR=$PREFIX/share/man
SHARE=$PREFIX/share/mb
R=$DESTDIR # shorthand: the staging root ('' = this machine)
SYSTEM=yes # perform system actions (users, chown, systemctl, crontab)
[ -n "$DESTDIR" ] && SYSTEM=no

run() { # run a command, or print it with --dry-run
    if [ "$DRY_RUN" = yes ]; then
        echo "+ $*"
    else
        "$@" || die "failed: $*"
    fi
}
later() { # a system action skipped under --destdir
    say "skipped under --destdir, run on the target: $*"
}

# ---------------------------------------------------------------- checks

if [ -z "$BIN_SRC" ]; then
    BIN_SRC=$SRC/target/release
    missing=
    for b in $BINS; do [ -x "$BIN_SRC/$b" ] || missing=yes; done
    if [ -n "$missing" ]; then
        command -v cargo >/dev/null 2>&1 ||
            die "no built binaries in $BIN_SRC and no cargo to build them" \
                "install Rust (https://rustup.rs) or pass --bin-src DIR with the mb-* binaries"
        # Said before it starts: a release build takes minutes (README,
        # "Install", has the measured times), and cargo's own progress
        # follows on stderr.
        say "building: cargo build --release --locked (in $SRC); this takes several minutes, progress follows"
        if [ "$DRY_RUN" = yes ]; then
            echo "+ (cd $SRC && cargo build --release --locked)"
        else
            (cd "$SRC" && cargo build --release --locked) ||
                die "cargo build failed" "see the compiler output above"
        fi
    fi
    # mb-activity runs around every wrapped and interactive command: a
    # static build starts faster (scripts/build-static-activity.sh says
    # why). Where it cannot be built, the dynamic one is installed.
    ACTIVITY_BIN=$BIN_SRC/mb-activity
    if command -v cargo >/dev/null 2>&1; then
        say "mb-activity: building a static executable (scripts/build-static-activity.sh; another few minutes the first time)"
        if [ "$DRY_RUN" = yes ]; then
            echo "+ $SRC/scripts/build-static-activity.sh"
            ACTIVITY_BIN="$SRC/target/$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')/release/mb-activity"
        elif static=$("$SRC/scripts/build-static-activity.sh"); then
            ACTIVITY_BIN=$SRC/$static
            say "mb-activity: static build ($static)"
        else
            say "mb-activity: no static build here; installing the dynamic one"
        fi
    fi
fi
if [ "$DRY_RUN" = no ]; then
    for b in $BINS; do
        [ -x "$BIN_SRC/$b" ] || die "$BIN_SRC/$b is missing or not executable" "build with cargo build --release, or pass --bin-src DIR"
    done
fi
if [ "$SYSTEM" = yes ] && [ "$MODE" = systemd ]; then
    [ "$(id -u)" -eq 0 ] || die "--systemd installs system units and a system user" "run it as root (sudo), or use --cron for a per-user install"
    command -v systemctl >/dev/null 2>&1 || die "no systemctl: this machine does not run systemd" "use --cron"
fi
if [ "$MODE" = cron ]; then
    [ -n "$CUSTOMER" ] || die "no customer given for the cron jobs" "pass --customer ID or set CUSTOMER_ID"
    if [ "$SYSTEM" = yes ]; then
        command -v crontab >/dev/null 2>&1 ||
            die "no crontab command on PATH" "install cron (apt-get install cron / dnf install cronie), or use --systemd"
    fi
fi
# Every target directory must be creatable.
for d in "$R$BIN_DIR" "$R$MAN_DIR" "$R$CONFIG_DIR" "$R$STATE_DIR" $( [ "$LOGROTATE_DIR" = none ] || echo "$R$LOGROTATE_DIR" ); do
    p=$d
    while [ ! -e "$p" ]; do p=$(dirname "$p"); done
    [ -d "$p" ] && [ -w "$p" ] ||
        die "cannot write under $p (for $d)" "run as root (sudo), or choose --prefix/--state-dir/--config-dir you can write"
done

# ---------------------------------------------------------------- files

say "binaries -> $R$BIN_DIR"
run mkdir -p "$R$BIN_DIR"
for b in $BINS; do
    src=$BIN_SRC/$b
    [ "$b" = mb-activity ] && src=${ACTIVITY_BIN:-$src}
    run install -m 0755 "$src" "$R$BIN_DIR/$b"
done
run install -m 0755 "$SRC/scripts/stripe-upload.py" "$R$BIN_DIR/stripe-upload"

say "man pages -> $R$MAN_DIR"
run mkdir -p "$R$MAN_DIR/man1" "$R$MAN_DIR/man5"
for m in "$SRC"/man/*.1; do run install -m 0644 "$m" "$R$MAN_DIR/man1/"; done
for m in "$SRC"/man/*.5; do run install -m 0644 "$m" "$R$MAN_DIR/man5/"; done

# Shell completions, generated from the clap definitions (completions/,
# kept current by the man-page test), where bash-completion, zsh and fish
# look for them under the prefix.
COMP_BASH=$PREFIX/share/bash-completion/completions
COMP_ZSH=$PREFIX/share/zsh/site-functions
COMP_FISH=$PREFIX/share/fish/vendor_completions.d
say "shell completions -> $R$COMP_BASH, $R$COMP_ZSH, $R$COMP_FISH"
run mkdir -p "$R$COMP_BASH" "$R$COMP_ZSH" "$R$COMP_FISH"
for b in $BINS; do
    run install -m 0644 "$SRC/completions/$b.bash" "$R$COMP_BASH/$b"
    run install -m 0644 "$SRC/completions/_$b" "$R$COMP_ZSH/_$b"
    run install -m 0644 "$SRC/completions/$b.fish" "$R$COMP_FISH/$b.fish"
done

# setup_cron.sh, the units and the example config stay available for later.
run mkdir -p "$R$SHARE"
run install -m 0755 "$SRC/scripts/setup_cron.sh" "$R$SHARE/setup_cron.sh"
run install -m 0644 "$SRC/scripts/mb.toml.example" "$R$SHARE/mb.toml.example"

# Paths inside the shipped templates are the defaults; rewrite them.
subst() {
    sed -e "s|/usr/local/bin/|$BIN_DIR/|g" \
        -e "s|/var/lib/mb|$STATE_DIR|g" \
        -e "s|/etc/mb/|$CONFIG_DIR/|g" \
        -e "s|^User=mb\$|User=$SVC_USER|" -e "s|^Group=mb\$|Group=$SVC_GROUP|" \
        -e "s|su mb mb|su $SVC_USER $SVC_GROUP|" -e "s|create 0600 mb mb|create 0600 $SVC_USER $SVC_GROUP|"
}
if [ "$MODE" = systemd ]; then
    SVC_GROUP=$SVC_USER
else
    SVC_USER=$(id -un)
    SVC_GROUP=$(id -gn)
fi

CONF=$R$CONFIG_DIR/mb.toml
if [ -e "$CONF" ]; then
    say "kept the existing $CONF"
else
    say "config -> $CONF"
    run mkdir -p "$R$CONFIG_DIR"
    if [ "$DRY_RUN" = yes ]; then
        echo "+ write $CONF from scripts/mb.toml.example (state_dir $STATE_DIR, customer ${CUSTOMER:-unset}, vm $VM)"
        [ -n "$CUSTOMER" ] || say "warning: no --customer: set customer_id in $CONF before the jobs run" >&2
    else
        {
            sed -e "s|/var/lib/mb|$STATE_DIR|g" \
                -e "s|^customer_id = \"CUSTOMER\"|customer_id = \"${CUSTOMER:-CUSTOMER}\"|" \
                -e "s|^vm_id = \"VM\"|vm_id = \"$VM\"|" "$SRC/scripts/mb.toml.example"
        } >"$CONF.tmp" && chmod 0644 "$CONF.tmp" && mv "$CONF.tmp" "$CONF" ||
            die "cannot write $CONF"
        if [ -z "$CUSTOMER" ]; then
            # An unset customer must not meter as "CUSTOMER": comment it out.
            sed -i -e 's|^customer_id = "CUSTOMER"|# customer_id = "CUSTOMER"   # set this VM'"'"'s customer|' "$CONF"
            say "warning: no --customer: set customer_id in $CONF before the jobs run" >&2
        fi
    fi
fi

say "state -> $R$STATE_DIR (mode 0700)"
for d in "$STATE_DIR" "$STATE_DIR/spool" "$STATE_DIR/log" "$STATE_DIR/reports" \
    "$STATE_DIR/reports/daily" "$STATE_DIR/reports/weekly" "$STATE_DIR/reports/monthly"; do
    run mkdir -p "$R$d"
    run chmod 0700 "$R$d"
done

if [ "$LOGROTATE_DIR" != none ]; then
    LR=$R$LOGROTATE_DIR/mb
    run mkdir -p "$R$LOGROTATE_DIR"
    if [ "$DRY_RUN" = no ]; then
        subst <"$SRC/scripts/logrotate/mb" >"$LR" && chmod 0644 "$LR" || die "cannot write $LR" "pass --logrotate-dir DIR or none"
    else
        echo "+ write $LR from scripts/logrotate/mb"
    fi
    say "logrotate -> $LR"
fi

# ---------------------------------------------------------------- schedule

case $MODE in
systemd)
    UNIT_DIR=$R/etc/systemd/system
    run mkdir -p "$UNIT_DIR"
    for u in "$SRC"/scripts/systemd/*.service "$SRC"/scripts/systemd/*.timer; do
        n=$(basename "$u")
        if [ "$DASHBOARD" = no ] && [ "$n" = mb-dashboard.service ]; then continue; fi
        if [ "$DRY_RUN" = yes ]; then
            echo "+ install $n -> $UNIT_DIR/$n"
        else
            subst <"$u" >"$UNIT_DIR/$n" && chmod 0644 "$UNIT_DIR/$n" || die "cannot write $UNIT_DIR/$n"
        fi
    done
    say "systemd units -> $UNIT_DIR"
    UNITS="mb-sample.timer mb-tokens.timer mb-ingest-spool.timer mb-report-monthly.timer"
    [ "$DASHBOARD" = yes ] && UNITS="$UNITS mb-dashboard.service"
    if [ "$SYSTEM" = yes ]; then
        if ! id "$SVC_USER" >/dev/null 2>&1; then
            run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
                --shell /usr/sbin/nologin --comment "mb usage metering" "$SVC_USER"
        fi
        run chown -R "$SVC_USER:$SVC_USER" "$STATE_DIR"
        run systemctl daemon-reload
        run systemctl enable --now $UNITS
    else
        later "useradd --system --user-group --home-dir $STATE_DIR --shell /usr/sbin/nologin $SVC_USER"
        later "chown -R $SVC_USER:$SVC_USER $STATE_DIR"
        later "systemctl daemon-reload && systemctl enable --now $UNITS"
    fi
    say "admin commands run as the service user, so the database stays its own: sudo -u $SVC_USER mb-customer add ..."
    ;;
cron)
    # shellcheck disable=SC2086 # CRON_EXTRA is a list of flags
    set -- --customer "$CUSTOMER" --vm "$VM" --bin-dir "$BIN_DIR" --state-dir "$STATE_DIR" \
        --config "$CONFIG_DIR/mb.toml" $CRON_EXTRA
    if [ "$SYSTEM" = yes ]; then
        if [ "$DRY_RUN" = yes ]; then
            echo "+ $SHARE/setup_cron.sh $*"
        else
            "$R$SHARE/setup_cron.sh" "$@" || die "setup_cron.sh failed (see above); the files are installed, the crontab is unchanged"
        fi
    else
        later "$SHARE/setup_cron.sh $*"
    fi
    ;;
none) say "no schedule installed (see $SHARE/setup_cron.sh and scripts/systemd/)" ;;
esac

say "done: $( [ "$DRY_RUN" = yes ] && echo 'dry run, nothing changed' || echo installed )"
exit 0
