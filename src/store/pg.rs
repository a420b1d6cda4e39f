//! What only the PostgreSQL backend does: connecting (through
//! [`super::pgconn`]), `mb_schema_version` migrations, the writers' lock,
//! the commit-ordered `ingested_at` clock and the change counter.
//!
//! Writers are serialised the way SQLite's `BEGIN IMMEDIATE` serialises
//! them: every write transaction first takes a transaction-scoped advisory
//! lock ([`WRITE_LOCK`]), released by its commit or rollback or when the
//! server sees the client go away. It works through pgbouncer in
//! transaction mode (nothing is held between transactions). Under the lock:
//!
//! - `ingested_at` is the later of the server's `clock_timestamp()` and the
//!   last stamp (kept in `mb_clock`, updated in the same transaction), so
//!   it never decreases in commit order however the hosts' clocks differ;
//! - the identity `rowid` of the usage tables is assigned in commit order
//!   (no two writers insert at once), so `--as-of` cutoffs by rowid
//!   reproduce exactly, as on SQLite;
//! - `mb_clock.version` is bumped, which is what the dashboard cache
//!   watches (SQLite's `PRAGMA data_version`).

use super::db::{vals, Db, DbResult, Pg, Tx};
use super::{schema_pg, Mode};
use crate::error::{Error, Result};

/// The advisory lock key every mb write transaction (and migration) takes
/// (`'mb-write'` as bytes, so it is unlikely to collide with another
/// application's keys in the same database).
pub const WRITE_LOCK: i64 = 0x6d62_2d77_7269_7465;

/// SQLSTATE insufficient_privilege.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// Connect to `spec` and (for [`Mode::ReadWrite`]) migrate.
pub(super) fn open(spec: &str, name: &str, mode: Mode) -> Result<Db> {
    let client = super::pgconn::connect(spec)?;
    let db = Db::Pg(Box::new(Pg::new(client)));
    match mode {
        Mode::ReadWrite => migrate(&db, name)?,
        Mode::ReadOnly => check_version(&db, name)?,
    }
    Ok(db)
}

fn version(db: &Db, name: &str) -> Result<i64> {
    let err = |e| Error::db(name, "reading schema version", e);
    let exists: bool = db
        .query_row(
            "SELECT to_regclass('mb_schema_version') IS NOT NULL",
            vals![],
            |r| r.get(0),
        )
        .map_err(err)?;
    if !exists {
        return Ok(0);
    }
    db.query_row(
        "SELECT coalesce(max(version), 0) FROM mb_schema_version",
        vals![],
        |r| r.get(0),
    )
    .map_err(err)
}

fn too_new(name: &str, found: i64) -> Error {
    Error::SchemaTooNew {
        path: name.into(),
        found,
        supported: schema_pg::current_version(),
    }
}

fn check_version(db: &Db, name: &str) -> Result<()> {
    let v = version(db, name)?;
    let cur = schema_pg::current_version();
    if v == 0 {
        return Err(Error::db(
            name,
            "schema",
            "the database has no mb schema yet; run mb-ingest (or mb-customer) once as the \
             database owner to create it",
        ));
    }
    if v > cur {
        return Err(too_new(name, v));
    }
    if v < cur {
        return Err(Error::db(
            name,
            "schema",
            format!(
                "version {v} is older than this mb ({cur}); run mb-ingest once as the database \
                 owner to migrate it"
            ),
        ));
    }
    Ok(())
}

fn migrate(db: &Db, name: &str) -> Result<()> {
    let cur = schema_pg::current_version();
    let v = version(db, name)?;
    if v > cur {
        return Err(too_new(name, v));
    }
    if v == cur {
        return Ok(());
    }
    // One transaction under the writers' lock: concurrent first runs
    // queue here, and the second finds the schema made.
    db.batch(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
    ))
    .map_err(|e| Error::db(name, "starting migration", e))?;
    let tx = Tx::begun(db);
    let v = version(db, name)?;
    if v > cur {
        return Err(too_new(name, v));
    }
    let apply = |sql: &str, to: i64| -> DbResult<()> {
        db.batch(sql)?;
        db.execute("UPDATE mb_schema_version SET version = ?1", vals![to])?;
        Ok(())
    };
    let run = || -> DbResult<()> {
        if v == 0 {
            db.batch("CREATE TABLE mb_schema_version (version BIGINT NOT NULL)")?;
            db.execute(
                "INSERT INTO mb_schema_version (version) VALUES (0)",
                vals![],
            )?;
        }
        let first = (v - schema_pg::BASE_VERSION + 1).max(0) as usize;
        for (i, sql) in schema_pg::MIGRATIONS.iter().enumerate().skip(first) {
            apply(sql, schema_pg::BASE_VERSION + i as i64)?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => {}
        Err(e) if e.pg_code() == Some(INSUFFICIENT_PRIVILEGE) => {
            return Err(Error::db(
                name,
                "schema",
                format!(
                    "version {v} needs migrating to {cur}, and this role may not ({e}); run \
                     mb-ingest once as the database owner"
                ),
            ))
        }
        Err(e) => return Err(Error::db(name, "applying migrations", e)),
    }
    tx.commit()
        .map_err(|e| Error::db(name, "committing migration", e))
}

/// Begin a write transaction: take the writers' lock and bump the change
/// counter (one round trip).
pub(super) fn begin_write(db: &Db) -> DbResult<Tx<'_>> {
    db.batch(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK}); \
         UPDATE mb_clock SET version = version + 1 WHERE id = 1"
    ))?;
    Ok(Tx::begun(db))
}

/// The server's clock (Unix microseconds) and the last stamp, read under
/// the writers' lock.
pub(super) fn clock(db: &Db) -> DbResult<(i64, Option<String>)> {
    db.query_row(
        "SELECT CAST(floor(extract(epoch FROM clock_timestamp()) * 1000000) AS BIGINT), \
         last_ingested_at FROM mb_clock WHERE id = 1",
        vals![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Record this transaction's stamp as the last one.
pub(super) fn set_clock(db: &Db, stamp: &str) -> DbResult<()> {
    db.execute(
        "UPDATE mb_clock SET last_ingested_at = ?1 WHERE id = 1",
        vals![stamp],
    )?;
    Ok(())
}

/// The change counter (bumped by every write transaction).
pub(super) fn data_version(db: &Db) -> DbResult<i64> {
    db.query_row("SELECT version FROM mb_clock WHERE id = 1", vals![], |r| {
        r.get(0)
    })
}
