//! The SQLite store: opening, migrations, and every SQL statement of mb.
//!
//! All SQL lives in this module and its children, behind a narrow API
//! ([`Store`], [`Writer`], the customer functions), so that a PostgreSQL
//! backend can be added later without touching the tools (DESIGN.md section
//! 6). Nothing outside `store` sees a `rusqlite` type.
//!
//! Opening a store for writing creates the parent directory (mode 0700) and
//! the file (mode 0600) when they do not exist, switches to WAL, sets a busy
//! timeout long enough for cron jobs that overlap each other and the
//! dashboard, and applies pending migrations in one immediate transaction.
//! A database whose `user_version` is newer than this binary is refused.

pub mod customers;
mod events;
pub mod fleet;
pub mod pgconn;
pub mod provenance;
pub mod report;
pub mod reprice;
pub mod resource_rollup;
pub mod schema;
mod vm_hours;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use crate::error::{Error, Result};
use crate::events::{Event, Kind};

pub use events::InsertResult;

/// How long a writer waits for another writer's transaction. A batch holds
/// the write lock for tens of milliseconds; a minute covers a checkpoint, a
/// slow disk and a dozen queued cron jobs without "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a reader waits for a database that another process is
/// creating (version 0) before saying so.
const CREATION_WAIT: Duration = Duration::from_secs(10);

/// Whether a store is opened for writing (creating and migrating) or only
/// for reading (reports, dashboard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create if missing, migrate, write.
    ReadWrite,
    /// Never write; the file must exist and be fully migrated.
    ReadOnly,
}

/// An open database.
pub struct Store {
    conn: Connection,
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
    pub fn open(path: &Path, mode: Mode) -> Result<Store> {
        let conn = match mode {
            Mode::ReadWrite => {
                create_private(path)?;
                Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
            }
            Mode::ReadOnly => {
                // Only a file that is really absent is "no database"; one
                // in a directory we may not enter gets the permission error.
                if matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
                {
                    return Err(Error::Db {
                        path: path.to_path_buf(),
                        msg: "no database here; run mb-ingest (or mb-customer) first, or pass --db"
                            .into(),
                    });
                }
                wait_for_creator(path);
                Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
            }
        }
        .map_err(|e| Error::db_open(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure(mode)?;
        match mode {
            Mode::ReadWrite => store.migrate()?,
            Mode::ReadOnly => store.check_version()?,
        }
        Ok(store)
    }

    /// An in-memory store (dry runs, tests).
    pub fn open_in_memory() -> Result<Store> {
        let conn =
            Connection::open_in_memory().map_err(|e| Error::db(":memory:", "cannot open", e))?;
        let mut store = Store {
            conn,
            path: PathBuf::from(":memory:"),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, ctx: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        let ctx = ctx.to_string();
        move |e| Error::db(&self.path, &ctx, e)
    }

    fn configure(&mut self, mode: Mode) -> Result<()> {
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(self.err("busy_timeout"))?;
        if mode == Mode::ReadWrite {
            // 16 KiB pages for a new database (a no-op on an existing one):
            // a commit writes each dirty page to the WAL and a checkpoint
            // copies it, a few system calls per page, so bigger pages cut
            // a large ingest's time by a tenth (4 KiB: 5.7-6.0 s, 16 KiB:
            // 5.1-5.4 s for a million api lines). Must precede WAL mode.
            self.conn
                .execute_batch("PRAGMA page_size=16384")
                .map_err(self.err("setting the page size"))?;
            // journal_mode=WAL is persistent in the file; setting it on every
            // open is cheap and repairs a file copied without its mode.
            let jm = self.enable_wal()?;
            if jm != "wal" {
                return Err(Error::db(
                    &self.path,
                    "enabling WAL",
                    format!("journal_mode is {jm:?} (is the file on a network filesystem?)"),
                ));
            }
            // journal_size_limit: a WAL that grew under many writers (622 MB
            // beside a 278 MB database) is cut back to 64 MiB when it is
            // next reset, instead of keeping its peak size forever; see
            // also [`Store::checkpoint`].
            // FULL: a committed batch survives a power cut, because the
            // producers have already advanced their state past those lines.
            self.conn
                .execute_batch(
                    "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; \
                     PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY; \
                     PRAGMA journal_size_limit=67108864;",
                )
                .map_err(self.err("setting pragmas"))?;
        } else {
            self.conn
                .execute_batch("PRAGMA query_only=ON; PRAGMA cache_size=-65536;")
                .map_err(self.err("setting pragmas"))?;
        }
        Ok(())
    }

    /// Switch to WAL (persistent in the file). Changing the journal mode
    /// needs an exclusive lock, and SQLite reports "database is locked" for
    /// it without calling the busy handler when several processes open a new
    /// database at once; so retry for as long as the busy timeout.
    fn enable_wal(&self) -> Result<String> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let current: String = self
                .conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .map_err(self.err("reading the journal mode"))?;
            if current.eq_ignore_ascii_case("wal") {
                return Ok("wal".into());
            }
            match self
                .conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            {
                Ok(jm) => return Ok(jm),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(Error::db(&self.path, "enabling WAL", e)),
            }
        }
    }

    fn user_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err("reading schema version"))
    }

    /// Copy the WAL back into the database without waiting for anyone
    /// (`PRAGMA wal_checkpoint(PASSIVE)`), at the end of an ingest run, so
    /// the WAL can be reset (and cut to journal_size_limit) by the next
    /// writer instead of growing while writers keep it busy. Best effort.
    pub fn checkpoint(&self) {
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }

    fn check_version(&self) -> Result<()> {
        let v = self.user_version()?;
        let cur = schema::current_version();
        if v == 0 {
            return Err(Error::db(
                &self.path,
                "schema",
                "the database is empty or still being created; run mb-ingest (or mb-customer) \
                 first, or wait for the one creating it",
            ));
        }
        if v > cur {
            return Err(Error::SchemaTooNew {
                path: self.path.clone(),
                found: v,
                supported: cur,
            });
        }
        if v < cur {
            return Err(Error::db(
                &self.path,
                "schema",
                format!(
                    "version {v} is older than this mb ({cur}); run mb-ingest once to migrate it"
                ),
            ));
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        // Check outside a transaction first so a newer database is refused
        // without taking the write lock.
        let cur = schema::current_version();
        let v = self.user_version()?;
        if v > cur {
            return Err(Error::SchemaTooNew {
                path: self.path.clone(),
                found: v,
                supported: cur,
            });
        }
        if v == cur {
            return Ok(());
        }
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| Error::db(&path, "starting migration", e))?;
        // Re-read under the lock: a concurrent process may have migrated.
        let v: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| Error::db(&path, "reading schema version", e))?;
        for (i, sql) in schema::MIGRATIONS
            .iter()
            .enumerate()
            .skip(v.max(0) as usize)
        {
            tx.execute_batch(sql)
                .map_err(|e| Error::db(&path, &format!("applying migration {}", i + 1), e))?;
            if i as i64 + 1 == schema::resource_rollup_version() {
                resource_rollup::rebuild(&tx)
                    .map_err(|e| Error::db(&path, "building the resource rollup", e))?;
            }
        }
        tx.execute_batch(&format!("PRAGMA user_version = {cur}"))
            .map_err(|e| Error::db(&path, "setting schema version", e))?;
        tx.commit()
            .map_err(|e| Error::db(&path, "committing migration", e))
    }

    /// Record the start of an ingest run and return its id. First, every
    /// `running` run whose process is gone (killed, crashed) is marked
    /// `abandoned`; its counts are left as they are, because they were
    /// updated in each committed batch's own transaction.
    pub fn begin_run(&mut self, tool: &str, source: &str, started_at: &str) -> Result<i64> {
        self.mark_abandoned(started_at)?;
        let pid = std::process::id();
        self.conn
            .execute(
                "INSERT INTO ingest_runs (tool, source, started_at, status, pid, pid_start) \
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
                params![tool, source, started_at, pid, process_start(pid)],
            )
            .map_err(self.err("recording the run"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Mark `running` runs of processes that no longer exist as abandoned.
    fn mark_abandoned(&mut self, now: &str) -> Result<()> {
        let running: Vec<(i64, Option<i64>, Option<i64>)> = self
            .conn
            .prepare("SELECT run_id, pid, pid_start FROM ingest_runs WHERE status = 'running'")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
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
                    params![run_id, now, why],
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
                params![
                    run_id,
                    finished_at,
                    status,
                    counts.read as i64,
                    counts.inserted as i64,
                    counts.duplicates as i64,
                    counts.conflicts as i64,
                    counts.rejected as i64,
                    error
                ],
            )
            .map_err(self.err("recording the run"))?;
        Ok(())
    }

    /// Start a write transaction. It takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy timeout
    /// instead of failing with SQLITE_BUSY on lock upgrade. It borrows the
    /// store shared (SQLite itself refuses a nested BEGIN), so a caller can
    /// keep one open across loop iterations; dropping it rolls back.
    pub fn writer(&self) -> Result<Writer<'_>> {
        self.writer_at(crate::time::now())
    }

    /// [`Store::writer`] with the clock reading `now` (tests that need
    /// ingest times of their own).
    pub(crate) fn writer_at(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Writer<'_>> {
        let path = self.path.clone();
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| Error::db(&path, "starting a transaction", e))?;
        // ingested_at never decreases in rowid order in any usage table,
        // which as-of reports rely on (store::report): this transaction
        // holds the write lock, so every stored row is older, and a clock
        // stepped back gets the latest stored time instead of an earlier one.
        let mut now = now;
        let last: Option<String> = tx
            .query_row(
                "SELECT max(t) FROM ( \
                 SELECT (SELECT ingested_at FROM api_usage ORDER BY rowid DESC LIMIT 1) AS t \
                 UNION ALL SELECT (SELECT ingested_at FROM resource_usage ORDER BY rowid DESC LIMIT 1) \
                 UNION ALL SELECT (SELECT ingested_at FROM activity_log ORDER BY rowid DESC LIMIT 1))",
                [],
                |r| r.get(0),
            )
            .map_err(|e| Error::db(&path, "starting a transaction", e))?;
        if let Some(last) = last.as_deref().and_then(crate::time::parse_rfc3339) {
            now = now.max(last);
        }
        Ok(Writer {
            tx,
            path,
            rollup: Default::default(),
            resource_rollup: Default::default(),
            ingested_at: crate::time::format_fixed_micros(&now),
            ingest_hour_ns: now.timestamp().div_euclid(3600) * events::HOUR_NS,
        })
    }

    /// Load the stored event `(kind, id)`, if any.
    pub fn get_event(&self, kind: Kind, id: &str) -> Result<Option<Event>> {
        events::get(&self.conn, kind, id).map_err(self.err("reading an event"))
    }

    /// Run a read-only query callback on the connection. For the storage
    /// layer's own submodules (reports live in the library's report module
    /// and call typed functions here).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// One write transaction: a batch of inserts, rejects and conflicts that
/// commit together or not at all.
pub struct Writer<'a> {
    tx: rusqlite::Transaction<'a>,
    path: PathBuf,
    /// The api rows stored so far, for api_rollup at commit.
    rollup: std::cell::RefCell<events::ApiRollup>,
    /// The resource rollup's changes so far, written at commit.
    resource_rollup: std::cell::RefCell<resource_rollup::ResourceRollup>,
    /// The `ingested_at` of every row of this transaction, and its hour
    /// (the rollup's ingest bucket), taken from one clock reading so the two
    /// always agree.
    ingested_at: String,
    ingest_hour_ns: i64,
}

impl Writer<'_> {
    fn err(&self, ctx: &'static str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |e| Error::db(&self.path, ctx, e)
    }

    /// The `ingested_at` value for rows of this transaction.
    pub fn ingested_at(&self) -> &str {
        &self.ingested_at
    }

    /// A statement holder for storing events in this transaction: `ev` is
    /// stored unless its `(kind, id)` exists. On an existing id the stored
    /// event is compared with `ev`: equal is a duplicate, different is a
    /// conflict (the stored row is left untouched).
    pub fn inserter(&self) -> EventInserter<'_> {
        EventInserter {
            inner: events::Inserter::new(&self.tx, &self.rollup, &self.resource_rollup),
            path: &self.path,
        }
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
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO rejects (run_id, source, line_no, reason, line, \
                 rejected_at, line_len, line_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    run_id,
                    source,
                    line_no as i64,
                    reason,
                    line,
                    at,
                    i64::try_from(len).unwrap_or(i64::MAX),
                    &sha256[..]
                ])
            })
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
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO conflicts (run_id, kind, id, source, line_no, line, \
                 recorded_at, line_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    run_id,
                    kind.as_str(),
                    id,
                    source,
                    line_no as i64,
                    line,
                    at,
                    &sha[..]
                ])
            })
            .map_err(self.err("recording a conflict"))?;
        Ok(())
    }

    /// Update the run's counts inside this transaction, so the audit row
    /// always matches what is committed.
    pub fn set_run_counts(&self, run_id: i64, c: &Counts) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE ingest_runs SET read = ?2, inserted = ?3, duplicates = ?4, conflicts = ?5, \
                 rejected = ?6 WHERE run_id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    run_id,
                    c.read as i64,
                    c.inserted as i64,
                    c.duplicates as i64,
                    c.conflicts as i64,
                    c.rejected as i64
                ])
            })
            .map_err(self.err("recording run counts"))?;
        Ok(())
    }

    /// Commit the batch, first adding its api rows to the rollup so the
    /// rollup always matches the committed rows.
    pub fn commit(self) -> Result<()> {
        self.rollup
            .borrow_mut()
            .flush(&self.tx, self.ingest_hour_ns)
            .map_err(|e| Error::db(&self.path, "updating the rollup", e))?;
        self.resource_rollup
            .borrow_mut()
            .flush(&self.tx, self.ingest_hour_ns)
            .map_err(|e| Error::db(&self.path, "updating the resource rollup", e))?;
        let path = self.path;
        self.tx
            .commit()
            .map_err(|e| Error::db(&path, "committing", e))
    }

    /// Throw the batch away (dry runs).
    pub fn rollback(self) -> Result<()> {
        let path = self.path;
        self.tx
            .rollback()
            .map_err(|e| Error::db(&path, "rolling back", e))
    }
}

/// Stores events within one [`Writer`] transaction.
pub struct EventInserter<'t> {
    inner: events::Inserter<'t>,
    path: &'t Path,
}

impl EventInserter<'_> {
    /// Store `ev` (see [`Writer::inserter`]).
    pub fn insert(&mut self, ev: &Event, ingested_at: &str, run_id: i64) -> Result<InsertResult> {
        self.inner
            .insert(ev, ingested_at, run_id)
            .map_err(|e| Error::db(self.path, "storing an event", e))
    }
}

/// A database being created by a concurrent mb-ingest (or mb-customer) is
/// an empty file, or reads as version 0, until its first migration
/// commits: wait for the creator, up to [`CREATION_WAIT`], before the real
/// read-only connection is opened (a connection opened on the empty file
/// would keep its stale view). After that, `check_version` says what is
/// wrong.
fn wait_for_creator(path: &Path) {
    let started = std::time::Instant::now();
    while started.elapsed() < CREATION_WAIT {
        let v: Option<i64> = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()
            .and_then(|c| {
                let _ = c.busy_timeout(Duration::from_secs(1));
                c.query_row("PRAGMA user_version", [], |r| r.get(0)).ok()
            });
        if v.is_some_and(|v| v > 0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// Create `path`'s directory (0700) and the file itself (0600) if missing,
/// so SQLite (which would use 0644 under the usual umask) opens a private
/// file. SQLite gives its -wal and -shm files the main file's mode.
fn create_private(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        crate::fsutil::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    match crate::fsutil::options()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}
