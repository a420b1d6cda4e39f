//! What only the SQLite backend does: creating the file privately, WAL,
//! the busy timeout and pragmas, `PRAGMA user_version` migrations, the
//! write lock (`BEGIN IMMEDIATE`), `PRAGMA data_version` and checkpoints.
//! [`super::Store`] calls these; the SQL of the data itself is shared with
//! PostgreSQL (see [`super::db`]).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::db::{vals, Db, Tx};
use super::{resource_rollup, schema, Mode};
use crate::error::{Error, Result};

/// How long a writer waits for another writer's transaction. A batch holds
/// the write lock for tens of milliseconds; a minute covers a checkpoint, a
/// slow disk and a dozen queued cron jobs without "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a reader waits for a database that another process is
/// creating (version 0) before saying so.
const CREATION_WAIT: Duration = Duration::from_secs(10);

/// Open (and for [`Mode::ReadWrite`] create and migrate) the file.
pub(super) fn open(path: &Path, mode: Mode) -> Result<Db> {
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
    conn.set_prepared_statement_cache_capacity(128);
    configure(&conn, path, mode)?;
    let db = Db::Sqlite(conn);
    match mode {
        Mode::ReadWrite => migrate(&db, path)?,
        Mode::ReadOnly => check_version(&db, path)?,
    }
    Ok(db)
}

/// An in-memory database, migrated (dry runs, tests).
pub(super) fn open_in_memory() -> Result<Db> {
    let conn = Connection::open_in_memory().map_err(|e| Error::db(":memory:", "cannot open", e))?;
    let db = Db::Sqlite(conn);
    migrate(&db, Path::new(":memory:"))?;
    Ok(db)
}

fn configure(conn: &Connection, path: &Path, mode: Mode) -> Result<()> {
    let err = |ctx: &'static str| move |e| Error::db(path, ctx, e);
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("busy_timeout"))?;
    if mode == Mode::ReadWrite {
        // 16 KiB pages for a new database (a no-op on an existing one):
        // a commit writes each dirty page to the WAL and a checkpoint
        // copies it, a few system calls per page, so bigger pages cut
        // a large ingest's time by a tenth (4 KiB: 5.7-6.0 s, 16 KiB:
        // 5.1-5.4 s for a million api lines). Must precede WAL mode.
        conn.execute_batch("PRAGMA page_size=16384")
            .map_err(err("setting the page size"))?;
        // journal_mode=WAL is persistent in the file; setting it on every
        // open is cheap and repairs a file copied without its mode.
        let jm = enable_wal(conn, path)?;
        if jm != "wal" {
            return Err(Error::db(
                path,
                "enabling WAL",
                format!("journal_mode is {jm:?} (is the file on a network filesystem?)"),
            ));
        }
        // journal_size_limit: a WAL that grew under many writers (622 MB
        // beside a 278 MB database) is cut back to 64 MiB when it is
        // next reset, instead of keeping its peak size forever; see
        // also [`checkpoint`].
        // FULL: a committed batch survives a power cut, because the
        // producers have already advanced their state past those lines.
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; \
             PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY; \
             PRAGMA journal_size_limit=67108864;",
        )
        .map_err(err("setting pragmas"))?;
    } else {
        conn.execute_batch("PRAGMA query_only=ON; PRAGMA cache_size=-65536;")
            .map_err(err("setting pragmas"))?;
    }
    Ok(())
}

/// Switch to WAL (persistent in the file). Changing the journal mode
/// needs an exclusive lock, and SQLite reports "database is locked" for
/// it without calling the busy handler when several processes open a new
/// database at once; so retry for as long as the busy timeout.
fn enable_wal(conn: &Connection, path: &Path) -> Result<String> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        let current: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| Error::db(path, "reading the journal mode", e))?;
        if current.eq_ignore_ascii_case("wal") {
            return Ok("wal".into());
        }
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
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
            Err(e) => return Err(Error::db(path, "enabling WAL", e)),
        }
    }
}

fn user_version(db: &Db, path: &Path) -> Result<i64> {
    db.query_row("PRAGMA user_version", vals![], |r| r.get(0))
        .map_err(|e| Error::db(path, "reading schema version", e))
}

/// Copy the WAL back into the database without waiting for anyone
/// (`PRAGMA wal_checkpoint(PASSIVE)`), at the end of an ingest run, so
/// the WAL can be reset (and cut to journal_size_limit) by the next
/// writer instead of growing while writers keep it busy. Best effort.
pub(super) fn checkpoint(conn: &Connection) {
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

/// SQLite's change counter as this connection sees it.
pub(super) fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

fn check_version(db: &Db, path: &Path) -> Result<()> {
    let v = user_version(db, path)?;
    let cur = schema::current_version();
    if v == 0 {
        return Err(Error::db(
            path,
            "schema",
            "the database is empty or still being created; run mb-ingest (or mb-customer) \
             first, or wait for the one creating it",
        ));
    }
    if v > cur {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: v,
            supported: cur,
        });
    }
    if v < cur {
        return Err(Error::db(
            path,
            "schema",
            format!("version {v} is older than this mb ({cur}); run mb-ingest once to migrate it"),
        ));
    }
    Ok(())
}

fn migrate(db: &Db, path: &Path) -> Result<()> {
    // Check outside a transaction first so a newer database is refused
    // without taking the write lock.
    let cur = schema::current_version();
    let v = user_version(db, path)?;
    if v > cur {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: v,
            supported: cur,
        });
    }
    if v == cur {
        return Ok(());
    }
    let tx = begin_write(db).map_err(|e| Error::db(path, "starting migration", e))?;
    // Re-read under the lock: a concurrent process may have migrated.
    let v = user_version(db, path)?;
    for (i, sql) in schema::MIGRATIONS
        .iter()
        .enumerate()
        .skip(v.max(0) as usize)
    {
        db.batch(sql)
            .map_err(|e| Error::db(path, &format!("applying migration {}", i + 1), e))?;
        if i as i64 + 1 == schema::resource_rollup_version() {
            resource_rollup::rebuild(db)
                .map_err(|e| Error::db(path, "building the resource rollup", e))?;
        }
    }
    db.batch(&format!("PRAGMA user_version = {cur}"))
        .map_err(|e| Error::db(path, "setting schema version", e))?;
    tx.commit()
        .map_err(|e| Error::db(path, "committing migration", e))
}

/// Begin a write transaction. It takes the write lock at once
/// (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy timeout
/// instead of failing with SQLITE_BUSY on lock upgrade.
pub(super) fn begin_write(db: &Db) -> super::db::DbResult<Tx<'_>> {
    db.batch("BEGIN IMMEDIATE")?;
    Ok(Tx::begun(db))
}

/// The latest `ingested_at` stored, read inside the write transaction:
/// every stored row is older, so stamping no earlier than it keeps
/// `ingested_at` non-decreasing in rowid order.
pub(super) fn last_ingested_at(db: &Db) -> super::db::DbResult<Option<String>> {
    db.query_row(
        "SELECT max(t) FROM ( \
         SELECT (SELECT ingested_at FROM api_usage ORDER BY rowid DESC LIMIT 1) AS t \
         UNION ALL SELECT (SELECT ingested_at FROM resource_usage ORDER BY rowid DESC LIMIT 1) \
         UNION ALL SELECT (SELECT ingested_at FROM activity_log ORDER BY rowid DESC LIMIT 1))",
        vals![],
        |r| r.get(0),
    )
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
