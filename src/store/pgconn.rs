//! Connecting to PostgreSQL: what a `--db` value that names a server means,
//! where the password comes from, and TLS.
//!
//! This is the only place that turns a connection string into a
//! `postgres::Client`; the rest of the store never sees a host, a password
//! or a certificate. (Issue 16: this first version is the interface only;
//! the libpq-compatible parsing, PGSERVICE/PGPASSFILE and TLS with
//! `sslmode=verify-full` replace its body.)

use std::str::FromStr;

use crate::error::{Error, Result};

/// Whether a `--db` value names a PostgreSQL server rather than a SQLite
/// file: a `postgres://` or `postgresql://` URI, or a libpq key=value
/// string (`host=... dbname=...`, `service=...`).
pub fn is_postgres(spec: &str) -> bool {
    let s = spec.trim_start();
    s.starts_with("postgres://")
        || s.starts_with("postgresql://")
        || (s.contains('=') && !s.contains('/') && s.split_whitespace().all(|kv| kv.contains('=')))
}

/// `spec` with any password removed, for messages and `Error::Db` paths.
pub fn display(spec: &str) -> String {
    spec.to_string()
}

/// Open a connection to the server `spec` names.
pub fn connect(spec: &str) -> Result<postgres::Client> {
    let cfg = postgres::Config::from_str(spec)
        .map_err(|e| Error::db(display(spec), "bad connection string", e))?;
    cfg.connect(postgres::NoTls)
        .map_err(|e| Error::db(display(spec), "cannot connect", e))
}
