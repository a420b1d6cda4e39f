#!/usr/bin/env bash
# Set up an mb PostgreSQL store: roles, grants, row-level security, VM logins.
#
#   pg-setup.sh init DB [OWNER]          create the owner role (default mb_owner) and DB
#   pg-setup.sh grant DB                 apply scripts/pg-setup.sql (after the schema exists;
#                                        again after every mb upgrade)
#   pg-setup.sh add-vm DB ROLE CUSTOMER  a VM login (member of mb_ingest) that can only
#                                        write and read CUSTOMER's usage; prints its
#                                        ~/.pgpass line
#   pg-setup.sh add-reader DB ROLE report|dashboard
#                                        a read-only login; prints its ~/.pgpass line
#
# Runs psql as a superuser: on the database host, `sudo -u postgres
# scripts/pg-setup.sh ...`; elsewhere set PGHOST/PGPORT/PGUSER (libpq's
# variables, password in ~/.pgpass). PGPASS_HOST/PGPASS_PORT set the host
# and port written into the printed ~/.pgpass lines (default: this host's
# name and 5432). Exit status: 0 done, 2 usage or a failed step.
# See docs/postgres.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PSQL=${PSQL:-psql}

usage() {
  sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "pg-setup.sh: $*" >&2
  exit 2
}

# A role or database name: what mb's docs use, nothing that needs quoting.
check_name() {
  [[ $1 =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "invalid name \"$1\" (lower-case letters, digits, _)"
}

psql_db() {
  local db=$1
  shift
  "$PSQL" -X -q -v ON_ERROR_STOP=1 --no-psqlrc -d "$db" "$@"
}

random_password() {
  # 32 characters from the kernel's CSPRNG, safe in a .pgpass line. tr
  # ends by SIGPIPE when head has enough, hence the || true and the check.
  local pw
  pw=$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true)
  [ ${#pw} -eq 32 ] || die "could not read /dev/urandom"
  echo "$pw"
}

pgpass_line() {
  local db=$1 role=$2 pw=$3
  echo "${PGPASS_HOST:-$(hostname -f 2>/dev/null || hostname)}:${PGPASS_PORT:-5432}:$db:$role:$pw"
}

# Create login role $2 in group $3 (or reset its password) and print its
# pgpass line. The password travels to the server in the statement, so
# statement logging is switched off for this session first.
make_login() {
  local db=$1 role=$2 group=$3 pw
  pw=$(random_password) || exit 2
  psql_db "$db" -v role="$role" -v grp="$group" -v pw="$pw" <<'SQL' >/dev/null
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') AS missing \gset
\if :missing
CREATE ROLE :"role" LOGIN;
\endif
GRANT :"grp" TO :"role";
ALTER ROLE :"role" LOGIN PASSWORD :'pw';
SQL
  pgpass_line "$db" "$role" "$pw"
}

[ $# -ge 2 ] || usage
cmd=$1
db=$2
check_name "$db"

case $cmd in
  init)
    [ $# -le 3 ] || usage
    owner=${3:-mb_owner}
    check_name "$owner"
    psql_db postgres -v owner="$owner" -v db="$db" <<'SQL'
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') AS missing \gset
\if :missing
CREATE ROLE :"owner" LOGIN;
\endif
SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') AS missing \gset
\if :missing
CREATE DATABASE :"db" OWNER :"owner" ENCODING 'UTF8' TEMPLATE template0;
\endif
SQL
    echo "database $db owned by $owner. Next: create the schema as $owner" >&2
    echo "  (mb-ingest --db 'postgresql://$owner@HOST/$db' </dev/null), then: $0 grant $db" >&2
    ;;
  grant)
    [ $# -eq 2 ] || usage
    psql_db "$db" -f "$here/pg-setup.sql"
    ;;
  add-vm)
    [ $# -eq 4 ] || usage
    role=$3
    customer=$4
    check_name "$role"
    [ -n "$customer" ] || die "empty customer id"
    psql_db "$db" -c "SELECT 1 FROM mb_vm_roles LIMIT 0" >/dev/null 2>&1 ||
      die "database $db has no mb_vm_roles table; run: $0 grant $db"
    line=$(make_login "$db" "$role" mb_ingest) || exit 2
    psql_db "$db" -v role="$role" -v customer="$customer" <<'SQL'
INSERT INTO mb_vm_roles (role_name, customer_id) VALUES (:'role', :'customer')
ON CONFLICT (role_name) DO UPDATE SET customer_id = EXCLUDED.customer_id;
SQL
    echo "$line"
    ;;
  add-reader)
    [ $# -eq 4 ] || usage
    role=$3
    check_name "$role"
    case $4 in
      report) group=mb_report ;;
      dashboard) group=mb_dashboard ;;
      *) die "the reader kind is report or dashboard, not \"$4\"" ;;
    esac
    make_login "$db" "$role" "$group"
    ;;
  *)
    usage
    ;;
esac
