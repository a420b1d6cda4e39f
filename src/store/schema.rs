//! The schema, as an append-only list of migrations.
//!
//! `PRAGMA user_version` is the number of migrations applied. A migration is
//! never edited or reordered once released; changes are new entries at the
//! end. The tables keep the names documented for admins (DESIGN.md section
//! 6); the `*_v` views give friendly units for ad hoc `sqlite3` queries and
//! are documented in README.md ("The database").
//!
//! Storage choices, and why:
//! - event times are `ts_ns`, INTEGER nanoseconds since the Unix epoch (UTC):
//!   exact for any RFC 3339 fraction, and compared as numbers (text times with
//!   varying fraction widths do not sort like the instants they name);
//! - costs are `cost_nusd`, INTEGER nano-USD (DESIGN.md section 4);
//! - `ingested_at` is RFC 3339 text with a fixed 6-digit fraction, so it
//!   sorts like time and `--as-of` cutoffs compare as text;
//! - `UNIQUE(id)` per usage table is the idempotency key `UNIQUE(kind, id)`
//!   (one table per kind).

/// Migrations in order; index + 1 is the `user_version` after applying it.
pub const MIGRATIONS: &[&str] = &[
    // 1: the foundation.
    r#"
CREATE TABLE ingest_runs (
    run_id       INTEGER PRIMARY KEY,
    tool         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    started_at   TEXT    NOT NULL,
    finished_at  TEXT,
    status       TEXT    NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed')),
    read         INTEGER NOT NULL DEFAULT 0,
    inserted     INTEGER NOT NULL DEFAULT 0,
    duplicates   INTEGER NOT NULL DEFAULT 0,
    conflicts    INTEGER NOT NULL DEFAULT 0,
    rejected     INTEGER NOT NULL DEFAULT 0,
    error        TEXT
);

CREATE TABLE api_usage (
    id                 TEXT    NOT NULL UNIQUE,
    ts_ns              INTEGER NOT NULL,
    customer_id        TEXT    NOT NULL,
    vm_id              TEXT    NOT NULL,
    provider           TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    price_key          TEXT,
    tokens_in          INTEGER NOT NULL,
    tokens_out         INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    cost_nusd          INTEGER,
    priced             INTEGER NOT NULL,
    price_table        TEXT,
    request_id         TEXT,
    failed             INTEGER NOT NULL,
    auth_type          TEXT    NOT NULL,
    client             TEXT,
    service_tier       TEXT,
    source_format      TEXT,
    ingested_at        TEXT    NOT NULL,
    run_id             INTEGER NOT NULL
);
CREATE INDEX api_usage_customer_ts ON api_usage (customer_id, ts_ns);

CREATE TABLE resource_usage (
    id                   TEXT    NOT NULL UNIQUE,
    ts_ns                INTEGER NOT NULL,
    customer_id          TEXT    NOT NULL,
    vm_id                TEXT    NOT NULL,
    interval_seconds     REAL,
    status               TEXT    NOT NULL,
    flags                TEXT    NOT NULL,
    boot_id              TEXT    NOT NULL,
    seq                  INTEGER NOT NULL,
    cpu_percent          REAL,
    cpu_busy_ticks       INTEGER,
    cpu_total_ticks      INTEGER,
    ncpu                 INTEGER,
    clk_tck              INTEGER,
    memory_percent       REAL,
    memory_used_bytes    INTEGER,
    memory_total_bytes   INTEGER,
    disk_used_bytes      INTEGER,
    disk_total_bytes     INTEGER,
    net_in_bytes         INTEGER,
    net_out_bytes        INTEGER,
    cpu_busy_ticks_cum   INTEGER,
    cpu_total_ticks_cum  INTEGER,
    net_in_bytes_cum     INTEGER,
    net_out_bytes_cum    INTEGER,
    errors               TEXT    NOT NULL,
    ingested_at          TEXT    NOT NULL,
    run_id               INTEGER NOT NULL
);
CREATE INDEX resource_usage_customer_ts ON resource_usage (customer_id, ts_ns);
CREATE INDEX resource_usage_vm_boot_ts ON resource_usage (vm_id, boot_id, ts_ns);

CREATE TABLE activity_log (
    id                TEXT    NOT NULL UNIQUE,
    ts_ns             INTEGER NOT NULL,
    customer_id       TEXT    NOT NULL,
    vm_id             TEXT    NOT NULL,
    activity_type     TEXT    NOT NULL,
    pattern_name      TEXT,
    command           TEXT,
    duration_seconds  REAL    NOT NULL,
    exit_code         INTEGER,
    user              TEXT,
    ingested_at       TEXT    NOT NULL,
    run_id            INTEGER NOT NULL
);
CREATE INDEX activity_log_customer_ts ON activity_log (customer_id, ts_ns);

-- Lines that failed validation, verbatim, so they can be fixed and re-ingested.
CREATE TABLE rejects (
    reject_id    INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL,
    source       TEXT    NOT NULL,
    line_no      INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    line         BLOB    NOT NULL,
    rejected_at  TEXT    NOT NULL
);

-- Lines whose id was already stored with different content. The stored row
-- is never overwritten; the new version is kept here for a human to decide.
CREATE TABLE conflicts (
    conflict_id  INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    line_no      INTEGER NOT NULL,
    line         TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL
);
CREATE INDEX conflicts_kind_id ON conflicts (kind, id);

CREATE TABLE customers (
    customer_id         TEXT PRIMARY KEY,
    stripe_customer_id  TEXT,
    created_at          TEXT NOT NULL
);

CREATE TABLE customer_vms (
    customer_id  TEXT NOT NULL REFERENCES customers (customer_id),
    vm_id        TEXT NOT NULL,
    added_at     TEXT NOT NULL,
    PRIMARY KEY (customer_id, vm_id)
);

-- Dated history of tier and status, one row per change of one field. The
-- value of a field at time T is the row with the greatest (effective_ns,
-- change_id) not after T, so a back-dated change affects only its field.
CREATE TABLE customer_changes (
    change_id     INTEGER PRIMARY KEY,
    customer_id   TEXT    NOT NULL REFERENCES customers (customer_id),
    field         TEXT    NOT NULL CHECK (field IN ('tier', 'status')),
    value         TEXT    NOT NULL,
    effective_ns  INTEGER NOT NULL,
    recorded_at   TEXT    NOT NULL
);
CREATE INDEX customer_changes_customer ON customer_changes (customer_id, field, effective_ns);

CREATE VIEW api_usage_v AS
SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ts_ns / 1e9, 'unixepoch') AS ts,
       customer_id, vm_id, provider, model, price_key,
       tokens_in, tokens_out, cache_read_tokens, cache_write_tokens, reasoning_tokens,
       tokens_in + tokens_out + cache_read_tokens + cache_write_tokens AS total_tokens,
       cost_nusd / 1e9 AS cost_usd, priced, failed, auth_type, request_id, id, ingested_at
FROM api_usage;

CREATE VIEW resource_usage_v AS
SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ts_ns / 1e9, 'unixepoch') AS ts,
       customer_id, vm_id, status, interval_seconds, cpu_percent, memory_percent,
       memory_used_bytes / 1e6 AS memory_used_mb, memory_total_bytes / 1e6 AS memory_total_mb,
       disk_used_bytes / 1e9 AS disk_used_gb, disk_total_bytes / 1e9 AS disk_total_gb,
       net_in_bytes / 1e6 AS net_in_mb, net_out_bytes / 1e6 AS net_out_mb,
       flags, errors, boot_id, seq, id, ingested_at
FROM resource_usage;

CREATE VIEW activity_log_v AS
SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ts_ns / 1e9, 'unixepoch') AS ts,
       customer_id, vm_id, activity_type, pattern_name, command, duration_seconds,
       exit_code, user, id, ingested_at
FROM activity_log;

CREATE VIEW customers_v AS
SELECT c.customer_id,
       (SELECT value FROM customer_changes h WHERE h.customer_id = c.customer_id AND h.field = 'tier'
          AND h.effective_ns <= CAST((julianday('now') - 2440587.5) * 86400e9 AS INTEGER)
          ORDER BY h.effective_ns DESC, h.change_id DESC LIMIT 1) AS tier,
       (SELECT value FROM customer_changes h WHERE h.customer_id = c.customer_id AND h.field = 'status'
          AND h.effective_ns <= CAST((julianday('now') - 2440587.5) * 86400e9 AS INTEGER)
          ORDER BY h.effective_ns DESC, h.change_id DESC LIMIT 1) AS status,
       c.stripe_customer_id,
       (SELECT group_concat(vm_id, ' ') FROM (SELECT vm_id FROM customer_vms v
          WHERE v.customer_id = c.customer_id ORDER BY vm_id)) AS vms,
       c.created_at
FROM customers c;
"#,
    // 2: rollups for interactive reports on large databases.
    //
    // api_rollup sums api_usage per customer, UTC hour of the event, model
    // and ingest hour. mb-ingest maintains it in the same transaction as the
    // rows (so it always matches what is committed). Reports read whole
    // hours from it and only the partial hours at a period's edges from
    // api_usage. The ingest-hour column makes `--as-of` cutoffs exact: rows
    // of ingest hours after the cutoff are left out, and the few rows of the
    // cutoff's own hour ingested after it are subtracted (through the
    // ingested_at index; since migration 4 by rowid).
    r#"
CREATE TABLE api_rollup (
    customer_id        TEXT    NOT NULL,
    hour_ns            INTEGER NOT NULL,
    provider           TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    price_key          TEXT    NOT NULL,
    price_table        TEXT    NOT NULL,
    ingest_hour_ns     INTEGER NOT NULL,
    requests           INTEGER NOT NULL,
    failed_requests    INTEGER NOT NULL,
    unpriced_requests  INTEGER NOT NULL,
    tokens_in          INTEGER NOT NULL,
    tokens_out         INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    cost_nusd          INTEGER NOT NULL,
    PRIMARY KEY (customer_id, hour_ns, provider, model, price_key, price_table, ingest_hour_ns)
) WITHOUT ROWID;
CREATE INDEX api_rollup_hour ON api_rollup (hour_ns);
CREATE INDEX api_usage_ingested ON api_usage (ingested_at);

INSERT INTO api_rollup
SELECT customer_id,
       ts_ns - (((ts_ns % 3600000000000) + 3600000000000) % 3600000000000),
       provider, model, coalesce(price_key, ''), coalesce(price_table, ''),
       CAST(strftime('%s', substr(ingested_at, 1, 19)) AS INTEGER) / 3600 * 3600000000000,
       count(*), sum(failed), sum(NOT priced), sum(tokens_in), sum(tokens_out),
       sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens),
       coalesce(sum(cost_nusd), 0)
FROM api_usage
GROUP BY 1, 2, 3, 4, 5, 6, 7;
"#,
    // 3: a covering index for reports' resource queries. One customer's
    // month is tens of thousands of samples spread over the whole table (all
    // VMs sample at once); reading them through (customer_id, ts_ns) costs a
    // random page read per row. With every column reports use in the index,
    // the month is one sequential index range. It replaces the plain
    // (customer_id, ts_ns) index, whose prefix it shares.
    r#"
CREATE INDEX resource_usage_report ON resource_usage (
    customer_id, ts_ns, vm_id, boot_id, status, interval_seconds, memory_percent,
    disk_used_bytes, cpu_busy_ticks_cum, cpu_total_ticks_cum, net_in_bytes_cum, net_out_bytes_cum
);
DROP INDEX resource_usage_customer_ts;
"#,
    // 4: no index on api_usage.ingested_at. Maintaining it was a twelfth of
    // a large ingest's time, for one rare query (the rows of an `--as-of`
    // cutoff's own ingest hour). mb-ingest now keeps ingested_at
    // non-decreasing in rowid order (a transaction takes the write lock
    // before it reads the clock, and never stamps an earlier time than the
    // last stored row's), so that query finds its rows by binary search
    // over rowid (store::report).
    r#"
DROP INDEX api_usage_ingested;
"#,
    // 5: an honest audit trail. A run killed mid-way (SIGKILL, OOM, power)
    // stayed `running` forever; now each run records its process (pid and
    // the kernel's start time of that pid, which tells a reused pid apart),
    // and the next run marks a `running` row whose process is gone as
    // `abandoned`, keeping the counts it had committed (they are updated in
    // each batch's own transaction, so they are exactly what is stored).
    // SQLite cannot alter a CHECK constraint, hence the rebuild; no table
    // references ingest_runs.
    r#"
CREATE TABLE ingest_runs_new (
    run_id       INTEGER PRIMARY KEY,
    tool         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    started_at   TEXT    NOT NULL,
    finished_at  TEXT,
    status       TEXT    NOT NULL
                 CHECK (status IN ('running', 'ok', 'partial', 'failed', 'abandoned')),
    read         INTEGER NOT NULL DEFAULT 0,
    inserted     INTEGER NOT NULL DEFAULT 0,
    duplicates   INTEGER NOT NULL DEFAULT 0,
    conflicts    INTEGER NOT NULL DEFAULT 0,
    rejected     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    pid          INTEGER,
    pid_start    INTEGER
);
INSERT INTO ingest_runs_new (run_id, tool, source, started_at, finished_at, status, read,
                             inserted, duplicates, conflicts, rejected, error)
SELECT run_id, tool, source, started_at, finished_at, status, read,
       inserted, duplicates, conflicts, rejected, error
FROM ingest_runs;
DROP TABLE ingest_runs;
ALTER TABLE ingest_runs_new RENAME TO ingest_runs;
CREATE INDEX ingest_runs_running ON ingest_runs (status) WHERE status = 'running';
"#,
    // 6: rejects and conflicts once per source and line content. A re-run
    // of a file with bad lines recorded them again every time (21 runs: 7x
    // the distinct lines). Each row now carries the SHA-256 of the full
    // line (and rejects its full length: a too-long line keeps only its
    // first 4096 bytes), unique per source, and mb-ingest inserts with OR
    // IGNORE. Rows from before have no hash and are left as they are.
    r#"
ALTER TABLE rejects ADD COLUMN line_len INTEGER;
ALTER TABLE rejects ADD COLUMN line_sha256 BLOB;
CREATE UNIQUE INDEX rejects_source_line ON rejects (source, line_sha256);
ALTER TABLE conflicts ADD COLUMN line_sha256 BLOB;
CREATE UNIQUE INDEX conflicts_source_line ON conflicts (source, line_sha256);
"#,
    // 7: the audit trail of `mb-tokens reprice`. A reprice run prices
    // stored `priced = 0` api rows that a price table now covers; it
    // updates the rows and api_rollup in one transaction and records here
    // what it changed, so a changed invoice can always be explained: one
    // reprice_runs row per run that changed something, one reprice_log row
    // per api row (its old and new cost and price key, and the table that
    // priced it). Priced rows are never touched, so a row appears here at
    // most once.
    r#"
CREATE TABLE reprice_runs (
    reprice_id    INTEGER PRIMARY KEY,
    repriced_at   TEXT    NOT NULL,
    price_tables  TEXT    NOT NULL,
    since_ns      INTEGER,
    rows          INTEGER NOT NULL,
    cost_nusd     INTEGER NOT NULL
);
CREATE TABLE reprice_log (
    reprice_id     INTEGER NOT NULL REFERENCES reprice_runs (reprice_id),
    id             TEXT    NOT NULL,
    old_cost_nusd  INTEGER,
    new_cost_nusd  INTEGER NOT NULL,
    old_price_key  TEXT,
    new_price_key  TEXT    NOT NULL,
    price_table    TEXT    NOT NULL
);
CREATE UNIQUE INDEX reprice_log_id ON reprice_log (id);
"#,
    // 8: withdrawn customer changes. A dated tier or status change recorded
    // by mistake is withdrawn, never deleted: the withdrawal is its own row
    // (when, why), the change stays visible in `mb-customer show`, and every
    // reader of the history (the invoice, `customers_v`, mb-customer) goes
    // through `customer_changes_live`, which leaves withdrawn changes out.
    r#"
CREATE TABLE customer_withdrawals (
    change_id     INTEGER PRIMARY KEY REFERENCES customer_changes (change_id),
    withdrawn_at  TEXT    NOT NULL,
    reason        TEXT
);
CREATE VIEW customer_changes_live AS
SELECT * FROM customer_changes
WHERE change_id NOT IN (SELECT change_id FROM customer_withdrawals);

DROP VIEW customers_v;
CREATE VIEW customers_v AS
SELECT c.customer_id,
       (SELECT value FROM customer_changes_live h WHERE h.customer_id = c.customer_id AND h.field = 'tier'
          AND h.effective_ns <= CAST((julianday('now') - 2440587.5) * 86400e9 AS INTEGER)
          ORDER BY h.effective_ns DESC, h.change_id DESC LIMIT 1) AS tier,
       (SELECT value FROM customer_changes_live h WHERE h.customer_id = c.customer_id AND h.field = 'status'
          AND h.effective_ns <= CAST((julianday('now') - 2440587.5) * 86400e9 AS INTEGER)
          ORDER BY h.effective_ns DESC, h.change_id DESC LIMIT 1) AS status,
       c.stripe_customer_id,
       (SELECT group_concat(vm_id, ' ') FROM (SELECT vm_id FROM customer_vms v
          WHERE v.customer_id = c.customer_id ORDER BY vm_id)) AS vms,
       c.created_at
FROM customers c;
"#,
    // 9: the resource rollup (store::resource_rollup): exact hourly sums per
    // customer, VM, hour of the sample and ingest hour, kept by mb-ingest in
    // the transaction that stores the samples, so reports and the dashboard
    // read whole hours from it instead of every sample. resource_streams
    // lists each (customer, VM) with its first and last sample time. Reads
    // go through one stream at a time in (time, boot, rowid) order, so the
    // stream index replaces migration 3's covering index, which served the
    // old whole-month scans. The rollup of an existing database is rebuilt
    // from its samples when this migration is applied (Store::migrate).
    r#"
CREATE TABLE resource_rollup (
    customer_id     TEXT    NOT NULL,
    vm_id           TEXT    NOT NULL,
    hour_ns         INTEGER NOT NULL,
    ingest_hour_ns  INTEGER NOT NULL,
    samples         INTEGER NOT NULL,
    last_ts_ns      INTEGER,
    max_disk_bytes  INTEGER,
    mem_sample_sum  INTEGER NOT NULL,
    mem_samples     INTEGER NOT NULL,
    intervals       INTEGER NOT NULL,
    busy_ticks      INTEGER NOT NULL,
    total_ticks     INTEGER NOT NULL,
    cpu_intervals   INTEGER NOT NULL,
    cpu_skipped     INTEGER NOT NULL,
    net_in_bytes    INTEGER NOT NULL,
    net_out_bytes   INTEGER NOT NULL,
    net_intervals   INTEGER NOT NULL,
    covered_ns      INTEGER NOT NULL,
    mem_w_hi        INTEGER NOT NULL,
    mem_w_lo        INTEGER NOT NULL,
    mem_t_ns        INTEGER NOT NULL,
    reboots         INTEGER NOT NULL,
    resets          INTEGER NOT NULL,
    gaps            INTEGER NOT NULL,
    PRIMARY KEY (customer_id, vm_id, hour_ns, ingest_hour_ns)
) WITHOUT ROWID;
CREATE TABLE resource_streams (
    customer_id  TEXT    NOT NULL,
    vm_id        TEXT    NOT NULL,
    first_ts_ns  INTEGER NOT NULL,
    last_ts_ns   INTEGER NOT NULL,
    PRIMARY KEY (customer_id, vm_id)
) WITHOUT ROWID;
CREATE INDEX resource_usage_stream ON resource_usage (customer_id, vm_id, ts_ns, boot_id);
DROP INDEX resource_usage_report;
"#,
    // 10: api and activity events per (customer, VM) and UTC hour: count,
    // billable tokens, cost and the latest event time, kept by mb-ingest in
    // the transaction that stores the rows (and by reprice). The fleet view,
    // `/api/v1/vms` and `/metrics` need each VM's last event and its
    // month-to-date usage; neither usage table has a VM index, so without
    // this they read every row of the window (seconds on 10M rows). Exact:
    // whole hours come from here, the partial hours at a window's edges from
    // the rows (see store::vm_hours). Filled from the stored rows here.
    r#"
CREATE TABLE vm_event_hours (
    kind         TEXT    NOT NULL,
    hour_ns      INTEGER NOT NULL,
    customer_id  TEXT    NOT NULL,
    vm_id        TEXT    NOT NULL,
    events       INTEGER NOT NULL,
    tokens       INTEGER NOT NULL,
    cost_nusd    INTEGER NOT NULL,
    last_ts_ns   INTEGER NOT NULL,
    PRIMARY KEY (kind, hour_ns, customer_id, vm_id)
) WITHOUT ROWID;
INSERT INTO vm_event_hours
SELECT 'api', ts_ns - (((ts_ns % 3600000000000) + 3600000000000) % 3600000000000),
       customer_id, vm_id, count(*),
       sum(tokens_in + tokens_out + cache_read_tokens + cache_write_tokens),
       coalesce(sum(cost_nusd), 0), max(ts_ns)
FROM api_usage GROUP BY 2, 3, 4;
INSERT INTO vm_event_hours
SELECT 'activity', ts_ns - (((ts_ns % 3600000000000) + 3600000000000) % 3600000000000),
       customer_id, vm_id, count(*), 0, 0, max(ts_ns)
FROM activity_log GROUP BY 2, 3, 4;
"#,
    // 11: the host of each ingest run. With a central PostgreSQL store,
    // writers on many hosts share `ingest_runs`, and a `running` run is
    // judged abandoned only by a writer on its own host (another host's
    // pid is not in our /proc). SQLite records it too, so both stores
    // behave alike (store::schema_pg starts at this version).
    r#"
ALTER TABLE ingest_runs ADD COLUMN host TEXT;
"#,
];

/// The `user_version` after the migration that creates the resource rollup
/// (its tables are filled from existing samples when it is applied).
pub fn resource_rollup_version() -> i64 {
    MIGRATIONS
        .iter()
        .position(|m| m.contains("CREATE TABLE resource_rollup"))
        .map_or(i64::MAX, |i| i as i64 + 1)
}

/// The schema version this binary writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}
