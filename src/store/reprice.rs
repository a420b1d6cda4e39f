//! The SQL of `mb-tokens reprice`: reading the stored unpriced api rows and
//! pricing them, with api_rollup, vm_event_hours and the audit tables
//! (schema migrations 5 and 10), in one transaction.
//!
//! Pricing itself (which table entry, what cost) is the caller's: this
//! module only moves numbers, so the rules stay in one place
//! (`tokens::prices`). What it guarantees:
//!
//! - only rows with `priced = 0` change, checked again inside the write
//!   transaction (`UPDATE ... WHERE priced = 0`), so a concurrent reprice or
//!   a row priced meanwhile is left alone and nothing is counted twice;
//! - each row's rollup contribution moves from its unpriced key
//!   (`price_key = ''`, `price_table = ''`) to its new key in the same
//!   customer, event hour and ingest hour, so reports that read api_rollup
//!   agree with api_usage after the commit exactly as they did before;
//! - every change is recorded in reprice_log (row id, old and new cost and
//!   price key, the table that priced it) under one reprice_runs row;
//! - a failure anywhere rolls everything back.

use super::db::{vals, Db, DbResult};
use super::Store;
use crate::error::{Error, Result};

/// A stored api row that is not priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpricedRow {
    /// SQLite rowid (the update key).
    pub rowid: i64,
    /// The event id.
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// Event time, ns since the epoch.
    pub ts_ns: i64,
    /// Normalised vendor.
    pub provider: String,
    /// Model as stored.
    pub model: String,
    /// Uncached input tokens.
    pub tokens_in: u64,
    /// Output tokens.
    pub tokens_out: u64,
    /// Cache reads.
    pub cache_read_tokens: u64,
    /// Cache writes.
    pub cache_write_tokens: u64,
    /// Reasoning tokens (part of output).
    pub reasoning_tokens: u64,
    /// The request failed upstream.
    pub failed: bool,
    /// Service tier as stored.
    pub service_tier: Option<String>,
    /// The price key stored with the row (normally null).
    pub price_key: Option<String>,
    /// The cost stored with the row (normally null).
    pub cost_nusd: Option<i64>,
    /// `source_format` as stored.
    pub source_format: Option<String>,
}

/// One row to price: which row, and at what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repricing {
    /// The row, as read by [`Store::unpriced_api_rows`].
    pub row: UnpricedRow,
    /// The new cost in nano-USD.
    pub cost_nusd: i64,
    /// The price key used.
    pub price_key: String,
    /// The table that priced it.
    pub price_table: String,
}

/// What [`Store::reprice`] committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repriced {
    /// The reprice_runs id (None when nothing changed: no run is recorded).
    pub reprice_id: Option<i64>,
    /// Rows priced.
    pub rows: u64,
    /// Rows skipped because they were priced meanwhile.
    pub raced: u64,
    /// Sum of the new costs, nano-USD.
    pub cost_nusd: i64,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The hour of the ingest (api_rollup's `ingest_hour_ns`) from a stored
/// `ingested_at`: its whole seconds, floored to the hour, as migration 2
/// and [`Store::writer`] compute it.
fn ingest_hour(ingested_at: &str) -> Option<i64> {
    let t = crate::time::parse_rfc3339(ingested_at)?;
    Some(t.timestamp().div_euclid(3600) * super::events::HOUR_NS)
}

impl Store {
    /// Every stored `priced = 0` api row with `ts_ns >= since_ns` (all of
    /// them without `since_ns`), oldest first.
    pub fn unpriced_api_rows(&self, since_ns: Option<i64>) -> Result<Vec<UnpricedRow>> {
        let err = |e| Error::db(self.path(), "reading unpriced api rows", e);
        let rows = self
            .conn()
            .query_map(
                "SELECT rowid, id, customer_id, ts_ns, provider, model, tokens_in, tokens_out, \
                 cache_read_tokens, cache_write_tokens, reasoning_tokens, failed, service_tier, \
                 price_key, cost_nusd, source_format FROM api_usage \
                 WHERE priced = 0 AND ts_ns >= ?1 ORDER BY ts_ns, rowid",
                vals![since_ns.unwrap_or(i64::MIN)],
                |r| {
                    Ok(UnpricedRow {
                        rowid: r.get(0)?,
                        id: r.get(1)?,
                        customer_id: r.get(2)?,
                        ts_ns: r.get(3)?,
                        provider: r.get(4)?,
                        model: r.get(5)?,
                        tokens_in: u(r.get(6)?),
                        tokens_out: u(r.get(7)?),
                        cache_read_tokens: u(r.get(8)?),
                        cache_write_tokens: u(r.get(9)?),
                        reasoning_tokens: u(r.get(10)?),
                        failed: r.get(11)?,
                        service_tier: r.get(12)?,
                        price_key: r.get(13)?,
                        cost_nusd: r.get(14)?,
                        source_format: r.get(15)?,
                    })
                },
            )
            .map_err(err)?;
        Ok(rows)
    }

    /// Price `changes` in one transaction, with api_rollup and the audit
    /// tables; `tables` names the price tables used (for reprice_runs).
    /// Nothing is written when `changes` is empty or every row was priced
    /// meanwhile.
    pub fn reprice(
        &self,
        changes: &[Repricing],
        tables: &[String],
        since_ns: Option<i64>,
        now: &str,
    ) -> Result<Repriced> {
        let path = self.path().to_path_buf();
        let path = &path;
        let err = |ctx: &'static str| move |e| Error::db(path, ctx, e);
        let tx = self.begin_write()?;
        let db = tx.db();
        let mut out = Repriced::default();
        let tables_json = serde_json::to_string(tables).unwrap_or_else(|_| "[]".into());
        let run: i64 = db
            .query_row(
                "INSERT INTO reprice_runs (repriced_at, price_tables, since_ns, rows, cost_nusd) \
                 VALUES (?1, ?2, ?3, 0, 0) RETURNING reprice_id",
                vals![now, tables_json, since_ns],
                |r| r.get(0),
            )
            .map_err(err("recording the reprice run"))?;
        {
            let update = "UPDATE api_usage SET priced = 1, cost_nusd = ?2, price_key = ?3, \
                 price_table = ?4 WHERE rowid = ?1 AND priced = 0 RETURNING ingested_at";
            // The row's unpriced contribution leaves its old rollup key ...
            let sub = "UPDATE api_rollup SET requests = requests - 1, \
                     failed_requests = failed_requests - ?8, \
                     unpriced_requests = unpriced_requests - 1, \
                     tokens_in = tokens_in - ?9, tokens_out = tokens_out - ?10, \
                     cache_read_tokens = cache_read_tokens - ?11, \
                     cache_write_tokens = cache_write_tokens - ?12, \
                     reasoning_tokens = reasoning_tokens - ?13, \
                     cost_nusd = cost_nusd - ?14 \
                     WHERE customer_id = ?1 AND hour_ns = ?2 AND provider = ?3 AND model = ?4 \
                     AND price_key = ?5 AND price_table = ?6 AND ingest_hour_ns = ?7 \
                     AND unpriced_requests > 0";
            let drop_empty = "DELETE FROM api_rollup WHERE customer_id = ?1 AND hour_ns = ?2 \
                     AND provider = ?3 AND model = ?4 AND price_key = ?5 AND price_table = ?6 \
                     AND ingest_hour_ns = ?7 AND requests = 0";
            // ... and joins its priced key, in the same hours.
            let add = "INSERT INTO api_rollup (customer_id, hour_ns, provider, model, price_key, \
                     price_table, ingest_hour_ns, requests, failed_requests, unpriced_requests, \
                     tokens_in, tokens_out, cache_read_tokens, cache_write_tokens, \
                     reasoning_tokens, cost_nusd) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, 0, ?9, ?10, ?11, ?12, ?13, ?14) \
                     ON CONFLICT (customer_id, hour_ns, provider, model, price_key, price_table, \
                     ingest_hour_ns) DO UPDATE SET requests = api_rollup.requests + 1, \
                     failed_requests = api_rollup.failed_requests + excluded.failed_requests, \
                     tokens_in = api_rollup.tokens_in + excluded.tokens_in, \
                     tokens_out = api_rollup.tokens_out + excluded.tokens_out, \
                     cache_read_tokens = api_rollup.cache_read_tokens + excluded.cache_read_tokens, \
                     cache_write_tokens = api_rollup.cache_write_tokens + excluded.cache_write_tokens, \
                     reasoning_tokens = api_rollup.reasoning_tokens + excluded.reasoning_tokens, \
                     cost_nusd = api_rollup.cost_nusd + excluded.cost_nusd";
            let log = "INSERT INTO reprice_log (reprice_id, id, old_cost_nusd, new_cost_nusd, \
                     old_price_key, new_price_key, price_table) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
            for c in changes {
                let r = &c.row;
                let stamp: Option<String> = db
                    .query_opt(
                        update,
                        vals![r.rowid, c.cost_nusd, c.price_key, c.price_table],
                        |row| row.get(0),
                    )
                    .map_err(err("pricing a row"))?;
                let Some(stamp) = stamp else {
                    out.raced += 1;
                    continue;
                };
                let Some(ingest_hour) = ingest_hour(&stamp) else {
                    return Err(Error::Invalid(format!(
                        "{}: api row {} has an unreadable ingested_at {stamp:?}; nothing was changed",
                        self.path().display(),
                        r.id
                    )));
                };
                let hour = r.ts_ns - r.ts_ns.rem_euclid(super::events::HOUR_NS);
                let old_key = r.price_key.clone().unwrap_or_default();
                let counts = (
                    i64::from(r.failed),
                    i(r.tokens_in),
                    i(r.tokens_out),
                    i(r.cache_read_tokens),
                    i(r.cache_write_tokens),
                    i(r.reasoning_tokens),
                );
                let n = db
                    .execute(
                        sub,
                        vals![
                            r.customer_id,
                            hour,
                            r.provider,
                            r.model,
                            old_key,
                            // Unpriced rows are stored without a price table.
                            "",
                            ingest_hour,
                            counts.0,
                            counts.1,
                            counts.2,
                            counts.3,
                            counts.4,
                            counts.5,
                            r.cost_nusd.unwrap_or(0)
                        ],
                    )
                    .map_err(err("updating api_rollup"))?;
                if n != 1 {
                    // The rollup must hold every stored row; if it does not,
                    // pricing this row would make reports disagree.
                    return Err(Error::Invalid(format!(
                        "{}: api_rollup has no unpriced entry for row {} (customer {}, model {}); \
                         nothing was changed. Rebuild the rollup or report this as a bug.",
                        self.path().display(),
                        r.id,
                        r.customer_id,
                        r.model
                    )));
                }
                db.execute(
                    drop_empty,
                    vals![
                        r.customer_id,
                        hour,
                        r.provider,
                        r.model,
                        old_key,
                        "",
                        ingest_hour
                    ],
                )
                .map_err(err("updating api_rollup"))?;
                db.execute(
                    add,
                    vals![
                        r.customer_id,
                        hour,
                        r.provider,
                        r.model,
                        c.price_key,
                        c.price_table,
                        ingest_hour,
                        counts.0,
                        counts.1,
                        counts.2,
                        counts.3,
                        counts.4,
                        counts.5,
                        c.cost_nusd
                    ],
                )
                .map_err(err("updating api_rollup"))?;
                super::vm_hours::repriced(
                    db,
                    r.rowid,
                    &r.customer_id,
                    r.ts_ns,
                    r.cost_nusd.unwrap_or(0),
                    c.cost_nusd,
                )
                .map_err(err("updating vm_event_hours"))?;
                db.execute(
                    log,
                    vals![
                        run,
                        r.id,
                        r.cost_nusd,
                        c.cost_nusd,
                        r.price_key,
                        c.price_key,
                        c.price_table
                    ],
                )
                .map_err(err("recording a repriced row"))?;
                out.rows += 1;
                out.cost_nusd = out.cost_nusd.checked_add(c.cost_nusd).ok_or_else(|| {
                    Error::Invalid("the repriced total overflows 64 bits of nano-USD".into())
                })?;
            }
        }
        if out.rows == 0 {
            tx.rollback().map_err(err("rolling back"))?;
            return Ok(out);
        }
        db.execute(
            "UPDATE reprice_runs SET rows = ?2, cost_nusd = ?3 WHERE reprice_id = ?1",
            vals![run, i(out.rows), out.cost_nusd],
        )
        .map_err(err("recording the reprice run"))?;
        tx.commit().map_err(err("committing the reprice"))?;
        out.reprice_id = Some(run);
        Ok(out)
    }

    /// True when the api row `id` was priced by `mb-tokens reprice`.
    pub(crate) fn was_repriced(db: &Db, id: &str) -> DbResult<bool> {
        db.exists("SELECT 1 FROM reprice_log WHERE id = ?1", vals![id])
    }
}
