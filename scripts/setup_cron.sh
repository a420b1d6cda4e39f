#!/bin/sh
# setup_cron.sh: install the metering jobs of one VM into the user's crontab.
#
# The jobs live in one marked block:
#
#   # BEGIN mb (managed by setup_cron.sh; edits inside are overwritten)
#   ...
#   # END mb
#
# Running the script again replaces that block in place (a run that would
# change nothing says so and does not touch the crontab); --uninstall removes
# only the block. Every other line of the crontab is kept as it is.
#
# Jobs (times in the cron daemon's zone):
#   */5 * * * *    mb-sample | mb-ingest              (resource sample)
#   7 * * * *      mb-tokens --state ... LOG | mb-ingest   (priced LLM usage)
#   2-59/5 * * * * mb-ingest --spool SPOOL             (mb-activity events)
#   10 0 * * *     mb-report summary --period day   -> REPORTS/daily/YYYY-MM-DD.csv
#   20 0 * * 1     mb-report summary --period week  -> REPORTS/weekly/YYYY-Www.csv
#   30 0 1 * *     mb-report summary --month last --as-of (00:30 on the 1st)
#                                                   -> REPORTS/monthly/YYYY-MM.csv
#   @reboot        mb-dashboard                       (127.0.0.1)
#
# Each job appends its stderr (diagnostics, mb-ingest's summary line) to
# LOG_DIR/<job>.log. Exit status 1 of a tool means "ran, with warnings" and is
# only logged; any other failure also prints one line on the job's stdout, so
# cron mails it (MAILTO) or logs it to syslog.
#
# Exit status: 0 done (or nothing to do); 2 bad usage or a bad environment
# (missing binaries, no crontab command, unset customer, unwritable state
# directory), with a message naming the fix and nothing changed.
set -u

PROG=setup_cron.sh
BEGIN_MARK='# BEGIN mb (managed by setup_cron.sh; edits inside are overwritten)'
END_MARK='# END mb'

usage() {
    cat <<'EOF'
Usage: setup_cron.sh [OPTIONS]

Install (or with --uninstall remove) the mb metering jobs in this user's crontab.

Options (environment variable in brackets):
  --customer ID       customer of this VM [CUSTOMER_ID, MB_CUSTOMER_ID] (required)
  --vm ID             VM id [VM_ID, MB_VM_ID] (default: the host name)
  --bin-dir DIR       where the mb-* binaries are [MB_BIN_DIR]
                      (default: the directory of mb-ingest on PATH, else /usr/local/bin)
  --state-dir DIR     state files, spool, logs [MB_STATE_DIR]
                      (default: state_dir of the config, else /var/lib/mb as root,
                      $XDG_STATE_HOME/mb otherwise)
  --spool DIR         mb-activity spool [MB_SPOOL] (default: the spool mb-activity
                      uses: [activity] spool of the config, else STATE_DIR/spool)
  --log-dir DIR       job logs [MB_LOG_DIR] (default: STATE_DIR/log)
  --reports-dir DIR   report CSV files [MB_REPORTS_DIR] (default: STATE_DIR/reports)
  --db PATH           database [MB_DB] (default: the tools' own default)
  --config FILE       mb.toml passed to every tool [MB_CONFIG]
  --tokens-log FILE   proxy usage log read by mb-tokens [MB_TOKENS_LOG]
                      (default: /var/log/cliproxy/usage.jsonl)
  --no-tokens         no mb-tokens job (no LLM proxy on this VM)
  --no-dashboard      no mb-dashboard at boot
  --dashboard-port N  port of the dashboard (default: its own, 8080)
  --dry-run           print the crontab that would be installed, change nothing
  --uninstall         remove the mb block, keep every other line
  -h, --help          this text

Examples:
  CUSTOMER_ID=acme VM_ID=vm-acme-1 scripts/setup_cron.sh --dry-run
  scripts/setup_cron.sh --customer acme --vm vm-acme-1 --bin-dir /usr/local/bin
  scripts/setup_cron.sh --uninstall
EOF
}

die() { # usage error or bad environment: exit 2, nothing changed
    printf '%s: %s\n' "$PROG" "$1" >&2
    [ $# -gt 1 ] && printf '  fix: %s\n' "$2" >&2
    exit 2
}

say() { printf '%s: %s\n' "$PROG" "$*"; }

need_arg() { [ $# -ge 2 ] || die "$1 needs a value" "see $PROG --help"; }

# Defaults from the environment.
CUSTOMER=${CUSTOMER_ID:-${MB_CUSTOMER_ID:-}}
VM=${VM_ID:-${MB_VM_ID:-}}
BIN_DIR=${MB_BIN_DIR:-}
STATE_DIR=${MB_STATE_DIR:-}
SPOOL=${MB_SPOOL:-}
LOG_DIR=${MB_LOG_DIR:-}
REPORTS_DIR=${MB_REPORTS_DIR:-}
DB=${MB_DB:-}
CONFIG=${MB_CONFIG:-}
TOKENS_LOG=${MB_TOKENS_LOG:-/var/log/cliproxy/usage.jsonl}
TOKENS=yes
DASHBOARD=yes
DASH_PORT=
DRY_RUN=no
UNINSTALL=no

while [ $# -gt 0 ]; do
    case $1 in
    --customer) need_arg "$@"; CUSTOMER=$2; shift ;;
    --vm) need_arg "$@"; VM=$2; shift ;;
    --bin-dir) need_arg "$@"; BIN_DIR=$2; shift ;;
    --state-dir) need_arg "$@"; STATE_DIR=$2; shift ;;
    --spool) need_arg "$@"; SPOOL=$2; shift ;;
    --log-dir) need_arg "$@"; LOG_DIR=$2; shift ;;
    --reports-dir) need_arg "$@"; REPORTS_DIR=$2; shift ;;
    --db) need_arg "$@"; DB=$2; shift ;;
    --config) need_arg "$@"; CONFIG=$2; shift ;;
    --tokens-log) need_arg "$@"; TOKENS_LOG=$2; shift ;;
    --no-tokens) TOKENS=no ;;
    --no-dashboard) DASHBOARD=no ;;
    --dashboard-port) need_arg "$@"; DASH_PORT=$2; shift ;;
    --dry-run) DRY_RUN=yes ;;
    --uninstall) UNINSTALL=yes ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1" "see $PROG --help" ;;
    esac
    shift
done

# ---------------------------------------------------------------- the crontab

# --dry-run only prints: without a crontab command it shows the block alone.
HAVE_CRONTAB=yes
command -v crontab >/dev/null 2>&1 || HAVE_CRONTAB=no
[ "$HAVE_CRONTAB" = yes ] || [ "$DRY_RUN" = yes ] ||
    die "no crontab command on PATH" \
        "install cron (Debian/Ubuntu: apt-get install cron; RHEL/Fedora: dnf install cronie), or use the systemd units (scripts/install.sh --systemd)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mb-cron.XXXXXX") || die "cannot create a temp directory" "check TMPDIR"
trap 'rm -rf "$TMP"' EXIT HUP INT TERM

# The current crontab; "no crontab for USER" is an empty one.
read_crontab() {
    if [ "$HAVE_CRONTAB" = no ]; then
        say "no crontab command here: showing the mb block alone" >&2
        : >"$TMP/current"
        return 0
    fi
    if crontab -l >"$TMP/current" 2>"$TMP/err"; then
        return 0
    fi
    if grep -qi 'no crontab' "$TMP/err"; then
        : >"$TMP/current"
        return 0
    fi
    die "crontab -l failed: $(cat "$TMP/err")" "check that this user may use cron (/etc/cron.allow, /etc/cron.deny)"
}

# Replace (or with an empty block file, remove) the marked block of
# $TMP/current into $TMP/new; append the block when there is none.
splice() {
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" -v blk="$1" '
        function emit(  l) { while ((getline l < blk) > 0) print l; close(blk) }
        $0 == b { if (inb) { bad = 1 } inb = 1; found = 1; emit(); next }
        inb && $0 == e { inb = 0; next }
        inb { next }
        $0 == e { bad = 1 }
        { print }
        END {
            if (inb || bad) exit 3
            if (!found) emit()
        }' "$TMP/current" >"$TMP/new"
    rc=$?
    [ $rc -eq 3 ] && die "the crontab has an unbalanced mb block (a '$BEGIN_MARK' or '$END_MARK' line without its pair)" \
        "edit it with crontab -e: remove the stray marker line(s), then run $PROG again"
    [ $rc -eq 0 ] || die "could not edit the crontab text (awk exit $rc)"
}

install_crontab() {
    if cmp -s "$TMP/current" "$TMP/new"; then
        say "crontab unchanged ($1)"
        return 0
    fi
    crontab "$TMP/new" 2>"$TMP/err" ||
        die "crontab refused the new table: $(cat "$TMP/err")" "check the cron daemon's log; the old crontab is unchanged"
}

if [ "$UNINSTALL" = yes ]; then
    read_crontab
    : >"$TMP/block"
    splice "$TMP/block"
    if cmp -s "$TMP/current" "$TMP/new"; then
        say "no mb block in the crontab; nothing to remove"
        exit 0
    fi
    if [ "$DRY_RUN" = yes ]; then
        cat "$TMP/new"
        exit 0
    fi
    install_crontab "no mb block"
    say "removed the mb block from the crontab; other lines kept"
    say "state, spool, logs and reports were left in place"
    exit 0
fi

# ------------------------------------------------------------- checks first

ident_ok() { # the contract's identifier pattern
    printf '%s' "$1" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
}

# Paths end up unquoted in cron lines run by /bin/sh: allow only characters
# that need no quoting there (and no %, which cron turns into a newline).
path_ok() {
    case $1 in
    /*) printf '%s' "$1" | grep -Eq '^[A-Za-z0-9._/+@:,=-]+$' ;;
    *) return 1 ;;
    esac
}

[ -n "$CUSTOMER" ] ||
    die "no customer given" "pass --customer ID or set CUSTOMER_ID (register it on the billing host: mb-customer add ID --tier TIER)"
ident_ok "$CUSTOMER" ||
    die "customer id '$CUSTOMER' is not 1-64 of [A-Za-z0-9._-] starting with a letter or digit" "pass a valid --customer"
if [ -z "$VM" ]; then
    VM=$(hostname 2>/dev/null || uname -n)
fi
ident_ok "$VM" ||
    die "vm id '$VM' is not 1-64 of [A-Za-z0-9._-] starting with a letter or digit" "pass a valid --vm (or VM_ID)"

if [ -z "$BIN_DIR" ]; then
    if p=$(command -v mb-ingest 2>/dev/null) && [ -n "$p" ]; then
        BIN_DIR=$(dirname "$p")
    else
        BIN_DIR=/usr/local/bin
    fi
fi
# The spool mb-activity writes to when it is given no --spool: [activity]
# spool, else state_dir/spool, of the config it reads (--config, else the
# tools' default file), else the default state directory's spool. The cron
# job must read that same directory, so it is the default here too.
toml_key() { # toml_key FILE SECTION KEY: a string value ('' = top level)
    awk -v want="$2" -v key="$3" '
        /^[ \t]*\[/ { sec = $0; gsub(/^[ \t]*\[[ \t]*|[ \t]*\].*$/, "", sec); next }
        sec == want && $0 ~ "^[ \t]*" key "[ \t]*=" {
            v = $0; sub(/^[^=]*=[ \t]*/, "", v)
            if (v ~ /^"/) { sub(/^"/, "", v); sub(/".*$/, "", v) }
            else if (v ~ /^\047/) { sub(/^\047/, "", v); sub(/\047.*$/, "", v) }
            else next
            print v; exit
        }' "$1" 2>/dev/null
}
if [ "$(id -u)" -eq 0 ]; then
    DEFAULT_STATE=/var/lib/mb
    TOOL_CONFIG=${CONFIG:-/etc/mb/mb.toml}
else
    DEFAULT_STATE=${XDG_STATE_HOME:-${HOME:?HOME is not set}/.local/state}/mb
    TOOL_CONFIG=${CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/mb/mb.toml}
fi
CFG_STATE=
CFG_SPOOL=
if [ -r "$TOOL_CONFIG" ]; then
    CFG_STATE=$(toml_key "$TOOL_CONFIG" "" state_dir)
    CFG_SPOOL=$(toml_key "$TOOL_CONFIG" activity spool)
fi
TOOL_SPOOL=${CFG_SPOOL:-${CFG_STATE:-$DEFAULT_STATE}/spool}
GIVEN_STATE=$STATE_DIR
GIVEN_SPOOL=$SPOOL
STATE_DIR=${STATE_DIR:-${CFG_STATE:-$DEFAULT_STATE}}
if [ -z "$SPOOL" ]; then
    if [ -z "$GIVEN_STATE" ]; then SPOOL=$TOOL_SPOOL; else SPOOL=$STATE_DIR/spool; fi
fi
LOG_DIR=${LOG_DIR:-$STATE_DIR/log}
REPORTS_DIR=${REPORTS_DIR:-$STATE_DIR/reports}

for v in BIN_DIR STATE_DIR SPOOL LOG_DIR REPORTS_DIR; do
    eval "val=\$$v"
    path_ok "$val" ||
        die "$v '$val' must be an absolute path of letters, digits and ._/+@:,=- only (it goes unquoted into cron lines)" \
            "choose another path, or a symlink to it"
done
for v in DB CONFIG; do
    eval "val=\$$v"
    [ -z "$val" ] || path_ok "$val" ||
        die "$v '$val' must be an absolute path of letters, digits and ._/+@:,=- only" "choose another path"
done
if [ "$TOKENS" = yes ]; then
    path_ok "$TOKENS_LOG" ||
        die "tokens log '$TOKENS_LOG' must be an absolute path of letters, digits and ._/+@:,=- only" \
            "pass --tokens-log PATH, or --no-tokens"
fi
case $DASH_PORT in
'') ;;
*[!0-9]*) die "--dashboard-port '$DASH_PORT' is not a number" ;;
esac

BINS="mb-sample mb-ingest mb-report"
[ "$TOKENS" = yes ] && BINS="$BINS mb-tokens"
[ "$DASHBOARD" = yes ] && BINS="$BINS mb-dashboard"
missing=
for b in $BINS; do
    [ -x "$BIN_DIR/$b" ] || missing="$missing $b"
done
[ -z "$missing" ] ||
    die "missing in $BIN_DIR:$missing" \
        "install them (scripts/install.sh, or cargo install --path . --root /usr/local), or pass --bin-dir DIR where they are"
[ -z "$CONFIG" ] || [ -r "$CONFIG" ] ||
    die "config file $CONFIG is not readable" "create it (scripts/mb.toml.example) or drop --config"

# The directories the jobs write must be creatable and writable by this user.
writable_or_creatable() {
    d=$1
    while [ ! -e "$d" ]; do
        d=$(dirname "$d")
    done
    [ -d "$d" ] && [ -w "$d" ]
}
for d in "$STATE_DIR" "$SPOOL" "$LOG_DIR" "$REPORTS_DIR"; do
    writable_or_creatable "$d" ||
        die "$d is not writable by $(id -un 2>/dev/null || id -u)" \
            "create it for this user (sudo install -d -m 0700 -o $(id -un 2>/dev/null || id -u) $d) or pass another --state-dir"
done
if [ -n "$DB" ]; then
    writable_or_creatable "$(dirname "$DB")" ||
        die "the database directory $(dirname "$DB") is not writable" \
            "create it for this user with mode 0700, or pass another --db"
fi
if [ "$SPOOL" != "$TOOL_SPOOL" ]; then
    # --state-dir or --spool chose another spool than mb-activity's: say
    # how to make them one, or `mb-activity run` events would never load.
    if [ -r "$TOOL_CONFIG" ]; then where="$TOOL_CONFIG"; else where="$TOOL_CONFIG (create it)"; fi
    if [ -n "$GIVEN_SPOOL" ]; then line="[activity] spool = \"$SPOOL\""; else line="state_dir = \"$STATE_DIR\""; fi
    say "warning: mb-activity writes its events to $TOOL_SPOOL but this crontab loads $SPOOL;" \
        "put $line in $where${CONFIG:+ (passed to every job)}, or pass --spool $SPOOL to every mb-activity call" >&2
fi
if [ "$TOKENS" = yes ] && [ ! -e "$TOKENS_LOG" ]; then
    say "warning: $TOKENS_LOG does not exist yet; the tokens job logs an error until it does (or use --no-tokens)" >&2
fi

# ----------------------------------------------------------------- the block

COMMON=
[ -n "$CONFIG" ] && COMMON="$COMMON --config $CONFIG"
DBARG=
[ -n "$DB" ] && DBARG=" --db $DB"
WHO="--customer $CUSTOMER --vm $VM"

# fail JOB LOG: the tail of a cron line. Exit 1 is "ran, with warnings" (only
# logged); anything else also prints one line, which cron mails.
fail() {
    printf '|| { r=$?; [ $r -eq 1 ] || echo "mb: %s failed (exit $r); see %s"; }' "$1" "$2"
}

# report SCHEDULE NAME PERIOD_ARGS FILE_FORMAT: a summary CSV written to a
# temp name and renamed, so a reader never sees half a file. $t is 12 hours
# ago (run just after midnight, it is inside the period being reported; it
# uses only date -d @N, which GNU and busybox date both have).
report() {
    dir=$REPORTS_DIR/$2
    log=$LOG_DIR/report.log
    printf '%s t=$(($(date +\\%%s) - 43200)); u=$(date -u -d @$t +\\%%Y-\\%%m-\\%%dT\\%%H:\\%%M:\\%%SZ); f=%s/$(date -d @$t +%s).csv; %s/mb-report%s%s summary %s --customer %s --csv >$f.tmp 2>>%s; r=$?; if [ $r -le 1 ]; then mv $f.tmp $f; else echo "mb: %s report failed (exit $r); see %s"; fi\n' \
        "$1" "$dir" "$4" "$BIN_DIR" "$DBARG" "$COMMON" "$3" "$CUSTOMER" "$log" "$2" "$log"
}

{
    echo "$BEGIN_MARK"
    echo "# customer $CUSTOMER, vm $VM; logs in $LOG_DIR; exit 1 = warnings (logged), other failures are mailed"
    log=$LOG_DIR/sample.log
    printf '*/5 * * * * { { %s/mb-sample%s %s --state %s/sample.state 2>>%s %s >&3; } | %s/mb-ingest%s%s >>%s 2>&1 %s; } 3>&1\n' \
        "$BIN_DIR" "$COMMON" "$WHO" "$STATE_DIR" "$log" "$(fail mb-sample "$log")" \
        "$BIN_DIR" "$DBARG" "$COMMON" "$log" "$(fail "mb-ingest of samples" "$log")"
    if [ "$TOKENS" = yes ]; then
        log=$LOG_DIR/tokens.log
        # Into the spool, not a pipe: the state advances only once the priced
        # lines are a durable file, so a failing mb-ingest loses nothing (the
        # file waits in the spool for the next run).
        printf '7 * * * * %s/mb-tokens%s %s --state %s/tokens.state --spool %s %s 2>>%s %s; %s/mb-ingest%s%s --spool %s >>%s 2>&1 %s\n' \
            "$BIN_DIR" "$COMMON" "$WHO" "$STATE_DIR" "$SPOOL" "$TOKENS_LOG" "$log" "$(fail mb-tokens "$log")" \
            "$BIN_DIR" "$DBARG" "$COMMON" "$SPOOL" "$log" "$(fail "mb-ingest --spool" "$log")"
    fi
    log=$LOG_DIR/spool.log
    printf '2-59/5 * * * * %s/mb-ingest%s%s --spool %s >>%s 2>&1 %s\n' \
        "$BIN_DIR" "$DBARG" "$COMMON" "$SPOOL" "$log" "$(fail "mb-ingest --spool" "$log")"
    report '10 0 * * *' daily '--period day --date $u' '\%Y-\%m-\%d'
    report '20 0 * * 1' weekly '--period week --date $u' '\%G-W\%V'
    # --as-of: the ingest cutoff is the job's own scheduled time (00:30 on the
    # 1st, as UTC), so a re-run later in the month reproduces the same CSV.
    report '30 0 1 * *' monthly '--month last --as-of $(date -u -d "$(date +\%Y-\%m-01) 00:30" +\%Y-\%m-\%dT\%H:\%M:\%SZ)' '\%Y-\%m'
    if [ "$DASHBOARD" = yes ]; then
        log=$LOG_DIR/dashboard.log
        port=
        [ -n "$DASH_PORT" ] && port=" --port $DASH_PORT"
        printf '@reboot %s/mb-dashboard%s%s --customer %s%s >>%s 2>&1 %s\n' \
            "$BIN_DIR" "$DBARG" "$COMMON" "$CUSTOMER" "$port" "$log" "$(fail mb-dashboard "$log")"
    fi
    echo "$END_MARK"
} >"$TMP/block"

# Vixie cron and cronie cut command lines at 1000 characters.
if awk 'length($0) > 990 { exit 1 }' "$TMP/block"; then :; else
    die "a cron line would be longer than cron accepts (paths too long)" "use shorter paths (for example a symlink)"
fi

read_crontab
splice "$TMP/block"

if [ "$DRY_RUN" = yes ]; then
    cat "$TMP/new"
    exit 0
fi

for d in "$STATE_DIR" "$SPOOL" "$LOG_DIR" "$REPORTS_DIR" \
    "$REPORTS_DIR/daily" "$REPORTS_DIR/weekly" "$REPORTS_DIR/monthly"; do
    if [ ! -d "$d" ]; then
        (umask 077 && mkdir -p "$d") || die "cannot create $d" "create it by hand with mode 0700"
        say "created $d (mode 0700)"
    fi
done

install_crontab "the mb block is already up to date"
if ! cmp -s "$TMP/current" "$TMP/new"; then
    if grep -qxF "$BEGIN_MARK" "$TMP/current"; then
        say "replaced the mb block in the crontab (other lines kept)"
    else
        say "added the mb block to the crontab (other lines kept)"
    fi
fi
say "customer $CUSTOMER, vm $VM, binaries in $BIN_DIR"
say "every 5 min: mb-sample | mb-ingest; hourly: mb-tokens ${TOKENS_LOG} ($TOKENS); every 5 min: mb-ingest --spool $SPOOL"
say "reports: $REPORTS_DIR/{daily,weekly,monthly}; logs: $LOG_DIR; dashboard at boot: $DASHBOARD"
say "activity hooks must write to the same spool: eval \"\$(mb-activity init bash --spool $SPOOL)\""
say "undo with: $PROG --uninstall"
exit 0
