//! `mb-tokens reprice`: price stored usage that was stored unpriced.
//!
//! When the proxy serves a model the price table does not know, mb-tokens
//! writes its lines unpriced and the invoice refuses to bill them. Once a
//! price is added (`--prices FILE`), this prices every stored `priced =
//! false` api row that the table now covers, with the same rules mb-tokens
//! applies to new lines (model matching, long-context and service tiers),
//! and leaves everything else alone:
//!
//! - a priced row is never touched, so running it again changes nothing;
//! - a row whose tokens upstream could not classify
//!   (`source_format` `usage-queue-unclassified`) is never priced: its
//!   `tokens_in` is a total, not uncached input;
//! - a row the table still does not cover stays unpriced and is listed.
//!
//! The SQL (rows, api_rollup and the audit tables, in one transaction) is
//! in `store::reprice`; this module decides the prices and reports.

use std::collections::BTreeMap;

use super::prices::{self, PriceTable, Tokens};
use super::usage::UNCLASSIFIED_QUEUE;
use crate::error::Result;
use crate::store::reprice::{Repriced, Repricing, UnpricedRow};
use crate::store::Store;

/// What a reprice run found and did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The rows priced (or, with `--dry-run`, that would be).
    pub changes: Vec<Repricing>,
    /// Rows still unpriced, per model (no entry in the table).
    pub still_unpriced: BTreeMap<String, u64>,
    /// Rows skipped because their tokens are unclassified.
    pub unclassified: u64,
    /// Rows whose cost does not fit (corrupt counts), by id.
    pub overflow: Vec<String>,
    /// What was committed (zero with `--dry-run`).
    pub committed: Repriced,
}

/// Price one row with `table`: the price key, table name and cost, or
/// `None` when the table has no entry for its model. `Some(Err(()))` when
/// the cost overflows.
pub fn price_row(
    table: &PriceTable,
    row: &UnpricedRow,
) -> Option<std::result::Result<(String, String, i64), ()>> {
    let p = table.lookup(&row.model)?;
    let t = Tokens {
        input: row.tokens_in,
        output: row.tokens_out,
        cache_read: row.cache_read_tokens,
        cache_write: row.cache_write_tokens,
        // The 1-hour share of cache writes is not stored; every write is
        // priced at the 5-minute rate (docs/mb-tokens.md).
        cache_write_1h: 0,
        reasoning: row.reasoning_tokens,
    };
    let service = row
        .service_tier
        .as_deref()
        .and_then(prices::service_tier_name);
    let (cost, used) = if t.is_zero() {
        (Some(0), false)
    } else {
        p.cost_nanos_at(&t, service)
    };
    Some(match cost {
        Some(c) => Ok((p.key_for(service, used), p.table.clone(), c)),
        None => Err(()),
    })
}

/// Find what `table` can price among the unpriced rows since `since_ns`,
/// and unless `dry_run`, commit it. `tables` names the price tables for the
/// audit row; `now` is the time recorded.
pub fn run(
    store: &Store,
    table: &PriceTable,
    tables: &[String],
    since_ns: Option<i64>,
    dry_run: bool,
    now: &str,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    for row in store.unpriced_api_rows(since_ns)? {
        if row.source_format.as_deref() == Some(UNCLASSIFIED_QUEUE) {
            out.unclassified += 1;
            continue;
        }
        match price_row(table, &row) {
            None => *out.still_unpriced.entry(row.model.clone()).or_default() += 1,
            Some(Err(())) => out.overflow.push(row.id.clone()),
            Some(Ok((price_key, price_table, cost_nusd))) => out.changes.push(Repricing {
                row,
                cost_nusd,
                price_key,
                price_table,
            }),
        }
    }
    if !dry_run && !out.changes.is_empty() {
        out.committed = store.reprice(&out.changes, tables, since_ns, now)?;
    }
    Ok(out)
}
