//! The store: every SQL statement of mb, behind one interface over two
//! backends, SQLite (the embedded default) and PostgreSQL (the central
//! store of a fleet; DESIGN.md section 6).
//!
//! The tools call [`Store`], [`Writer`] and the typed query functions of
//! the submodules, whichever backend is open; nothing outside `store` sees
//! a `rusqlite` or `postgres` type. Inside, [`db`] is the backend layer
//! (one connection type, statements written once in the SQL both engines
//! run), [`sqlite`] and [`pg`] hold what only one backend does (opening,
//! migrations, the write lock, the change counter), and the domain
//! submodules (events, report, customers, fleet, reprice, rollups) are
//! written once against the layer. The one place the backends differ in
//! the data path is storing a batch of events: SQLite runs its prepared
//! per-row statements, PostgreSQL copies the batch into a staging table
//! ([`copy`]).
//!
//! A `--db` value is a [`DbSpec`]: a SQLite file path, or a PostgreSQL
//! connection string ([`pgconn::is_postgres`]). Messages name a
//! PostgreSQL database by [`pgconn::display`], never with its password.

mod copy;
pub mod customers;
pub(crate) mod db;
mod events;
pub mod fleet;
mod pg;
pub mod pgconn;
mod pgcopy;
pub mod provenance;
pub mod report;
pub mod reprice;
pub mod resource_rollup;
pub mod schema;
pub mod schema_pg;
mod sqlite;
mod vm_hours;

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use db::{vals, Db, Tx};

use crate::error::{Error, Result};
use crate::events::{Event, Kind};

/// The hash maps and sets of the write path (the rollups' interned strings
/// and sums, a batch's ids): seeded at random per process, as std's are,
/// so input cannot be crafted to collide, but several times faster than
/// std's SipHash on the short keys looked up a dozen times per stored line.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
/// See [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, ahash::RandomState>;

pub use events::InsertResult;
pub use sqlite::BUSY_TIMEOUT;

/// Whether a store is opened for writing (creating and migrating) or only
/// for reading (reports, dashboard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create if missing, migrate, write.
    ReadWrite,
    /// Never write; the file must exist and be fully migrated.
    ReadOnly,
}

/// Which database a `--db` value (or `MB_DB`, or the config's `db`) names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSpec {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (URI or libpq key=value).
    Postgres(String),
}

impl DbSpec {
    /// Classify a `--db` value.
    pub fn parse(v: &std::ffi::OsStr) -> DbSpec {
        match v.to_str() {
            Some(s) if pgconn::is_postgres(s) => DbSpec::Postgres(s.to_string()),
            _ => DbSpec::Sqlite(PathBuf::from(v)),
        }
    }

    /// How messages name the database (a path, or the connection string
    /// without its password).
    pub fn display(&self) -> String {
        match self {
            DbSpec::Sqlite(p) => p.display().to_string(),
            DbSpec::Postgres(s) => pgconn::display(s),
        }
    }

    /// Whether the database may exist: a SQLite file that is there, or any
    /// server (whether it holds a schema is known once connected).
    pub fn exists(&self) -> bool {
        match self {
            DbSpec::Sqlite(p) => p.exists(),
            DbSpec::Postgres(_) => true,
        }
    }

    /// The SQLite file, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            DbSpec::Sqlite(p) => Some(p),
            DbSpec::Postgres(_) => None,
        }
    }
}

impl std::fmt::Display for DbSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl From<&Path> for DbSpec {
    fn from(p: &Path) -> DbSpec {
        DbSpec::parse(p.as_os_str())
    }
}
impl From<&PathBuf> for DbSpec {
    fn from(p: &PathBuf) -> DbSpec {
        DbSpec::parse(p.as_os_str())
    }
}
impl From<PathBuf> for DbSpec {
    fn from(p: PathBuf) -> DbSpec {
        DbSpec::parse(p.as_os_str())
    }
}
impl From<&DbSpec> for DbSpec {
    fn from(s: &DbSpec) -> DbSpec {
        s.clone()
    }
}
impl From<&str> for DbSpec {
    fn from(s: &str) -> DbSpec {
        DbSpec::parse(std::ffi::OsStr::new(s))
    }
}

/// An open database.
pub struct Store {
    conn: Db,
    /// How messages name it (a path, or a redacted connection string).
    path: PathBuf,
}

/// Counts of one ingest run, as kept in `ingest_runs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Non-blank, non-comment lines read.
    pub read: u64,
    /// Stored for the first time.
    pub inserted: u64,
    /// Already stored with the same content.
    pub duplicates: u64,
    /// Already stored with different content (kept out, recorded).
    pub conflicts: u64,
    /// Failed validation (recorded in `rejects`).
    pub rejected: u64,
}

impl Counts {
    /// Add `o` to `self`.
    pub fn add(&mut self, o: &Counts) {
        self.read += o.read;
        self.inserted += o.inserted;
        self.duplicates += o.duplicates;
        self.conflicts += o.conflicts;
        self.rejected += o.rejected;
    }
}

impl Store {
    /// Open (and for [`Mode::ReadWrite`] create and migrate) the database.
    pub fn open(spec: impl Into<DbSpec>, mode: Mode) -> Result<Store> {
        let spec = spec.into();
        let path = PathBuf::from(spec.display());
        let conn = match &spec {
            DbSpec::Sqlite(p) => sqlite::open(p, mode)?,
            DbSpec::Postgres(s) => pg::open(s, &spec.display(), mode)?,
        };
        Ok(Store { conn, path })
    }

    /// An in-memory store (dry runs, tests).
    pub fn open_in_memory() -> Result<Store> {
        Ok(Store {
            conn: sqlite::open_in_memory()?,
            path: PathBuf::from(":memory:"),
        })
    }

    /// How messages name the database: its path, or the connection string
    /// without a password.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this store is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.conn.pg().is_some()
    }

    fn err(&self, ctx: &str) -> impl Fn(db::DbError) -> Error + '_ {
        let ctx = ctx.to_string();
        move |e| Error::db(&self.path, &ctx, e)
    }

    /// Copy the SQLite WAL back into the database (see
    /// [`sqlite::checkpoint`]); nothing on PostgreSQL. Best effort.
    pub fn checkpoint(&self) {
        if let Some(c) = self.conn.sqlite() {
            sqlite::checkpoint(c);
        }
    }

    /// Cap this connection's page cache at `kib` KiB (SQLite; a no-op on
    /// PostgreSQL, whose cache is the server's). mb-dashboard opens one
    /// connection per request, up to 8 at once; with the default 64 MiB
    /// each, one all-customer summary took the process to 72 MiB.
    pub fn limit_page_cache(&self, kib: u32) -> Result<()> {
        if let Db::Sqlite(c) = &self.conn {
            c.execute_batch(&format!("PRAGMA cache_size=-{kib}"))
                .map_err(|e| Error::db(&self.path, "setting the cache size", e))?;
        }
        Ok(())
    }

    /// The database's change counter: it changes whenever anyone commits,
    /// so a kept connection tells whether anything was written since
    /// (SQLite's `PRAGMA data_version`; on PostgreSQL `mb_clock.version`,
    /// bumped by every write transaction).
    pub fn data_version(&self) -> Result<i64> {
        match &self.conn {
            Db::Sqlite(c) => {
                sqlite::data_version(c).map_err(|e| Error::db(&self.path, "querying", e))
            }
            Db::Pg(_) => pg::data_version(&self.conn).map_err(self.err("querying")),
        }
    }

    /// Begin a write transaction holding the backend's write lock (SQLite
    /// `BEGIN IMMEDIATE`, PostgreSQL the writers' advisory lock); it rolls
    /// back when dropped uncommitted.
    pub(crate) fn begin_write(&self) -> Result<Tx<'_>> {
        match &self.conn {
            Db::Sqlite(_) => sqlite::begin_write(&self.conn),
            Db::Pg(_) => pg::begin_write(&self.conn),
        }
        .map_err(self.err("starting a transaction"))
    }

    /// Begin a read-only transaction: every read until it is dropped (it
    /// then rolls back) sees one snapshot of the store, so a report's
    /// queries agree with each other while writers commit, and on
    /// PostgreSQL its statements are prepared once for the transaction
    /// rather than parsed and planned again each time (outside a
    /// transaction they run unnamed, for pgbouncer; see [`db`]).
    pub(crate) fn begin_read(&self) -> Result<Tx<'_>> {
        let sql = match &self.conn {
            // Deferred: the snapshot starts at the first read.
            Db::Sqlite(_) => "BEGIN",
            Db::Pg(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        self.conn
            .batch(sql)
            .map_err(self.err("starting a read transaction"))?;
        Ok(Tx::begun(&self.conn))
    }

    /// Record the start of an ingest run and return its id. First, every
    /// `running` run of this host whose process is gone (killed, crashed)
    /// is marked `abandoned`; its counts are left as they are, because they
    /// were updated in each committed batch's own transaction.
    pub fn begin_run(&mut self, tool: &str, source: &str, started_at: &str) -> Result<i64> {
        self.mark_abandoned(started_at)?;
        let pid = std::process::id();
        self.conn
            .query_row(
                "INSERT INTO ingest_runs (tool, source, started_at, status, pid, pid_start, host) \
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6) RETURNING run_id",
                vals![
                    tool,
                    source,
                    started_at,
                    pid,
                    process_start(pid),
                    host_name()
                ],
                |r| r.get(0),
            )
            .map_err(self.err("recording the run"))
    }

    /// Mark `running` runs of processes of this host that no longer exist
    /// as abandoned. Runs recorded on another host (a fleet writing to one
    /// PostgreSQL store) are that host's to judge.
    fn mark_abandoned(&mut self, now: &str) -> Result<()> {
        let running: Vec<(i64, Option<i64>, Option<i64>)> = self
            .conn
            .query_map(
                "SELECT run_id, pid, pid_start FROM ingest_runs WHERE status = 'running' \
                 AND (host IS NULL OR host = ?1)",
                vals![host_name()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(self.err("reading unfinished runs"))?;
        for (run_id, pid, start) in running {
            // A pid is alive only with the same start time (pids are reused).
            let alive = match (pid.and_then(|p| u32::try_from(p).ok()), start) {
                (Some(p), Some(s)) => process_start(p) == Some(s),
                (Some(p), None) => Path::new(&format!("/proc/{p}")).exists(),
                // Recorded before migration 5: nothing to go by; a run
                // that old is not running any more.
                (None, _) => false,
            };
            if alive {
                continue;
            }
            let why = match pid {
                Some(p) => format!(
                    "abandoned: process {p} ended without finishing the run (killed?); \
                     the counts are what it had committed"
                ),
                None => "abandoned: the run never finished; the counts are what it had committed"
                    .to_string(),
            };
            self.conn
                .execute(
                    "UPDATE ingest_runs SET status = 'abandoned', finished_at = ?2, error = ?3 \
                     WHERE run_id = ?1 AND status = 'running'",
                    vals![run_id, now, why],
                )
                .map_err(self.err("marking an abandoned run"))?;
        }
        Ok(())
    }

    /// Record the end of an ingest run. `error` set means it failed.
    pub fn finish_run(
        &mut self,
        run_id: i64,
        counts: &Counts,
        finished_at: &str,
        error: Option<&str>,
    ) -> Result<()> {
        let status = match error {
            Some(_) => "failed",
            None if counts.rejected + counts.conflicts > 0 => "partial",
            None => "ok",
        };
        self.conn
            .execute(
                "UPDATE ingest_runs SET finished_at = ?2, status = ?3, read = ?4, inserted = ?5, \
                 duplicates = ?6, conflicts = ?7, rejected = ?8, error = ?9 WHERE run_id = ?1",
                vals![
                    run_id,
                    finished_at,
                    status,
                    counts.read,
                    counts.inserted,
                    counts.duplicates,
                    counts.conflicts,
                    counts.rejected,
                    error
                ],
            )
            .map_err(self.err("recording the run"))?;
        Ok(())
    }

    /// Start a write transaction (see [`Store::begin_write`]). It borrows
    /// the store shared, so a caller can keep one open across loop
    /// iterations; dropping it rolls back.
    pub fn writer(&self) -> Result<Writer<'_>> {
        self.writer_at(crate::time::now())
    }

    /// [`Store::writer`] with the clock reading `now` (tests that need
    /// ingest times of their own; on PostgreSQL the server's clock is used).
    pub(crate) fn writer_at(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Writer<'_>> {
        let tx = self.begin_write()?;
        let err = self.err("starting a transaction");
        // ingested_at never decreases in rowid order in any usage table,
        // which as-of reports rely on (store::report): this transaction
        // holds the write lock, so every stored row is older, and a clock
        // stepped back gets the latest stored time instead of an earlier one.
        let (mut now, last) = match &self.conn {
            Db::Sqlite(_) => (now, sqlite::last_ingested_at(&self.conn).map_err(&err)?),
            Db::Pg(_) => {
                let (us, last) = pg::clock(&self.conn).map_err(&err)?;
                // The server's clock, one for every host writing; `MB_NOW`
                // (the test clock) replaces it as it replaces SQLite's.
                let server = crate::time::from_unix_nanos(us.saturating_mul(1000));
                let test_clock = std::env::var("MB_NOW")
                    .ok()
                    .and_then(|v| crate::time::parse_rfc3339(&v));
                (test_clock.unwrap_or(server), last)
            }
        };
        if let Some(last) = last.as_deref().and_then(crate::time::parse_rfc3339) {
            now = now.max(last);
        }
        let ingested_at = crate::time::format_fixed_micros(&now);
        if self.conn.pg().is_some() {
            pg::set_clock(&self.conn, &ingested_at).map_err(&err)?;
        }
        Ok(Writer {
            tx,
            path: self.path.clone(),
            rollup: Default::default(),
            resource_rollup: Default::default(),
            sqlite_ins: RefCell::new(None),
            ingested_at,
            ingest_hour_ns: now.timestamp().div_euclid(3600) * events::HOUR_NS,
        })
    }

    /// Load the stored event `(kind, id)`, if any.
    pub fn get_event(&self, kind: Kind, id: &str) -> Result<Option<Event>> {
        events::get(&self.conn, kind, id).map_err(self.err("reading an event"))
    }

    /// The connection, for the storage layer's own submodules.
    pub(crate) fn conn(&self) -> &Db {
        &self.conn
    }
}

/// One write transaction: a batch of inserts, rejects and conflicts that
/// commit together or not at all.
pub struct Writer<'a> {
    tx: Tx<'a>,
    path: PathBuf,
    /// The api rows stored so far, for api_rollup at commit.
    rollup: RefCell<events::ApiRollup>,
    /// The resource rollup's changes so far, written at commit.
    resource_rollup: RefCell<resource_rollup::ResourceRollup>,
    /// SQLite's prepared insert statements, kept for the transaction.
    sqlite_ins: RefCell<Option<events::SqliteInserter<'a>>>,
    /// The `ingested_at` of every row of this transaction, and its hour
    /// (the rollup's ingest bucket), taken from one clock reading so the two
    /// always agree.
    ingested_at: String,
    ingest_hour_ns: i64,
}

impl<'a> Writer<'a> {
    fn err(&self, ctx: &'static str) -> impl Fn(db::DbError) -> Error + use<'_, 'a> {
        move |e| Error::db(&self.path, ctx, e)
    }

    /// The connection of this transaction.
    pub(crate) fn db(&self) -> &'a Db {
        self.tx.db()
    }

    /// The `ingested_at` value for rows of this transaction.
    pub fn ingested_at(&self) -> &str {
        &self.ingested_at
    }

    /// Store a batch of events in this transaction, in order, and say what
    /// happened to each: an event is stored unless its `(kind, id)` exists
    /// (earlier in the batch included); on an existing id the stored event
    /// is compared with it: equal is a duplicate, different is a conflict
    /// (the stored row is left untouched). An api event that would take its
    /// customer's UTC hour past the bounds is not stored (OverHourBound).
    pub fn insert_batch(&self, evs: &[&Event], run_id: i64) -> Result<Vec<InsertResult>> {
        let db = self.db();
        let res = match db {
            Db::Sqlite(conn) => {
                let mut slot = self.sqlite_ins.borrow_mut();
                let ins = slot.get_or_insert_with(|| events::SqliteInserter::new(conn));
                evs.iter()
                    .map(|ev| {
                        ins.insert(
                            db,
                            &self.rollup,
                            &self.resource_rollup,
                            ev,
                            &self.ingested_at,
                            run_id,
                        )
                    })
                    .collect::<db::DbResult<Vec<_>>>()
            }
            Db::Pg(_) => copy::insert_batch(self, evs, run_id),
        };
        res.map_err(self.err("storing an event"))
    }

    /// Record a rejected line: verbatim, or for a too-long line its first
    /// bytes, with the full line's length and SHA-256. A line already
    /// recorded for this source (same SHA-256: a re-run) is not recorded
    /// again.
    #[allow(clippy::too_many_arguments)]
    pub fn reject(
        &self,
        run_id: i64,
        source: &str,
        line_no: u64,
        reason: &str,
        line: &[u8],
        len: u64,
        sha256: &[u8; 32],
        at: &str,
    ) -> Result<()> {
        self.db()
            .execute(
                "INSERT INTO rejects (run_id, source, line_no, reason, line, \
                 rejected_at, line_len, line_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT DO NOTHING",
                vals![run_id, source, line_no, reason, line, at, len, &sha256[..]],
            )
            .map_err(self.err("recording a rejected line"))?;
        Ok(())
    }

    /// Record a conflicting line verbatim, once per source (a re-run of the
    /// same line adds nothing).
    #[allow(clippy::too_many_arguments)]
    pub fn conflict(
        &self,
        run_id: i64,
        kind: Kind,
        id: &str,
        source: &str,
        line_no: u64,
        line: &str,
        at: &str,
    ) -> Result<()> {
        use sha2::Digest;
        let sha: [u8; 32] = sha2::Sha256::digest(line.as_bytes()).into();
        self.db()
            .execute(
                "INSERT INTO conflicts (run_id, kind, id, source, line_no, line, \
                 recorded_at, line_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT DO NOTHING",
                vals![
                    run_id,
                    kind.as_str(),
                    id,
                    source,
                    line_no,
                    line,
                    at,
                    &sha[..]
                ],
            )
            .map_err(self.err("recording a conflict"))?;
        Ok(())
    }

    /// Update the run's counts inside this transaction, so the audit row
    /// always matches what is committed.
    pub fn set_run_counts(&self, run_id: i64, c: &Counts) -> Result<()> {
        self.db()
            .execute(
                "UPDATE ingest_runs SET read = ?2, inserted = ?3, duplicates = ?4, conflicts = ?5, \
                 rejected = ?6 WHERE run_id = ?1",
                vals![run_id, c.read, c.inserted, c.duplicates, c.conflicts, c.rejected],
            )
            .map_err(self.err("recording run counts"))?;
        Ok(())
    }

    /// Commit the batch, first adding its api rows to the rollup so the
    /// rollup always matches the committed rows.
    pub fn commit(self) -> Result<()> {
        let db = self.db();
        self.rollup
            .borrow_mut()
            .flush(db, self.ingest_hour_ns)
            .map_err(|e| Error::db(&self.path, "updating the rollup", e))?;
        self.resource_rollup
            .borrow_mut()
            .flush(db, self.ingest_hour_ns)
            .map_err(|e| Error::db(&self.path, "updating the resource rollup", e))?;
        // The statements go before the transaction ends.
        drop(self.sqlite_ins.take());
        let path = self.path;
        self.tx
            .commit()
            .map_err(|e| Error::db(&path, "committing", e))
    }

    /// Throw the batch away (dry runs).
    pub fn rollback(self) -> Result<()> {
        drop(self.sqlite_ins.take());
        let path = self.path;
        self.tx
            .rollback()
            .map_err(|e| Error::db(&path, "rolling back", e))
    }
}

/// This host's name (`ingest_runs.host`): the kernel's, as `hostname`
/// prints it.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`, clock
/// ticks since boot), which with the pid identifies one process: a pid
/// reused later has another start time. None if there is no such process.
fn process_start(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces
    // and parentheses itself: count fields from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}
