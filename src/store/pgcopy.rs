//! A writer of PostgreSQL's binary COPY format, for the api rows of
//! [`super::copy`].
//!
//! `postgres::binary_copy::BinaryCopyInWriter` encodes each row through
//! `ToSql` trait objects and hands every row to the connection's runtime
//! (one `block_on` per row); at a million rows that was a third of
//! mb-ingest's writer thread. The format is small and fixed (PostgreSQL
//! documentation, "COPY", section "Binary Format": an 11-byte signature,
//! a 32-bit flags field and a 32-bit header-extension length, then per
//! tuple a 16-bit field count and per field a 32-bit length, -1 for NULL,
//! and the value in the type's binary form, big-endian; a 16-bit -1 ends
//! the data), and mb's usage columns are only BIGINT (8 bytes, big-endian)
//! and TEXT (the UTF-8 bytes), so rows are encoded here into one buffer,
//! which goes to the connection in pieces of [`FLUSH_AT`] bytes.

use std::io::Write;

use postgres::CopyInWriter;

use super::db::{DbError, DbResult};

/// The binary COPY signature and an empty header (no flags, no extension).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Bytes gathered before they go to the connection, as one CopyData
/// message. The server reads a message whole before it inserts any of its
/// rows, so a large piece leaves it idle at a COPY's start and with a
/// backlog at its end: 256 KiB pieces made the wait at each COPY's end
/// three times as long as 32 KiB ones (8 to 64 KiB measured the same).
const FLUSH_AT: usize = 32 << 10;

/// A binary COPY in progress. Dropped without [`BinaryCopy::finish`], the
/// COPY is aborted (the server rolls back what it received).
pub(super) struct BinaryCopy<'c> {
    sink: CopyInWriter<'c>,
    buf: Vec<u8>,
}

impl<'c> BinaryCopy<'c> {
    /// Start writing to `sink` (a `COPY ... FROM STDIN (FORMAT binary)`).
    pub(super) fn new(sink: CopyInWriter<'c>) -> BinaryCopy<'c> {
        let mut buf = Vec::with_capacity(FLUSH_AT + (64 << 10));
        buf.extend_from_slice(HEADER);
        BinaryCopy { sink, buf }
    }

    /// Begin a row of `n` fields.
    pub(super) fn row(&mut self, n: i16) -> DbResult<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        self.buf.extend_from_slice(&n.to_be_bytes());
        Ok(())
    }

    /// A BIGINT field.
    pub(super) fn int(&mut self, v: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A nullable BIGINT field.
    pub(super) fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    /// A TEXT field.
    pub(super) fn text(&mut self, s: &str) -> DbResult<()> {
        let len =
            i32::try_from(s.len()).map_err(|_| DbError::Other("a text value over 2 GiB".into()))?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        Ok(())
    }

    /// A nullable TEXT field.
    pub(super) fn opt_text(&mut self, s: Option<&str>) -> DbResult<()> {
        match s {
            Some(s) => self.text(s),
            None => {
                self.null();
                Ok(())
            }
        }
    }

    pub(super) fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn flush(&mut self) -> DbResult<()> {
        let r = self.sink.write_all(&self.buf);
        self.buf.clear();
        r.map_err(from_io)
    }

    /// End the data and complete the COPY; the number of rows stored.
    pub(super) fn finish(mut self) -> DbResult<u64> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.flush()?;
        Ok(self.sink.finish()?)
    }
}

/// The connection's error inside the writer's `io::Error` (so a unique
/// violation keeps its SQLSTATE).
fn from_io(e: std::io::Error) -> DbError {
    let msg = e.to_string();
    match e.into_inner().map(|b| b.downcast::<postgres::Error>()) {
        Some(Ok(pg)) => DbError::Pg(*pg),
        _ => DbError::Other(format!("the COPY stream failed: {msg}")),
    }
}

/// SQLSTATE unique_violation.
const UNIQUE_VIOLATION: &str = "23505";

/// One field of a rollup row: borrowed, so a row costs no allocation on
/// the COPY path; [`values`] makes the owned values the upsert binds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Field<'a> {
    Text(&'a str),
    Int(i64),
}

/// The bound values of `rows`, for the upsert of the rows not copied.
pub(super) fn values<const N: usize>(rows: &[[Field<'_>; N]]) -> Vec<Vec<super::db::Value>> {
    use super::db::Value;
    rows.iter()
        .map(|row| {
            row.iter()
                .map(|f| match *f {
                    Field::Text(s) => Value::Text(s.to_owned()),
                    Field::Int(n) => Value::Int(n),
                })
                .collect()
        })
        .collect()
}

/// Insert `rows` into `target` (`table (col, ...)`, N columns) by one
/// binary COPY, under a savepoint: for rows of keys the caller knows are
/// not stored yet (a plain COPY costs the server about half of `INSERT
/// ... ON CONFLICT DO UPDATE`). Encoded straight from the borrowed fields,
/// so the server inserts while the rest are encoded. False, with nothing
/// inserted, when a key was stored after all (a unique violation): the
/// caller upserts them instead.
pub(super) fn copy_new<const N: usize>(
    db: &super::db::Db,
    target: &str,
    rows: &[[Field<'_>; N]],
) -> DbResult<bool> {
    let fields = i16::try_from(N).map_err(|_| DbError::Other("too many columns".into()))?;
    let Some(pg) = db.pg() else {
        return Ok(false);
    };
    // PostgreSQL refuses COPY FROM into a table under row-level security
    // (a VM's role): there the upsert it is. The api path has asked (see
    // `copy::direct_copy`) before any hour can be known new.
    if pg.direct_copy.get() != Some(true) {
        return Ok(false);
    }
    if rows.is_empty() {
        return Ok(true);
    }
    db.batch("SAVEPOINT mb_copy_new")?;
    let copied = (|| -> DbResult<()> {
        let mut client = pg.client()?;
        let sink = client.copy_in(&format!("COPY {target} FROM STDIN (FORMAT binary)"))?;
        let mut copy = BinaryCopy::new(sink);
        for row in rows {
            copy.row(fields)?;
            for f in row {
                match *f {
                    Field::Text(s) => copy.text(s)?,
                    Field::Int(n) => copy.int(n),
                }
            }
        }
        copy.finish()?;
        Ok(())
    })();
    match copied {
        Ok(()) => {
            db.batch("RELEASE SAVEPOINT mb_copy_new")?;
            Ok(true)
        }
        Err(e) if e.pg_code() == Some(UNIQUE_VIOLATION) => {
            db.batch("ROLLBACK TO SAVEPOINT mb_copy_new; RELEASE SAVEPOINT mb_copy_new")?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
