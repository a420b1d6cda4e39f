//! The backend layer: one connection type over SQLite and PostgreSQL, with
//! the few operations the store's submodules need (execute, query with a
//! row closure, batches, explicit transactions).
//!
//! PostgreSQL statements keep nothing in the server session beyond the
//! transaction that runs them. A named prepared statement lives in the
//! session, and behind a pooler in transaction mode (pgbouncer before 1.21,
//! or any pooler without prepared-statement tracking) the session is
//! whichever server connection the pooler hands out for each transaction: a
//! statement prepared on one is missing on the next (`prepared statement
//! "s3" does not exist`), and two clients, each naming its statements s0,
//! s1, ... from its own counter, collide on one (`prepared statement "s0"
//! already exists`). So:
//!
//! - outside a transaction, a statement runs as the protocol's unnamed
//!   statement (Parse, Bind, Execute and Sync in one round trip,
//!   `query_typed`), with every parameter's type declared from its
//!   [`Value`];
//! - inside a transaction ([`Tx`]), where the pooler keeps the client on
//!   one server connection, each statement text is prepared by name once
//!   (with the same declared types) and reused, which spares the server
//!   parsing and planning it again for every event of a batch; all of them
//!   are closed before the `COMMIT` or `ROLLBACK` is sent (the protocol's
//!   Close, which the server honours even in a failed transaction), so none
//!   outlives the transaction.
//!
//! mb therefore works behind any pooler in transaction mode
//! (docs/postgres.md; tests/pg_bouncer.rs checks that no server connection
//! is left holding a statement).
//!
//! Every statement of mb is written once, in the SQL both engines run:
//!
//! - placeholders are `?N`; for PostgreSQL they become `$N`;
//! - `INSERT ... ON CONFLICT DO NOTHING`, never `INSERT OR IGNORE`;
//!   `ON CONFLICT (cols) DO UPDATE` always names its target (PostgreSQL
//!   requires it);
//! - `string_agg(x, ' ' ORDER BY x)`, never `group_concat`;
//! - `CAST(sum(x) AS BIGINT)` wherever an integer sum is read (PostgreSQL's
//!   sum of a BIGINT is NUMERIC), and `1 - flag` rather than `NOT flag`
//!   (flags are BIGINT 0/1 on both);
//! - `CASE` instead of the two-argument `min`/`max` (SQLite has no
//!   `LEAST`/`GREATEST`), no `strftime` (times are computed in Rust);
//! - the column `user` is written `"user"`;
//! - SQLite's planner hints `INDEXED BY name` and `NOT INDEXED` may appear
//!   and are removed for PostgreSQL (they change no result).
//!
//! Rows are read through [`Row::get`], whose types accept what either
//! engine returns for the same SQL (an integer from INT2/INT4/INT8, a
//! flag from an integer or a boolean). Nothing outside `store` sees this
//! module; nothing here knows a table.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{private::BytesMut, IsNull, ToSql, Type};

/// An error of either engine, or of a conversion between their values.
#[derive(Debug)]
pub enum DbError {
    /// From SQLite.
    Sqlite(rusqlite::Error),
    /// From PostgreSQL.
    Pg(postgres::Error),
    /// A query that must return a row returned none.
    NoRows,
    /// A value that does not fit the type asked for, or another misuse.
    Other(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Sqlite(e) => write!(f, "{e}"),
            // postgres::Error's Display is only the class ("db error"); the
            // server's message and detail are in the DbError source.
            DbError::Pg(e) => match e.as_db_error() {
                Some(d) => {
                    write!(f, "{}", d.message())?;
                    if let Some(detail) = d.detail() {
                        write!(f, " ({detail})")?;
                    }
                    Ok(())
                }
                None => match std::error::Error::source(e) {
                    Some(s) => write!(f, "{e}: {s}"),
                    None => write!(f, "{e}"),
                },
            },
            DbError::NoRows => write!(f, "query returned no rows"),
            DbError::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => DbError::NoRows,
            e => DbError::Sqlite(e),
        }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        DbError::Pg(e)
    }
}

impl DbError {
    /// The SQLSTATE of a PostgreSQL error, if it is one.
    pub fn pg_code(&self) -> Option<&str> {
        match self {
            DbError::Pg(e) => e.code().map(|c| c.code()),
            _ => None,
        }
    }
}

/// Result of a layer operation.
pub type DbResult<T> = std::result::Result<T, DbError>;

/// A parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer (also a flag, 0 or 1).
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// Conversion of a Rust value to a parameter (see [`vals!`]).
pub trait ToValue {
    /// The parameter value.
    fn to_value(&self) -> Value;
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                v.to_value()
            }
        }
    )*};
}
int_value!(i64, i32, u32, u16, u8, u64, usize);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}

/// Parameters for a statement: `vals![a, b, c]` (each by reference, like
/// rusqlite's `params!`).
macro_rules! vals {
    () => { &[] as &[$crate::store::db::Value] };
    ($($x:expr),+ $(,)?) => {
        &[$($crate::store::db::ToValue::to_value(&$x)),+] as &[$crate::store::db::Value]
    };
}
pub(crate) use vals;

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Real(v) => ValueRef::Real(*v),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

type BoxErr = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxErr> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => Err(format!("an integer parameter where {ty} is expected").into()),
            },
            Value::Real(v) => match *ty {
                Type::FLOAT8 => v.to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                _ => Err(format!("a float parameter where {ty} is expected").into()),
            },
            Value::Text(s) => match *ty {
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ => s.as_str().to_sql(ty, out),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ => Err(format!("a byte parameter where {ty} is expected").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// One result row of either engine.
pub enum Row<'a> {
    /// A SQLite row.
    Sqlite(&'a rusqlite::Row<'a>),
    /// A PostgreSQL row.
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i` as `T`.
    pub fn get<T: Col>(&self, i: usize) -> DbResult<T> {
        match self {
            Row::Sqlite(r) => Ok(r.get(i)?),
            Row::Pg(r) => T::from_pg(r, i),
        }
    }
}

/// A type a column can be read as, from either engine.
pub trait Col: Sized + rusqlite::types::FromSql {
    /// Read column `i` of a PostgreSQL row.
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self>;
}

fn pg_int(r: &postgres::Row, i: usize) -> DbResult<Option<i64>> {
    let ty = r
        .columns()
        .get(i)
        .ok_or_else(|| DbError::Other(format!("no column {i}")))?
        .type_()
        .clone();
    Ok(match ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(i)?,
        Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(i64::from),
        Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(i64::from),
        Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(i64::from),
        t => {
            return Err(DbError::Other(format!(
                "column {i} is {t}, not an integer (cast it to BIGINT)"
            )))
        }
    })
}

fn pg_float(r: &postgres::Row, i: usize) -> DbResult<Option<f64>> {
    let ty = r
        .columns()
        .get(i)
        .ok_or_else(|| DbError::Other(format!("no column {i}")))?
        .type_()
        .clone();
    Ok(match ty {
        Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?,
        Type::FLOAT4 => r.try_get::<_, Option<f32>>(i)?.map(f64::from),
        _ => pg_int(r, i)?.map(|v| v as f64),
    })
}

fn not_null<T>(v: Option<T>, i: usize) -> DbResult<T> {
    v.ok_or_else(|| DbError::Other(format!("column {i} is NULL")))
}

impl Col for i64 {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        not_null(pg_int(r, i)?, i)
    }
}
impl Col for Option<i64> {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        pg_int(r, i)
    }
}
impl Col for i32 {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        i32::try_from(i64::from_pg(r, i)?).map_err(|e| DbError::Other(e.to_string()))
    }
}
impl Col for Option<i32> {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        pg_int(r, i)?
            .map(i32::try_from)
            .transpose()
            .map_err(|e| DbError::Other(e.to_string()))
    }
}
impl Col for bool {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        Ok(i64::from_pg(r, i)? != 0)
    }
}
impl Col for Option<bool> {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        Ok(pg_int(r, i)?.map(|v| v != 0))
    }
}
impl Col for f64 {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        not_null(pg_float(r, i)?, i)
    }
}
impl Col for Option<f64> {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        pg_float(r, i)
    }
}
impl Col for String {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        Ok(r.try_get::<_, String>(i)?)
    }
}
impl Col for Option<String> {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        Ok(r.try_get::<_, Option<String>>(i)?)
    }
}
impl Col for Vec<u8> {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        Ok(r.try_get::<_, Vec<u8>>(i)?)
    }
}
impl Col for Option<Vec<u8>> {
    fn from_pg(r: &postgres::Row, i: usize) -> DbResult<Self> {
        Ok(r.try_get::<_, Option<Vec<u8>>>(i)?)
    }
}

/// The statements a transaction prepared, by text and parameter types.
type TxStatements = HashMap<(Arc<str>, Vec<Type>), postgres::Statement>;

/// A PostgreSQL connection. No prepared statement of it outlives a
/// transaction (see the module doc).
pub struct Pg {
    client: RefCell<postgres::Client>,
    /// Each statement text in PostgreSQL's dialect, translated once (the
    /// texts are mb's own, a bounded set; nothing of the server's).
    dialect: RefCell<HashMap<String, Arc<str>>>,
    /// The statements prepared by name in the open transaction, by text and
    /// parameter types; None outside a transaction (see the module doc).
    tx_stmts: RefCell<Option<TxStatements>>,
    /// Whether COPY straight into the usage tables works for this role
    /// (not under row-level security; see [`super::copy`]).
    pub direct_copy: std::cell::Cell<Option<bool>>,
}

/// An open connection.
pub enum Db {
    /// SQLite.
    Sqlite(rusqlite::Connection),
    /// PostgreSQL.
    Pg(Box<Pg>),
}

/// `sql` in PostgreSQL's dialect: `?N` -> `$N`, SQLite's planner hints
/// removed. String literals and quoted identifiers are left alone.
pub fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' => {
                let end = b[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .map_or(b.len(), |p| i + 1 + p + 1);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'?' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push('$');
                i += 1;
            }
            _ => {
                let rest = &sql[i..];
                let word_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
                if word_start && starts_with_ci(rest, "NOT INDEXED") {
                    i += "NOT INDEXED".len();
                } else if word_start && starts_with_ci(rest, "INDEXED BY ") {
                    i += "INDEXED BY ".len();
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                } else {
                    let ch = rest.chars().next().unwrap_or(' ');
                    out.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
    }
    out
}

fn starts_with_ci(s: &str, p: &str) -> bool {
    s.len() >= p.len() && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
}

/// The type a parameter is declared with. NULL is declared `unknown`, which
/// PostgreSQL treats as an unspecified type and infers from the context,
/// as it would for a parameter of a prepared statement (parse_param.c,
/// `variable_paramref_hook` turns an unspecified type into UNKNOWNOID, and
/// `variable_coerce_param_hook` resolves UNKNOWNOID from where it is used).
fn pg_type(v: &Value) -> Type {
    match v {
        Value::Null => Type::UNKNOWN,
        Value::Int(_) => Type::INT8,
        Value::Real(_) => Type::FLOAT8,
        Value::Text(_) => Type::TEXT,
        Value::Blob(_) => Type::BYTEA,
    }
}

/// `params` with their declared types, for `query_typed`.
fn pg_params(params: &[Value]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|v| (v as &(dyn ToSql + Sync), pg_type(v)))
        .collect()
}

impl Pg {
    /// Wrap a connected client.
    pub fn new(client: postgres::Client) -> Pg {
        Pg {
            client: RefCell::new(client),
            dialect: RefCell::new(HashMap::new()),
            tx_stmts: RefCell::new(None),
            direct_copy: std::cell::Cell::new(None),
        }
    }

    /// The client, for the PostgreSQL-only parts of the store (COPY).
    pub fn client(&self) -> DbResult<std::cell::RefMut<'_, postgres::Client>> {
        self.client
            .try_borrow_mut()
            .map_err(|_| DbError::Other("the connection is busy with another query".into()))
    }

    /// `sql` (a `?N` text) in PostgreSQL's dialect ([`translate`]d once).
    fn sql(&self, sql: &str) -> Arc<str> {
        if let Some(t) = self.dialect.borrow().get(sql) {
            return t.clone();
        }
        let t: Arc<str> = translate(sql).into();
        self.dialect.borrow_mut().insert(sql.to_owned(), t.clone());
        t
    }

    /// How `sql` (a `?N` text) with parameters of `types` runs: by name
    /// inside a transaction (prepared on first use), else unnamed.
    fn prep(&self, sql: &str, types: &[Type]) -> DbResult<Prep> {
        let text = self.sql(sql);
        let mut scope = self.tx_stmts.borrow_mut();
        let Some(stmts) = scope.as_mut() else {
            return Ok(Prep::Unnamed(text));
        };
        let key = (text, types.to_vec());
        if let Some(st) = stmts.get(&key) {
            return Ok(Prep::Named(st.clone()));
        }
        let st = self.client()?.prepare_typed(&key.0, types)?;
        stmts.insert(key, st.clone());
        Ok(Prep::Named(st))
    }

    /// A transaction has begun: statements may be prepared by name.
    fn begin_tx(&self) {
        *self.tx_stmts.borrow_mut() = Some(HashMap::new());
    }

    /// The transaction is about to end: close every statement it prepared
    /// (dropping the last handle queues the protocol's Close, sent before
    /// whatever is sent next, the `COMMIT` or `ROLLBACK`).
    fn end_tx(&self) {
        self.tx_stmts.borrow_mut().take();
    }

    /// Run `sql` (a `?N` text) with typed parameters; the rows it changed.
    fn execute_typed(&self, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> DbResult<u64> {
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        Ok(match self.prep(sql, &types)? {
            Prep::Named(st) => {
                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                self.client()?.execute(&st, &refs)?
            }
            Prep::Unnamed(text) => self.client()?.execute_typed(&text, params)?,
        })
    }

    /// Every row of `sql` (a `?N` text) with typed parameters.
    pub fn query_typed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> DbResult<Vec<postgres::Row>> {
        let mut out = Vec::new();
        self.query_each_typed(sql, params, |r| {
            out.push(r.clone());
            Ok(true)
        })?;
        Ok(out)
    }

    /// Call `f` on each row of `sql` (a `?N` text) with typed parameters,
    /// while they are read; stop at the first error, or after the first row
    /// when `f` returns false.
    fn query_each_typed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
        mut f: impl FnMut(&postgres::Row) -> DbResult<bool>,
    ) -> DbResult<()> {
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        let prep = self.prep(sql, &types)?;
        let mut client = self.client()?;
        let mut rows = match &prep {
            Prep::Named(st) => client.query_raw(st, params.iter().map(|(v, _)| *v))?,
            Prep::Unnamed(text) => client.query_typed_raw(text, params.iter().cloned())?,
        };
        while let Some(r) = rows.next()? {
            if !f(&r)? {
                break;
            }
        }
        Ok(())
    }
}

/// How a PostgreSQL statement runs (see [`Pg::prep`]).
enum Prep {
    /// Prepared by name in the open transaction.
    Named(postgres::Statement),
    /// The unnamed statement, with this text.
    Unnamed(Arc<str>),
}

impl Db {
    /// The SQLite connection, for the SQLite-only parts of the store.
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Db::Sqlite(c) => Some(c),
            Db::Pg(_) => None,
        }
    }

    /// The PostgreSQL connection, for the PostgreSQL-only parts.
    pub fn pg(&self) -> Option<&Pg> {
        match self {
            Db::Pg(p) => Some(p),
            Db::Sqlite(_) => None,
        }
    }

    /// Run a statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> DbResult<u64> {
        match self {
            Db::Sqlite(c) => {
                Ok(c.prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params))? as u64)
            }
            Db::Pg(p) => p.execute_typed(sql, &pg_params(params)),
        }
    }

    /// Run `{head} VALUES (?1, ..., ?n) {tail}` for every row of `rows`
    /// (each of n values), in order: an insert or upsert of many rows. SQLite
    /// runs its prepared statement once per row; PostgreSQL runs one
    /// statement for all of them, `{head} SELECT * FROM unnest($1::T1[],
    /// ...) {tail}`, the columns passed as arrays (one round trip instead
    /// of one per row). The rows must not repeat a conflict key.
    pub fn insert_rows(&self, head: &str, tail: &str, rows: &[Vec<Value>]) -> DbResult<()> {
        let Some(width) = rows.first().map(Vec::len) else {
            return Ok(());
        };
        match self {
            Db::Sqlite(c) => {
                let marks: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
                let sql = format!("{head} VALUES ({}) {tail}", marks.join(", "));
                let mut st = c.prepare_cached(&sql)?;
                for r in rows {
                    st.execute(rusqlite::params_from_iter(r))?;
                }
                Ok(())
            }
            Db::Pg(p) => {
                let mut cols: Vec<(Box<dyn ToSql + Sync>, Type)> = Vec::with_capacity(width);
                let mut casts = Vec::with_capacity(width);
                for i in 0..width {
                    let col = rows.iter().map(|r| r.get(i).unwrap_or(&Value::Null));
                    let kind = col.clone().find(|v| **v != Value::Null);
                    let (arr, cast, ty): (Box<dyn ToSql + Sync>, &str, Type) = match kind {
                        Some(Value::Real(_)) => (
                            Box::new(
                                col.map(|v| match v {
                                    Value::Real(f) => Some(*f),
                                    Value::Int(n) => Some(*n as f64),
                                    _ => None,
                                })
                                .collect::<Vec<Option<f64>>>(),
                            ),
                            "float8",
                            Type::FLOAT8_ARRAY,
                        ),
                        Some(Value::Text(_)) => (
                            Box::new(
                                col.map(|v| match v {
                                    Value::Text(t) => Some(t.clone()),
                                    _ => None,
                                })
                                .collect::<Vec<Option<String>>>(),
                            ),
                            "text",
                            Type::TEXT_ARRAY,
                        ),
                        Some(Value::Blob(_)) => (
                            Box::new(
                                col.map(|v| match v {
                                    Value::Blob(b) => Some(b.clone()),
                                    _ => None,
                                })
                                .collect::<Vec<Option<Vec<u8>>>>(),
                            ),
                            "bytea",
                            Type::BYTEA_ARRAY,
                        ),
                        _ => (
                            Box::new(
                                col.map(|v| match v {
                                    Value::Int(n) => Some(*n),
                                    _ => None,
                                })
                                .collect::<Vec<Option<i64>>>(),
                            ),
                            "int8",
                            Type::INT8_ARRAY,
                        ),
                    };
                    cols.push((arr, ty));
                    casts.push(format!("?{}::{cast}[]", i + 1));
                }
                let sql = format!("{head} SELECT * FROM unnest({}) {tail}", casts.join(", "));
                let refs: Vec<(&(dyn ToSql + Sync), Type)> =
                    cols.iter().map(|(b, t)| (b.as_ref(), t.clone())).collect();
                p.execute_typed(&sql, &refs)?;
                Ok(())
            }
        }
    }

    /// Run statements without parameters (DDL, `BEGIN`, ...).
    pub fn batch(&self, sql: &str) -> DbResult<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Pg(p) => Ok(p.client()?.batch_execute(sql)?),
        }
    }

    /// Call `f` on each row, in order, while they are read (not collected
    /// first). `f` must not use this connection.
    pub fn query_each(
        &self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(&Row) -> DbResult<()>,
    ) -> DbResult<()> {
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let mut rows = st.query(rusqlite::params_from_iter(params))?;
                while let Some(r) = rows.next()? {
                    f(&Row::Sqlite(r))?;
                }
                Ok(())
            }
            Db::Pg(p) => p.query_each_typed(sql, &pg_params(params), |r| {
                f(&Row::Pg(r))?;
                Ok(true)
            }),
        }
    }

    /// Every row mapped by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        let mut out = Vec::new();
        self.query_each(sql, params, |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row mapped by `f`, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<Option<T>> {
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let mut rows = st.query(rusqlite::params_from_iter(params))?;
                match rows.next()? {
                    Some(r) => Ok(Some(f(&Row::Sqlite(r))?)),
                    None => Ok(None),
                }
            }
            Db::Pg(p) => {
                // The first row, like SQLite's query_row (the client's
                // query_opt fails on a second one); `f` runs after the
                // connection is free again.
                let mut row = None;
                p.query_each_typed(sql, &pg_params(params), |r| {
                    row = Some(r.clone());
                    Ok(false)
                })?;
                match row {
                    Some(r) => Ok(Some(f(&Row::Pg(&r))?)),
                    None => Ok(None),
                }
            }
        }
    }

    /// The first row mapped by `f`; [`DbError::NoRows`] without one.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<T> {
        self.query_opt(sql, params, f)?.ok_or(DbError::NoRows)
    }

    /// Whether the query returns a row.
    pub fn exists(&self, sql: &str, params: &[Value]) -> DbResult<bool> {
        Ok(self.query_opt(sql, params, |_| Ok(()))?.is_some())
    }
}

/// A transaction on a [`Db`], begun by the backend module ([`super::sqlite`]
/// takes SQLite's write lock, [`super::pg`] the advisory lock); rolled back
/// when dropped without [`Tx::commit`].
pub struct Tx<'a> {
    db: &'a Db,
    open: bool,
}

impl<'a> Tx<'a> {
    /// A transaction already begun on `db`.
    pub(crate) fn begun(db: &'a Db) -> Tx<'a> {
        if let Some(p) = db.pg() {
            p.begin_tx();
        }
        Tx { db, open: true }
    }

    /// Send `sql` (COMMIT or ROLLBACK), after closing the statements the
    /// transaction prepared.
    fn end(&mut self, sql: &str) -> DbResult<()> {
        self.open = false;
        if let Some(p) = self.db.pg() {
            p.end_tx();
        }
        self.db.batch(sql)
    }

    /// The connection.
    pub fn db(&self) -> &'a Db {
        self.db
    }

    /// Commit.
    pub fn commit(mut self) -> DbResult<()> {
        self.end("COMMIT")
    }

    /// Roll back.
    pub fn rollback(mut self) -> DbResult<()> {
        self.end("ROLLBACK")
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.end("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            translate("SELECT a FROM t WHERE x = ?1 AND y IN (?2, ?12)"),
            "SELECT a FROM t WHERE x = $1 AND y IN ($2, $12)"
        );
    }

    #[test]
    fn quoted_text_is_left_alone() {
        assert_eq!(
            translate("SELECT '?1', \"?2\", ?3 FROM t WHERE a = 'it''s ?4'"),
            "SELECT '?1', \"?2\", $3 FROM t WHERE a = 'it''s ?4'"
        );
    }

    #[test]
    fn planner_hints_are_removed() {
        assert_eq!(
            translate("SELECT 1 FROM r INDEXED BY r_stream WHERE a = ?1"),
            "SELECT 1 FROM r  WHERE a = $1"
        );
        assert_eq!(
            translate("SELECT 1 FROM api_usage NOT INDEXED WHERE rowid >= ?1"),
            "SELECT 1 FROM api_usage  WHERE rowid >= $1"
        );
        // Only whole words.
        assert_eq!(
            translate("SELECT reindexed_by FROM t"),
            "SELECT reindexed_by FROM t"
        );
    }

    #[test]
    fn sqlite_rows_read_through_the_layer() {
        let db = Db::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        db.batch("CREATE TABLE t (a INTEGER, b TEXT, c REAL, d BLOB)")
            .unwrap();
        let n = db
            .execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
                vals![7i64, "x", 1.5f64, &b"\x00\xff"[..]],
            )
            .unwrap();
        assert_eq!(n, 1);
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
            vals![None::<i64>, None::<String>, None::<f64>, None::<Vec<u8>>],
        )
        .unwrap();
        let rows = db
            .query_map(
                "SELECT a, b, c, d, a = 7 FROM t ORDER BY rowid",
                vals![],
                |r| {
                    Ok((
                        r.get::<Option<i64>>(0)?,
                        r.get::<Option<String>>(1)?,
                        r.get::<Option<f64>>(2)?,
                        r.get::<Option<Vec<u8>>>(3).ok().flatten(),
                        r.get::<Option<bool>>(4)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    Some(7),
                    Some("x".into()),
                    Some(1.5),
                    Some(vec![0, 255]),
                    Some(true)
                ),
                (None, None, None, None, None)
            ]
        );
        assert!(matches!(
            db.query_row("SELECT a FROM t WHERE a = 99", vals![], |r| r.get::<i64>(0)),
            Err(DbError::NoRows)
        ));
        assert!(db
            .exists("SELECT 1 FROM t WHERE b = ?1", vals!["x"])
            .unwrap());
    }
}
