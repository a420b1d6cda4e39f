//! Read queries for reports and the dashboard.
//!
//! API usage over a time range is answered from `api_rollup` for the whole
//! UTC hours inside the range and from `api_usage` for the partial hours at
//! its edges, so a month for one customer reads a few thousand rollup rows
//! instead of hundreds of thousands of events, whatever the zone of the
//! period. With an ingest-time cutoff (`--as-of`) the rollup rows of later
//! ingest hours are skipped and the rows of the cutoff's own ingest hour
//! that came after it are subtracted (found by binary search over rowid:
//! mb-ingest keeps `ingested_at` non-decreasing in rowid order).
//! A `--vm` filter reads `api_usage` directly (the rollup is per customer).
//!
//! Resource usage is read per (customer, VM) through
//! [`super::resource_rollup`]: whole hours from `resource_rollup`, the
//! partial hours at the edges from the samples.

use std::collections::BTreeMap;

use super::db::{vals, DbError, DbResult, Row, Value};
use super::events::HOUR_NS;
use super::{resource_rollup, Store};
use crate::error::{Error, Result};
use crate::events::{Event, Kind};
use crate::report::resource::VmAcc;

/// Summed API usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApiAgg {
    /// Requests (events).
    pub requests: i64,
    /// Requests that failed upstream.
    pub failed_requests: i64,
    /// Requests without a price.
    pub unpriced_requests: i64,
    /// Uncached input tokens.
    pub tokens_in: i64,
    /// Output tokens.
    pub tokens_out: i64,
    /// Cache read tokens.
    pub cache_read_tokens: i64,
    /// Cache write tokens.
    pub cache_write_tokens: i64,
    /// Reasoning tokens (part of tokens_out).
    pub reasoning_tokens: i64,
    /// Cost of the priced requests, nano-USD.
    pub cost_nusd: i64,
}

impl ApiAgg {
    /// Every billable token (in + out + cache read + cache write).
    pub fn total_tokens(&self) -> i64 {
        self.tokens_in + self.tokens_out + self.cache_read_tokens + self.cache_write_tokens
    }

    /// Add `o`, or subtract it when `sign` is -1.
    pub fn add(&mut self, o: &ApiAgg, sign: i64) {
        self.requests += sign * o.requests;
        self.failed_requests += sign * o.failed_requests;
        self.unpriced_requests += sign * o.unpriced_requests;
        self.tokens_in += sign * o.tokens_in;
        self.tokens_out += sign * o.tokens_out;
        self.cache_read_tokens += sign * o.cache_read_tokens;
        self.cache_write_tokens += sign * o.cache_write_tokens;
        self.reasoning_tokens += sign * o.reasoning_tokens;
        self.cost_nusd += sign * o.cost_nusd;
    }

    fn from_row(r: &Row, at: usize) -> DbResult<ApiAgg> {
        Ok(ApiAgg {
            requests: r.get(at)?,
            failed_requests: r.get(at + 1)?,
            unpriced_requests: r.get(at + 2)?,
            tokens_in: r.get(at + 3)?,
            tokens_out: r.get(at + 4)?,
            cache_read_tokens: r.get(at + 5)?,
            cache_write_tokens: r.get(at + 6)?,
            reasoning_tokens: r.get(at + 7)?,
            cost_nusd: r.get(at + 8)?,
        })
    }
}

/// The grouping key of API totals.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiKey {
    /// Customer.
    pub customer_id: String,
    /// Provider.
    pub provider: String,
    /// Model as reported.
    pub model: String,
    /// Price table name ('' when unpriced).
    pub price_table: String,
}

/// Which rows a query covers: `[start_ns, end_ns)` of event time, optional
/// customer and VM, optional ingest-time cutoff.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Range start, Unix ns (inclusive).
    pub start_ns: i64,
    /// Range end, Unix ns (exclusive).
    pub end_ns: i64,
    /// Only this customer.
    pub customer: Option<&'a str>,
    /// Only this VM.
    pub vm: Option<&'a str>,
    /// Only rows ingested at or before this time (fixed-width RFC 3339,
    /// as stored in `ingested_at`).
    pub as_of: Option<&'a str>,
}

/// How resource usage is read: from the rollup (reports, dashboard) or from
/// every sample (the reference the rollup must equal; `MB_RESOURCE_PATH=raw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourcePath {
    /// Whole hours from `resource_rollup`, samples at the edges.
    Rollup,
    /// Every sample of the range.
    Raw,
}

impl ResourcePath {
    /// The path chosen by `MB_RESOURCE_PATH` (`raw` or `rollup`, the
    /// default), for benchmarks and cross-checks.
    pub fn from_env() -> ResourcePath {
        match std::env::var("MB_RESOURCE_PATH").as_deref() {
            Ok("raw") => ResourcePath::Raw,
            _ => ResourcePath::Rollup,
        }
    }
}

/// Activity totals per customer and type.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ActivityRow {
    /// Customer.
    pub customer_id: String,
    /// Activity type.
    pub activity_type: String,
    /// Number of events.
    pub count: i64,
    /// Sum of durations, seconds.
    pub duration_seconds: f64,
}

/// One customer_changes row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    /// Customer.
    pub customer_id: String,
    /// tier or status.
    pub field: String,
    /// New value.
    pub value: String,
    /// Effective, Unix ns.
    pub effective_ns: i64,
    /// Insertion order (tie-break).
    pub change_id: i64,
}

fn floor_hour(ns: i64) -> i64 {
    ns.div_euclid(HOUR_NS) * HOUR_NS
}

fn ceil_hour(ns: i64) -> i64 {
    -((-ns).div_euclid(HOUR_NS)) * HOUR_NS
}

/// `ingested_at` text of the next whole hour after `as_of` (fixed width).
fn next_hour_text(as_of: &str) -> Option<String> {
    let t = crate::time::parse_rfc3339(as_of)?;
    let ns = crate::time::to_unix_nanos(&t)?;
    let next = floor_hour(ns) + HOUR_NS;
    Some(crate::time::format_fixed_micros(
        &crate::time::from_unix_nanos(next),
    ))
}

const AGG_COLS: &str = "count(*), coalesce(CAST(sum(failed) AS BIGINT), 0), \
    coalesce(CAST(sum(1 - priced) AS BIGINT), 0), coalesce(CAST(sum(tokens_in) AS BIGINT), 0), \
    coalesce(CAST(sum(tokens_out) AS BIGINT), 0), coalesce(CAST(sum(cache_read_tokens) AS BIGINT), 0), \
    coalesce(CAST(sum(cache_write_tokens) AS BIGINT), 0), \
    coalesce(CAST(sum(reasoning_tokens) AS BIGINT), 0), coalesce(CAST(sum(cost_nusd) AS BIGINT), 0)";

const ROLLUP_AGG_COLS: &str =
    "CAST(sum(requests) AS BIGINT), CAST(sum(failed_requests) AS BIGINT), \
    CAST(sum(unpriced_requests) AS BIGINT), CAST(sum(tokens_in) AS BIGINT), \
    CAST(sum(tokens_out) AS BIGINT), CAST(sum(cache_read_tokens) AS BIGINT), \
    CAST(sum(cache_write_tokens) AS BIGINT), CAST(sum(reasoning_tokens) AS BIGINT), \
    CAST(sum(cost_nusd) AS BIGINT)";

impl Store {
    fn query_err(&self) -> impl Fn(DbError) -> Error + '_ {
        move |e| Error::db(self.path(), "querying", e)
    }

    /// API usage in `scope`, summed per customer, provider, model and price
    /// table, in key order.
    pub fn api_totals(&self, scope: &Scope) -> Result<BTreeMap<ApiKey, ApiAgg>> {
        let mut out = BTreeMap::new();
        if scope.start_ns >= scope.end_ns {
            return Ok(out);
        }
        let (h0, h1) = (ceil_hour(scope.start_ns), floor_hour(scope.end_ns));
        if scope.vm.is_some() || h0 >= h1 {
            self.api_raw(scope, scope.start_ns, scope.end_ns, 1, &mut out)?;
        } else {
            self.api_rollup(scope, h0, h1, &mut out)?;
            if let Some(as_of) = scope.as_of {
                // Rows of the cutoff's ingest hour that came after the cutoff.
                let next = next_hour_text(as_of).unwrap_or_default();
                self.api_raw_ingested_between(scope, h0, h1, as_of, &next, &mut out)?;
            }
            self.api_raw(scope, scope.start_ns, h0, 1, &mut out)?;
            self.api_raw(scope, h1, scope.end_ns, 1, &mut out)?;
        }
        out.retain(|_, v| v.requests != 0);
        Ok(out)
    }

    fn collect_api(
        &self,
        sql: &str,
        args: Vec<Value>,
        sign: i64,
        out: &mut BTreeMap<ApiKey, ApiAgg>,
    ) -> Result<()> {
        self.conn()
            .query_each(sql, &args, |r| {
                let key = ApiKey {
                    customer_id: r.get(0)?,
                    provider: r.get(1)?,
                    model: r.get(2)?,
                    price_table: r.get(3)?,
                };
                let agg = ApiAgg::from_row(r, 4)?;
                out.entry(key).or_default().add(&agg, sign);
                Ok(())
            })
            .map_err(self.query_err())
    }

    fn api_raw(
        &self,
        scope: &Scope,
        a: i64,
        b: i64,
        sign: i64,
        out: &mut BTreeMap<ApiKey, ApiAgg>,
    ) -> Result<()> {
        if a >= b {
            return Ok(());
        }
        let Some(customer) = scope.customer else {
            // No index leads with the time: per customer through the
            // (customer, time) index instead of a pass over the table, for
            // the customers the rollup lists in those hours (it holds every
            // stored row).
            for c in self.rollup_customers("api_rollup", "", a, b)? {
                let one = Scope {
                    customer: Some(&c),
                    ..*scope
                };
                self.api_raw(&one, a, b, sign, out)?;
            }
            return Ok(());
        };
        let mut sql = format!(
            "SELECT customer_id, provider, model, coalesce(price_table, ''), {AGG_COLS} \
             FROM api_usage WHERE ts_ns >= ?1 AND ts_ns < ?2"
        );
        let mut args: Vec<Value> = vec![a.into(), b.into()];
        push_filters(
            &mut sql,
            &mut args,
            &Scope {
                customer: Some(customer),
                ..*scope
            },
            true,
        );
        sql.push_str(" GROUP BY 1, 2, 3, 4");
        self.collect_api(&sql, args, sign, out)
    }

    /// The customers with a row in `table` (a rollup by UTC hour, with
    /// `cond` on it) in the hours meeting `[a, b)`, sorted.
    fn rollup_customers(&self, table: &str, cond: &str, a: i64, b: i64) -> Result<Vec<String>> {
        self.conn()
            .query_map(
                &format!(
                    "SELECT DISTINCT customer_id FROM {table} WHERE hour_ns >= ?1 \
                     AND hour_ns < ?2 {cond} ORDER BY 1"
                ),
                vals![floor_hour(a), b],
                |r| r.get::<String>(0),
            )
            .map_err(self.query_err())
    }

    /// The lowest rowid from which every row of usage `table` has an
    /// `ingested_at` satisfying `pred`, a predicate that, like `ingested_at`
    /// itself (see Store::writer), only ever goes from false to true in
    /// rowid order. Binary search with one point lookup per step (at most
    /// 64; about 20 for a million rows).
    fn first_rowid_where(&self, table: &str, pred: impl Fn(&str) -> bool) -> Result<i64> {
        let conn = self.conn();
        let (min, max): (Option<i64>, Option<i64>) = conn
            // Two subqueries: SQLite answers a lone min() or max() of the
            // rowid from the b-tree's ends, but scans for both at once.
            .query_row(
                &format!(
                    "SELECT (SELECT min(rowid) FROM {table}), (SELECT max(rowid) FROM {table})"
                ),
                vals![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.query_err())?;
        let (Some(min), Some(max)) = (min, max) else {
            return Ok(0);
        };
        let sql = format!(
            "SELECT rowid, ingested_at FROM {table} WHERE rowid >= ?1 ORDER BY rowid LIMIT 1"
        );
        // Rows below `lo` fail `pred`; rows from `hi` on satisfy it.
        let (mut lo, mut hi) = (min, max.saturating_add(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let row: Option<(i64, String)> = conn
                .query_opt(&sql, vals![mid], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(self.query_err())?;
            match row {
                Some((r, t)) if !pred(&t) => lo = r.saturating_add(1),
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    fn api_raw_ingested_between(
        &self,
        scope: &Scope,
        h0: i64,
        h1: i64,
        after: &str,
        before: &str,
        out: &mut BTreeMap<ApiKey, ApiAgg>,
    ) -> Result<()> {
        // At most one ingest hour of rows qualifies. ingested_at never
        // decreases with rowid (see Store::writer), so they are one rowid
        // range; NOT INDEXED keeps SQLite on it rather than on the
        // customer index, which would read the customer's whole period.
        let r0 = self.first_rowid_where("api_usage", |t| t > after)?;
        let r1 = self.first_rowid_where("api_usage", |t| t >= before)?;
        let mut sql = format!(
            "SELECT customer_id, provider, model, coalesce(price_table, ''), {AGG_COLS} \
             FROM api_usage NOT INDEXED \
             WHERE rowid >= ?1 AND rowid < ?2 AND ingested_at > ?3 AND ingested_at < ?4 \
             AND ts_ns >= ?5 AND ts_ns < ?6"
        );
        let mut args: Vec<Value> = vec![
            r0.into(),
            r1.into(),
            after.to_string().into(),
            before.to_string().into(),
            h0.into(),
            h1.into(),
        ];
        let unlimited = Scope {
            as_of: None,
            ..*scope
        };
        push_filters(&mut sql, &mut args, &unlimited, true);
        sql.push_str(" GROUP BY 1, 2, 3, 4");
        self.collect_api(&sql, args, -1, out)
    }

    fn api_rollup(
        &self,
        scope: &Scope,
        h0: i64,
        h1: i64,
        out: &mut BTreeMap<ApiKey, ApiAgg>,
    ) -> Result<()> {
        let mut sql = format!(
            "SELECT customer_id, provider, model, price_table, {ROLLUP_AGG_COLS} \
             FROM api_rollup WHERE hour_ns >= ?1 AND hour_ns < ?2"
        );
        let mut args: Vec<Value> = vec![h0.into(), h1.into()];
        if let Some(c) = scope.customer {
            sql.push_str(&format!(" AND customer_id = ?{}", args.len() + 1));
            args.push(c.to_string().into());
        }
        if let Some(as_of) = scope.as_of {
            let t = crate::time::parse_rfc3339(as_of)
                .and_then(|t| crate::time::to_unix_nanos(&t))
                .unwrap_or(i64::MAX);
            sql.push_str(&format!(" AND ingest_hour_ns <= ?{}", args.len() + 1));
            args.push(floor_hour(t).into());
        }
        sql.push_str(" GROUP BY 1, 2, 3, 4");
        self.collect_api(&sql, args, 1, out)
    }

    /// Resource usage in `scope` per (customer, VM), exact (see
    /// [`crate::report::resource`]), through `path`. VMs with neither a
    /// sample nor an interval in the range are left out.
    pub fn resource_usage(
        &self,
        scope: &Scope,
        path: ResourcePath,
    ) -> Result<BTreeMap<(String, String), VmAcc>> {
        // With a cutoff, the samples ingested by then are those below one
        // rowid (ingested_at never decreases with it), and the rollup rows
        // of earlier ingest hours are complete.
        let cutoff = match scope.as_of {
            Some(a) => {
                let hour = crate::time::parse_rfc3339(a)
                    .and_then(|t| crate::time::to_unix_nanos(&t))
                    .map_or(i64::MAX, floor_hour);
                Some((self.first_rowid_where("resource_usage", |t| t > a)?, hour))
            }
            None => None,
        };
        let w = resource_rollup::Window {
            start_ns: scope.start_ns,
            end_ns: scope.end_ns,
            customer: scope.customer,
            vm: scope.vm,
            cutoff,
        };
        if scope.start_ns >= scope.end_ns {
            return Ok(BTreeMap::new());
        }
        match path {
            ResourcePath::Rollup => resource_rollup::rollup_usage(self.conn(), &w),
            ResourcePath::Raw => resource_rollup::raw_usage(self.conn(), &w),
        }
        .map_err(self.query_err())
    }

    /// Whether the registry lists `vm` for a customer other than `customer`.
    pub fn vm_registered_elsewhere(&self, vm: &str, customer: &str) -> Result<bool> {
        self.conn()
            .exists(
                "SELECT 1 FROM customer_vms WHERE vm_id = ?1 AND customer_id <> ?2 LIMIT 1",
                vals![vm, customer],
            )
            .map_err(self.query_err())
    }

    /// The VMs the registry lists for `customer`, sorted.
    pub fn customer_vms(&self, customer: &str) -> Result<Vec<String>> {
        self.conn()
            .query_map(
                "SELECT vm_id FROM customer_vms WHERE customer_id = ?1 ORDER BY vm_id",
                vals![customer],
                |r| r.get(0),
            )
            .map_err(self.query_err())
    }

    /// Activity in `scope`, per customer and type, sorted.
    pub fn activity_totals(&self, scope: &Scope) -> Result<Vec<ActivityRow>> {
        let Some(customer) = scope.customer else {
            // Per customer through the (customer, time) index, for those
            // vm_event_hours lists in the range (it holds every row).
            let mut out = Vec::new();
            let cs = self.rollup_customers(
                "vm_event_hours",
                "AND kind = 'activity'",
                scope.start_ns,
                scope.end_ns,
            )?;
            for c in cs {
                out.extend(self.activity_totals(&Scope {
                    customer: Some(&c),
                    ..*scope
                })?);
            }
            return Ok(out);
        };
        let scope = &Scope {
            customer: Some(customer),
            ..*scope
        };
        // The durations are summed here, not in SQL: the engines sum
        // floats differently (SQLite compensates the rounding, PostgreSQL
        // does not), and reports must come out the same from both. The
        // rows are read in a fixed order and summed with Neumaier's
        // compensation, as SQLite's sum() does.
        let mut sql = String::from(
            "SELECT customer_id, activity_type, duration_seconds \
             FROM activity_log WHERE ts_ns >= ?1 AND ts_ns < ?2",
        );
        let mut args: Vec<Value> = vec![scope.start_ns.into(), scope.end_ns.into()];
        push_filters(&mut sql, &mut args, scope, true);
        sql.push_str(" ORDER BY customer_id, activity_type, ts_ns, id");
        let mut out: Vec<ActivityRow> = Vec::new();
        let mut comp = 0.0f64;
        self.conn()
            .query_each(&sql, &args, |r| {
                let (customer_id, activity_type): (String, String) = (r.get(0)?, r.get(1)?);
                let d: f64 = r.get(2)?;
                let same = out.last().is_some_and(|l| {
                    l.customer_id == customer_id && l.activity_type == activity_type
                });
                if !same {
                    if let Some(l) = out.last_mut() {
                        l.duration_seconds += comp;
                    }
                    comp = 0.0;
                    out.push(ActivityRow {
                        customer_id,
                        activity_type,
                        count: 0,
                        duration_seconds: 0.0,
                    });
                }
                if let Some(l) = out.last_mut() {
                    l.count += 1;
                    let (s, t) = (l.duration_seconds, l.duration_seconds + d);
                    comp += if s.abs() >= d.abs() {
                        (s - t) + d
                    } else {
                        (d - t) + s
                    };
                    l.duration_seconds = t;
                }
                Ok(())
            })
            .map_err(self.query_err())?;
        if let Some(l) = out.last_mut() {
            l.duration_seconds += comp;
        }
        Ok(out)
    }

    /// Whether any usage event of `customer` is stored, at any time: one
    /// index probe per table (each is indexed by customer first).
    pub fn has_usage(&self, customer: &str) -> Result<bool> {
        for t in ["api_usage", "resource_usage", "activity_log"] {
            if self
                .conn()
                .exists(
                    &format!("SELECT 1 FROM {t} WHERE customer_id = ?1 LIMIT 1"),
                    vals![customer],
                )
                .map_err(self.query_err())?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Customers with any usage event in `[start_ns, end_ns)` (respecting
    /// the cutoff), sorted.
    pub fn customers_with_usage(&self, scope: &Scope) -> Result<Vec<String>> {
        let mut ids: Vec<String> = Vec::new();
        // API: from the rollup's hour index (a superset), checked below.
        let mut candidates: Vec<String> = Vec::new();
        candidates.extend(
            self.conn()
                .query_map(
                    "SELECT DISTINCT customer_id FROM api_rollup WHERE hour_ns >= ?1 AND hour_ns < ?2",
                    vals![floor_hour(scope.start_ns), ceil_hour(scope.end_ns)],
                    |r| r.get::<String>(0),
                )
                .map_err(self.query_err())?,
        );
        // Resource samples: from the stream list, not the samples.
        candidates.extend(
            self.conn()
                .query_map(
                    "SELECT DISTINCT customer_id FROM resource_streams",
                    vals![],
                    |r| r.get::<String>(0),
                )
                .map_err(self.query_err())?,
        );
        // Activity: from its per-hour table, not the rows.
        candidates.extend(self.rollup_customers(
            "vm_event_hours",
            "AND kind = 'activity'",
            scope.start_ns,
            scope.end_ns,
        )?);
        candidates.sort();
        candidates.dedup();
        let resource_cutoff = match scope.as_of {
            Some(a) => Some(self.first_rowid_where("resource_usage", |t| t > a)?),
            None => None,
        };
        for c in candidates {
            if self.has_resource_sample(&c, scope, resource_cutoff)? {
                ids.push(c);
                continue;
            }
            let mut found = false;
            for t in ["api_usage", "activity_log"] {
                let mut sql = format!(
                    "SELECT 1 FROM {t} WHERE customer_id = ?1 AND ts_ns >= ?2 AND ts_ns < ?3"
                );
                let mut args: Vec<Value> =
                    vec![c.clone().into(), scope.start_ns.into(), scope.end_ns.into()];
                if let Some(a) = scope.as_of {
                    sql.push_str(" AND ingested_at <= ?4");
                    args.push(a.to_string().into());
                }
                sql.push_str(" LIMIT 1");
                if self.conn().exists(&sql, &args).map_err(self.query_err())? {
                    found = true;
                    break;
                }
            }
            if found {
                ids.push(c);
            }
        }
        Ok(ids)
    }

    /// Whether `customer` has a resource sample in the scope's range stored
    /// below `cutoff` (a rowid): one index seek per VM of the customer.
    fn has_resource_sample(
        &self,
        customer: &str,
        scope: &Scope,
        cutoff: Option<i64>,
    ) -> Result<bool> {
        let vms: Vec<String> = self
            .conn()
            .query_map(
                "SELECT vm_id FROM resource_streams WHERE customer_id = ?1 \
                 AND first_ts_ns < ?2 AND last_ts_ns >= ?3 ORDER BY vm_id",
                vals![customer, scope.end_ns, scope.start_ns],
                |r| r.get(0),
            )
            .map_err(self.query_err())?;
        for vm in vms {
            let args = vals![
                customer,
                vm,
                scope.start_ns,
                scope.end_ns,
                cutoff.unwrap_or(i64::MAX)
            ];
            if self
                .conn()
                .exists(
                    "SELECT 1 FROM resource_usage WHERE customer_id = ?1 AND vm_id = ?2 \
                     AND ts_ns >= ?3 AND ts_ns < ?4 AND rowid < ?5 LIMIT 1",
                    args,
                )
                .map_err(self.query_err())?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every tier/status change still in force (withdrawn ones left out),
    /// for invoice proration.
    pub fn all_changes(&self) -> Result<Vec<ChangeRow>> {
        self.conn()
            .query_map(
                "SELECT customer_id, field, value, effective_ns, change_id FROM customer_changes_live \
                 ORDER BY customer_id, field, effective_ns, change_id",
                vals![],
                |r| {
                Ok(ChangeRow {
                    customer_id: r.get(0)?,
                    field: r.get(1)?,
                    value: r.get(2)?,
                    effective_ns: r.get(3)?,
                    change_id: r.get(4)?,
                })
            },
            )
            .map_err(self.query_err())
    }

    /// Stream the stored events of `kind` in `scope` (ordered by time, then
    /// id) to `f`; stops early when `f` fails.
    pub fn for_each_event(
        &self,
        kind: Kind,
        scope: &Scope,
        f: &mut dyn FnMut(&Event) -> Result<()>,
    ) -> Result<()> {
        let (table, cols, map) = super::events::table(kind);
        let mut sql = format!("SELECT {cols} FROM {table} WHERE ts_ns >= ?1 AND ts_ns < ?2");
        let mut args: Vec<Value> = vec![scope.start_ns.into(), scope.end_ns.into()];
        push_filters(&mut sql, &mut args, scope, true);
        sql.push_str(" ORDER BY ts_ns, id");
        // The first error of `f` stops the query and is returned as it is.
        let mut failed = None;
        let res = self.conn().query_each(&sql, &args, |r| {
            let ev = map(r)?;
            f(&ev).map_err(|e| {
                failed = Some(e);
                DbError::Other("stopped".into())
            })
        });
        match failed {
            Some(e) => Err(e),
            None => res.map_err(self.query_err()),
        }
    }
}

/// Append the customer, VM and cutoff filters to a query over a usage table.
fn push_filters(sql: &mut String, args: &mut Vec<Value>, scope: &Scope, with_as_of: bool) {
    if let Some(c) = scope.customer {
        sql.push_str(&format!(" AND customer_id = ?{}", args.len() + 1));
        args.push(c.to_string().into());
    }
    if let Some(v) = scope.vm {
        sql.push_str(&format!(" AND vm_id = ?{}", args.len() + 1));
        args.push(v.to_string().into());
    }
    if let (true, Some(a)) = (with_as_of, scope.as_of) {
        sql.push_str(&format!(" AND ingested_at <= ?{}", args.len() + 1));
        args.push(a.to_string().into());
    }
}
