//! Usage-table rows <-> [`Event`]s: the insert path of mb-ingest and the
//! read-back used for conflict checks and `mb-report events`.
//!
//! Every value is stored losslessly (integers as INTEGER, floats as REAL,
//! arrays as JSON text, times as nanoseconds), so an event read back is
//! `==` to the one inserted; duplicate-versus-conflict relies on that.

use super::{FastMap, FastSet};

use rusqlite::{params, params_from_iter, Connection, Statement};

use super::db::{vals, Db, DbError, DbResult, Row, ToValue, Value};
use super::pgcopy::Field;
use crate::events::{bounds, Activity, Api, Body, Event, Header, Kind, Resource, SampleStatus};
use crate::time;

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertResult {
    /// Stored for the first time.
    Inserted,
    /// The same id with the same content was already stored.
    Duplicate,
    /// The same id with different content was already stored.
    Conflict,
    /// Not stored: the line would take its customer's UTC hour past
    /// [`bounds::MAX_HOUR_TOKENS`] or [`bounds::MAX_HOUR_NUSD`] (a reject).
    OverHourBound,
}

fn i(v: u64) -> i64 {
    // Validation caps every count at i64::MAX, so this never saturates.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn oi(v: Option<u64>) -> Option<i64> {
    v.map(i)
}

pub(crate) fn ts_ns(h: &Header) -> i64 {
    time::to_unix_nanos(&h.ts).unwrap_or(i64::MAX)
}

const API_INSERT: &str = "INSERT INTO api_usage (id, ts_ns, customer_id, vm_id, provider, model, price_key, \
                 tokens_in, tokens_out, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
                 cost_nusd, priced, price_table, request_id, failed, auth_type, client, service_tier, \
                 source_format, ingested_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
                 ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23) \
                 ON CONFLICT (id) DO NOTHING";
const RESOURCE_INSERT: &str =
    "INSERT INTO resource_usage (id, ts_ns, customer_id, vm_id, interval_seconds, status, \
                 flags, boot_id, seq, cpu_percent, cpu_busy_ticks, cpu_total_ticks, ncpu, clk_tck, \
                 memory_percent, memory_used_bytes, memory_total_bytes, disk_used_bytes, \
                 disk_total_bytes, net_in_bytes, net_out_bytes, cpu_busy_ticks_cum, \
                 cpu_total_ticks_cum, net_in_bytes_cum, net_out_bytes_cum, errors, ingested_at, \
                 run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                 ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28) \
                 ON CONFLICT (id) DO NOTHING";
const ACTIVITY_INSERT: &str =
    "INSERT INTO activity_log (id, ts_ns, customer_id, vm_id, activity_type, pattern_name, \
                 command, duration_seconds, exit_code, \"user\", ingested_at, run_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (id) DO NOTHING";

/// SQLite's prepared insert statements for one transaction. Preparing once
/// per batch (rather than `prepare_cached` per row, which hashes the SQL
/// text each time) is a measurable share of ingest throughput, so SQLite's
/// insert path binds rusqlite statements directly; resource and activity
/// rows bind the same value lists as PostgreSQL ([`resource_values`],
/// [`activity_values`]). Everything else (bounds, rollups, read-back) is
/// the layer's SQL, shared with PostgreSQL.
pub(crate) struct SqliteInserter<'c> {
    conn: &'c Connection,
    api: Option<Statement<'c>>,
    resource: Option<Statement<'c>>,
    activity: Option<Statement<'c>>,
}

fn stmt<'a, 'c>(
    conn: &'c Connection,
    slot: &'a mut Option<Statement<'c>>,
    sql: &str,
) -> rusqlite::Result<&'a mut Statement<'c>> {
    match slot {
        Some(st) => Ok(st),
        None => Ok(slot.insert(conn.prepare(sql)?)),
    }
}

impl<'c> SqliteInserter<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        SqliteInserter {
            conn,
            api: None,
            resource: None,
            activity: None,
        }
    }

    pub(crate) fn insert(
        &mut self,
        db: &Db,
        rollup: &std::cell::RefCell<ApiRollup>,
        resource_rollup: &std::cell::RefCell<super::resource_rollup::ResourceRollup>,
        ev: &Event,
        ingested_at: &str,
        run_id: i64,
    ) -> DbResult<InsertResult> {
        let conn = self.conn;
        let h = &ev.header;
        if let Body::Api(a) = &ev.body {
            if !rollup.borrow_mut().admits(db, h, a)? {
                // Over the customer-hour bound, unless it is a re-sent line
                // (whose usage is already counted in the hour).
                return Ok(match get(db, Kind::Api, &h.id)? {
                    Some(stored) if stored == *ev => InsertResult::Duplicate,
                    Some(_) => InsertResult::Conflict,
                    None => InsertResult::OverHourBound,
                });
            }
        }
        let n = match &ev.body {
            Body::Api(a) => stmt(conn, &mut self.api, API_INSERT)?.execute(params![
                h.id,
                ts_ns(h),
                h.customer_id,
                h.vm_id,
                a.provider,
                a.model,
                a.price_key,
                i(a.tokens_in),
                i(a.tokens_out),
                i(a.cache_read_tokens),
                i(a.cache_write_tokens),
                i(a.reasoning_tokens),
                a.cost_nusd,
                a.priced,
                a.price_table,
                a.request_id,
                a.failed,
                a.auth_type,
                a.client,
                a.service_tier,
                a.source_format,
                ingested_at,
                run_id
            ])?,
            Body::Resource(r) => stmt(conn, &mut self.resource, RESOURCE_INSERT)?
                .execute(params_from_iter(resource_values(h, r, ingested_at, run_id)))?,
            Body::Activity(a) => stmt(conn, &mut self.activity, ACTIVITY_INSERT)?
                .execute(params_from_iter(activity_values(h, a, ingested_at, run_id)))?,
        };
        if n == 1 {
            match &ev.body {
                Body::Api(a) => rollup.borrow_mut().add(h, a)?,
                Body::Resource(r) => resource_rollup.borrow_mut().add(
                    db,
                    h,
                    r,
                    ts_ns(h),
                    conn.last_insert_rowid(),
                )?,
                Body::Activity(_) => rollup.borrow_mut().vm_hours.add(
                    false,
                    &h.customer_id,
                    &h.vm_id,
                    ts_ns(h),
                    0,
                    0,
                )?,
            }
            return Ok(InsertResult::Inserted);
        }
        // The id exists: compare content. This path is only taken for re-sent
        // lines, so its extra SELECT does not slow a fresh ingest.
        existing(db, ev)
    }
}

/// What an event whose id is already stored is: a duplicate or a conflict.
pub(crate) fn existing(db: &Db, ev: &Event) -> DbResult<InsertResult> {
    match get(db, ev.kind(), &ev.header.id)? {
        Some(stored) if same_content(db, &stored, ev)? => Ok(InsertResult::Duplicate),
        _ => Ok(InsertResult::Conflict),
    }
}

/// The parameters of an api row, in [`API_INSERT`]'s order.
pub(crate) fn api_values(h: &Header, a: &Api, ingested_at: &str, run_id: i64) -> Vec<Value> {
    vals![
        h.id,
        ts_ns(h),
        h.customer_id,
        h.vm_id,
        a.provider,
        a.model,
        a.price_key,
        i(a.tokens_in),
        i(a.tokens_out),
        i(a.cache_read_tokens),
        i(a.cache_write_tokens),
        i(a.reasoning_tokens),
        a.cost_nusd,
        a.priced,
        a.price_table,
        a.request_id,
        a.failed,
        a.auth_type,
        a.client,
        a.service_tier,
        a.source_format,
        ingested_at,
        run_id
    ]
    .to_vec()
}

/// A usage row's parameters: the header's id, time, customer and VM, the
/// kind's own `body` columns, then `ingested_at` and `run_id` (the layout of
/// every usage table's insert). Built as owned values once, without the
/// intermediate slice `vals!` makes.
fn row_values<const N: usize>(
    h: &Header,
    body: [Value; N],
    ingested_at: &str,
    run_id: i64,
) -> Vec<Value> {
    let mut v = Vec::with_capacity(N + 6);
    v.extend([
        h.id.to_value(),
        ts_ns(h).to_value(),
        h.customer_id.to_value(),
        h.vm_id.to_value(),
    ]);
    v.extend(body);
    v.extend([ingested_at.to_value(), run_id.to_value()]);
    v
}

/// The parameters of a resource row, in [`RESOURCE_INSERT`]'s order: the
/// one list both backends bind (SQLite's prepared statement, the layer's
/// statement on PostgreSQL).
pub(crate) fn resource_values(
    h: &Header,
    r: &Resource,
    ingested_at: &str,
    run_id: i64,
) -> Vec<Value> {
    let body = [
        r.interval_seconds.to_value(),
        r.status.as_str().to_value(),
        Value::Text(json_list(&r.flags)),
        r.boot_id.to_value(),
        i(r.seq).to_value(),
        r.cpu_percent.to_value(),
        oi(r.cpu_busy_ticks).to_value(),
        oi(r.cpu_total_ticks).to_value(),
        oi(r.ncpu).to_value(),
        oi(r.clk_tck).to_value(),
        r.memory_percent.to_value(),
        oi(r.memory_used_bytes).to_value(),
        oi(r.memory_total_bytes).to_value(),
        oi(r.disk_used_bytes).to_value(),
        oi(r.disk_total_bytes).to_value(),
        oi(r.net_in_bytes).to_value(),
        oi(r.net_out_bytes).to_value(),
        oi(r.cpu_busy_ticks_cum).to_value(),
        oi(r.cpu_total_ticks_cum).to_value(),
        oi(r.net_in_bytes_cum).to_value(),
        oi(r.net_out_bytes_cum).to_value(),
        Value::Text(json_list(&r.errors)),
    ];
    row_values(h, body, ingested_at, run_id)
}

/// The parameters of an activity row, in [`ACTIVITY_INSERT`]'s order (see
/// [`resource_values`]).
pub(crate) fn activity_values(
    h: &Header,
    a: &Activity,
    ingested_at: &str,
    run_id: i64,
) -> Vec<Value> {
    let body = [
        a.activity_type.to_value(),
        a.pattern_name.to_value(),
        a.command.to_value(),
        a.duration_seconds.to_value(),
        a.exit_code.to_value(),
        a.user.to_value(),
    ];
    row_values(h, body, ingested_at, run_id)
}

/// Store one resource or activity event through the layer (PostgreSQL;
/// these kinds come a few per VM and minute, so one statement per row is
/// plenty), with the resource rollup's hook. `RETURNING rowid` tells a
/// stored row from an existing id.
pub(crate) fn insert_row(
    db: &Db,
    rollup: &std::cell::RefCell<ApiRollup>,
    resource_rollup: &std::cell::RefCell<super::resource_rollup::ResourceRollup>,
    ev: &Event,
    ingested_at: &str,
    run_id: i64,
) -> DbResult<InsertResult> {
    let h = &ev.header;
    let rowid: Option<i64> = match &ev.body {
        Body::Api(a) => db.query_opt(
            &format!("{API_INSERT} RETURNING rowid"),
            &api_values(h, a, ingested_at, run_id),
            |r| r.get(0),
        )?,
        Body::Resource(r) => db.query_opt(
            &format!("{RESOURCE_INSERT} RETURNING rowid"),
            &resource_values(h, r, ingested_at, run_id),
            |r| r.get(0),
        )?,
        Body::Activity(a) => db.query_opt(
            &format!("{ACTIVITY_INSERT} RETURNING rowid"),
            &activity_values(h, a, ingested_at, run_id),
            |r| r.get(0),
        )?,
    };
    match rowid {
        Some(rowid) => {
            match &ev.body {
                Body::Api(a) => rollup.borrow_mut().add(h, a)?,
                Body::Resource(r) => resource_rollup
                    .borrow_mut()
                    .add(db, h, r, ts_ns(h), rowid)?,
                Body::Activity(_) => rollup.borrow_mut().vm_hours.add(
                    false,
                    &h.customer_id,
                    &h.vm_id,
                    ts_ns(h),
                    0,
                    0,
                )?,
            }
            Ok(InsertResult::Inserted)
        }
        None => existing(db, ev),
    }
}

/// Whether a re-sent event is the stored one. Equal events are; so is an
/// api event that differs only where a later mb changed what it writes for
/// the same request, never in what is billed:
///
/// - `client` in the other hashing scheme: rows stored before the keyed
///   hash hold the 16-hex-digit plain SHA-256 prefix, lines written since
///   hold the 32-hex-digit keyed hash of the same key. The id already pins
///   the request (its timestamp and request id), so the two are one event;
///   the stored value is kept.
/// - price fields of a row `mb-tokens reprice` priced: the stored row is
///   priced, the re-read line (priced by the table of its day) is not.
pub(crate) fn same_content(db: &Db, stored: &Event, ev: &Event) -> DbResult<bool> {
    same_content_if(stored, ev, || {
        crate::store::Store::was_repriced(db, &stored.header.id)
    })
}

/// [`same_content`] with the reprice check given: `repriced` says whether
/// `stored`'s id was priced by `mb-tokens reprice` (asked only when it
/// matters).
pub(crate) fn same_content_if(
    stored: &Event,
    ev: &Event,
    repriced: impl FnOnce() -> DbResult<bool>,
) -> DbResult<bool> {
    if stored == ev {
        return Ok(true);
    }
    let (Body::Api(s), Body::Api(e)) = (&stored.body, &ev.body) else {
        return Ok(false);
    };
    let mut e = e.clone();
    if crate::tokens::client::same_client(s.client.as_deref(), e.client.as_deref()) {
        e.client.clone_from(&s.client);
    }
    if s.priced && !e.priced && e.cost_nusd.is_none() && e.price_key.is_none() {
        if !repriced()? {
            return Ok(false);
        }
        e.priced = true;
        e.cost_nusd = s.cost_nusd;
        e.price_key.clone_from(&s.price_key);
        e.price_table.clone_from(&s.price_table);
    }
    Ok(stored.header == ev.header && *s == e)
}

/// One hour in nanoseconds (the rollup bucket).
pub(crate) const HOUR_NS: i64 = 3_600_000_000_000;

/// The api rows a transaction stored, summed per rollup key (see schema
/// migration 2): kept in memory while the rows are inserted and written to
/// api_rollup with one upsert per key at commit. Summing here rather than
/// re-reading and grouping the transaction's rows in SQL at commit took a
/// fifth of mb-ingest's writer time off.
///
/// Strings are interned, so adding a row costs five hash lookups of short
/// strings and no allocation once the transaction has seen its values.
#[derive(Debug, Default, Clone)]
pub(crate) struct ApiRollup {
    strings: FastMap<String, u32>,
    names: Vec<String>,
    sums: FastMap<RollupKey, RollupSums>,
    /// Per (customer, UTC hour) touched by this transaction: the tokens and
    /// nano-USD of the hour, stored before it plus added by it, for the
    /// customer-hour bounds (see [`crate::events::bounds`]).
    hours: FastMap<(u32, i64), (i64, i64)>,
    /// The api and activity rows per (customer, VM, hour), for
    /// vm_event_hours (schema migration 10).
    pub(crate) vm_hours: super::vm_hours::VmHours,
    /// The (customer, hour)s that had no api_rollup row when this
    /// transaction read them (PostgreSQL's bulk read): their rollup rows,
    /// and their api cells of vm_event_hours, are new, and are copied
    /// rather than upserted (see [`super::pgcopy::copy_new`]).
    fresh: FastSet<(u32, i64)>,
}

/// customer_id, provider, model, price_key, price_table (interned; a
/// missing price_key or price_table is ''), and the hour of `ts`.
type RollupKey = ([u32; 5], i64);

#[derive(Debug, Default, Clone, Copy)]
struct RollupSums {
    requests: i64,
    failed: i64,
    unpriced: i64,
    tokens_in: i64,
    tokens_out: i64,
    cache_read: i64,
    cache_write: i64,
    reasoning: i64,
    cost_nusd: i64,
}

impl ApiRollup {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&n) = self.strings.get(s) {
            return n;
        }
        let n = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(s.to_owned());
        self.strings.insert(s.to_owned(), n);
        n
    }

    /// Whether `a` fits in its customer's hour: the hour's stored totals
    /// (read once per transaction and hour) plus this transaction's plus
    /// the line's stay within the bounds. Every value being bounded by
    /// validation, none of these sums can overflow.
    pub(crate) fn admits(&mut self, db: &Db, h: &Header, a: &Api) -> DbResult<bool> {
        let ts = ts_ns(h);
        let key = (self.intern(&h.customer_id), ts - ts.rem_euclid(HOUR_NS));
        let (tokens, nusd) = match self.hours.get(&key) {
            Some(v) => *v,
            None => {
                let stored = db.query_row(
                    "SELECT coalesce(CAST(sum(tokens_in + tokens_out + cache_read_tokens \
                     + cache_write_tokens) AS BIGINT), 0), \
                     coalesce(CAST(sum(cost_nusd) AS BIGINT), 0) \
                     FROM api_rollup WHERE customer_id = ?1 AND hour_ns = ?2",
                    vals![h.customer_id, key.1],
                    |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
                );
                // Rows stored before the bounds existed may not even sum:
                // then the hour is full.
                let v = stored.unwrap_or((i64::MAX, i64::MAX));
                self.hours.insert(key, v);
                v
            }
        };
        let line_tokens = i(a.total_tokens());
        let line_nusd = a.cost_nusd.unwrap_or(0);
        Ok(
            tokens <= bounds::MAX_HOUR_TOKENS.saturating_sub(line_tokens)
                && nusd <= bounds::MAX_HOUR_NUSD.saturating_sub(line_nusd),
        )
    }

    /// The (customer, hour) keys of `evs` whose stored totals
    /// [`ApiRollup::admits`] has not read yet in this transaction.
    pub(crate) fn missing_hours<'e>(&mut self, evs: &[&'e Event]) -> Vec<(&'e str, i64)> {
        let mut out = Vec::new();
        for ev in evs {
            let ts = ts_ns(&ev.header);
            let hour = ts - ts.rem_euclid(HOUR_NS);
            let key = (self.intern(&ev.header.customer_id), hour);
            if let std::collections::hash_map::Entry::Vacant(e) = self.hours.entry(key) {
                // Placeholder until loaded (the caller loads every one).
                e.insert((0, 0));
                out.push((ev.header.customer_id.as_str(), hour));
            }
        }
        out
    }

    /// Set the stored totals of a (customer, hour) read in bulk; `rows`:
    /// how many api_rollup rows it has.
    pub(crate) fn set_hour(
        &mut self,
        customer: &str,
        hour: i64,
        tokens: i64,
        nusd: i64,
        rows: i64,
    ) {
        let key = (self.intern(customer), hour);
        self.hours.insert(key, (tokens, nusd));
        if rows == 0 {
            self.fresh.insert(key);
        } else {
            self.fresh.remove(&key);
        }
    }

    /// Add one stored api event.
    pub(crate) fn add(&mut self, h: &Header, a: &Api) -> DbResult<()> {
        let key = [
            self.intern(&h.customer_id),
            self.intern(&a.provider),
            self.intern(&a.model),
            self.intern(a.price_key.as_deref().unwrap_or("")),
            self.intern(a.price_table.as_deref().unwrap_or("")),
        ];
        let ts = ts_ns(h);
        let hour = ts - ts.rem_euclid(HOUR_NS);
        let e = self.sums.entry((key, hour)).or_default();
        // Like SQLite's sum(), an overflowing total is an error (the
        // transaction is rolled back), never a wrapped or saturated number.
        let add = |acc: &mut i64, v: i64| -> DbResult<()> {
            *acc = acc
                .checked_add(v)
                .ok_or_else(|| DbError::Other("rollup sum overflows".into()))?;
            Ok(())
        };
        add(&mut e.requests, 1)?;
        add(&mut e.failed, i64::from(a.failed))?;
        add(&mut e.unpriced, i64::from(!a.priced))?;
        add(&mut e.tokens_in, i(a.tokens_in))?;
        add(&mut e.tokens_out, i(a.tokens_out))?;
        add(&mut e.cache_read, i(a.cache_read_tokens))?;
        add(&mut e.cache_write, i(a.cache_write_tokens))?;
        add(&mut e.reasoning, i(a.reasoning_tokens))?;
        add(&mut e.cost_nusd, a.cost_nusd.unwrap_or(0))?;
        self.vm_hours.add(
            true,
            &h.customer_id,
            &h.vm_id,
            ts,
            i(a.total_tokens()),
            a.cost_nusd.unwrap_or(0),
        )?;
        let cust = key[0];
        if let Some((t, c)) = self.hours.get_mut(&(cust, hour)) {
            *t += i(a.total_tokens());
            *c += a.cost_nusd.unwrap_or(0);
        }
        Ok(())
    }

    /// Add the sums to api_rollup, in key order (so the upserts walk its
    /// primary key forward), and forget them.
    pub(crate) fn flush(&mut self, db: &Db, ingest_hour_ns: i64) -> DbResult<()> {
        // The next transaction reads the hours again (other writers).
        self.hours.clear();
        let fresh = std::mem::take(&mut self.fresh);
        let is_fresh = |customer: &str, hour: i64| {
            self.strings
                .get(customer)
                .is_some_and(|&c| fresh.contains(&(c, hour)))
        };
        self.vm_hours.flush(db, &is_fresh)?;
        if self.sums.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<(RollupKey, RollupSums)> = self.sums.drain().collect();
        let names = &self.names;
        rows.sort_unstable_by(|(a, _), (b, _)| {
            let k = |(s, hour): &RollupKey| {
                let n = |i: usize| names[s[i] as usize].as_str();
                (n(0), *hour, n(1), n(2), n(3), n(4))
            };
            k(a).cmp(&k(b))
        });
        // api_rollup's row of a key, in COLS' order.
        let row = |(([c, p, m, pk, pt], hour), s): &(RollupKey, RollupSums)| {
            let name = |i: &u32| Field::Text(names[*i as usize].as_str());
            [
                name(c),
                Field::Int(*hour),
                name(p),
                name(m),
                name(pk),
                name(pt),
                Field::Int(ingest_hour_ns),
                Field::Int(s.requests),
                Field::Int(s.failed),
                Field::Int(s.unpriced),
                Field::Int(s.tokens_in),
                Field::Int(s.tokens_out),
                Field::Int(s.cache_read),
                Field::Int(s.cache_write),
                Field::Int(s.reasoning),
                Field::Int(s.cost_nusd),
            ]
        };
        let (new, old): (Vec<_>, Vec<_>) = rows
            .iter()
            .partition(|(([c, ..], hour), _)| fresh.contains(&(*c, *hour)));
        let new: Vec<_> = new.into_iter().map(row).collect();
        const COLS: &str = "api_rollup (customer_id, hour_ns, provider, model, price_key, \
             price_table, ingest_hour_ns, requests, failed_requests, unpriced_requests, \
             tokens_in, tokens_out, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
             cost_nusd)";
        let mut rows: Vec<_> = old.into_iter().map(row).collect();
        if !super::pgcopy::copy_new(db, COLS, &new)? {
            rows.extend(new);
        }
        let rows = super::pgcopy::values(&rows);
        db.insert_rows(
            &format!("INSERT INTO {COLS}"),
            "ON CONFLICT (customer_id, hour_ns, provider, model, price_key, price_table, \
             ingest_hour_ns) DO UPDATE SET requests = api_rollup.requests + excluded.requests, \
             failed_requests = api_rollup.failed_requests + excluded.failed_requests, \
             unpriced_requests = api_rollup.unpriced_requests + excluded.unpriced_requests, \
             tokens_in = api_rollup.tokens_in + excluded.tokens_in, \
             tokens_out = api_rollup.tokens_out + excluded.tokens_out, \
             cache_read_tokens = api_rollup.cache_read_tokens + excluded.cache_read_tokens, \
             cache_write_tokens = api_rollup.cache_write_tokens + excluded.cache_write_tokens, \
             reasoning_tokens = api_rollup.reasoning_tokens + excluded.reasoning_tokens, \
             cost_nusd = api_rollup.cost_nusd + excluded.cost_nusd",
            &rows,
        )?;
        Ok(())
    }
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn ou(v: Option<i64>) -> Option<u64> {
    v.map(u)
}

/// Column lists for reading events back, shared with report queries.
pub(crate) const API_COLS: &str = "id, ts_ns, customer_id, vm_id, provider, model, price_key, \
    tokens_in, tokens_out, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_nusd, \
    priced, price_table, request_id, failed, auth_type, client, service_tier, source_format";
pub(crate) const RESOURCE_COLS: &str = "id, ts_ns, customer_id, vm_id, interval_seconds, status, \
    flags, boot_id, seq, cpu_percent, cpu_busy_ticks, cpu_total_ticks, ncpu, clk_tck, \
    memory_percent, memory_used_bytes, memory_total_bytes, disk_used_bytes, disk_total_bytes, \
    net_in_bytes, net_out_bytes, cpu_busy_ticks_cum, cpu_total_ticks_cum, net_in_bytes_cum, \
    net_out_bytes_cum, errors";
pub(crate) const ACTIVITY_COLS: &str = "id, ts_ns, customer_id, vm_id, activity_type, \
    pattern_name, command, duration_seconds, exit_code, \"user\"";

fn header(r: &Row) -> DbResult<Header> {
    Ok(Header {
        id: r.get(0)?,
        ts: time::from_unix_nanos(r.get(1)?),
        customer_id: r.get(2)?,
        vm_id: r.get(3)?,
    })
}

pub(crate) fn api_row(r: &Row) -> DbResult<Event> {
    Ok(Event {
        header: header(r)?,
        body: Body::Api(Api {
            provider: r.get(4)?,
            model: r.get(5)?,
            price_key: r.get(6)?,
            tokens_in: u(r.get(7)?),
            tokens_out: u(r.get(8)?),
            cache_read_tokens: u(r.get(9)?),
            cache_write_tokens: u(r.get(10)?),
            reasoning_tokens: u(r.get(11)?),
            cost_nusd: r.get(12)?,
            priced: r.get(13)?,
            price_table: r.get(14)?,
            request_id: r.get(15)?,
            failed: r.get(16)?,
            auth_type: r.get(17)?,
            client: r.get(18)?,
            service_tier: r.get(19)?,
            source_format: r.get(20)?,
        }),
    })
}

pub(crate) fn resource_row(r: &Row) -> DbResult<Event> {
    let status: String = r.get(5)?;
    let status = match status.as_str() {
        "ok" => SampleStatus::Ok,
        "reboot" => SampleStatus::Reboot,
        _ => SampleStatus::First,
    };
    Ok(Event {
        header: header(r)?,
        body: Body::Resource(Resource {
            interval_seconds: r.get(4)?,
            status,
            flags: parse_list(&r.get::<String>(6)?),
            boot_id: r.get(7)?,
            seq: u(r.get(8)?),
            cpu_percent: r.get(9)?,
            cpu_busy_ticks: ou(r.get(10)?),
            cpu_total_ticks: ou(r.get(11)?),
            ncpu: ou(r.get(12)?),
            clk_tck: ou(r.get(13)?),
            memory_percent: r.get(14)?,
            memory_used_bytes: ou(r.get(15)?),
            memory_total_bytes: ou(r.get(16)?),
            disk_used_bytes: ou(r.get(17)?),
            disk_total_bytes: ou(r.get(18)?),
            net_in_bytes: ou(r.get(19)?),
            net_out_bytes: ou(r.get(20)?),
            cpu_busy_ticks_cum: ou(r.get(21)?),
            cpu_total_ticks_cum: ou(r.get(22)?),
            net_in_bytes_cum: ou(r.get(23)?),
            net_out_bytes_cum: ou(r.get(24)?),
            errors: parse_list(&r.get::<String>(25)?),
        }),
    })
}

pub(crate) fn activity_row(r: &Row) -> DbResult<Event> {
    Ok(Event {
        header: header(r)?,
        body: Body::Activity(Activity {
            activity_type: r.get(4)?,
            pattern_name: r.get(5)?,
            command: r.get(6)?,
            duration_seconds: r.get(7)?,
            exit_code: r.get(8)?,
            user: r.get(9)?,
        }),
    })
}

/// Maps a row (selected with the kind's column list) back to an event.
pub(crate) type RowMapper = fn(&Row) -> DbResult<Event>;

/// The table and row mapper of a kind.
pub(crate) fn table(kind: Kind) -> (&'static str, &'static str, RowMapper) {
    match kind {
        Kind::Api => ("api_usage", API_COLS, api_row),
        Kind::Resource => ("resource_usage", RESOURCE_COLS, resource_row),
        Kind::Activity => ("activity_log", ACTIVITY_COLS, activity_row),
    }
}

pub(super) fn get(db: &Db, kind: Kind, id: &str) -> DbResult<Option<Event>> {
    let (t, cols, map) = table(kind);
    db.query_opt(
        &format!("SELECT {cols} FROM {t} WHERE id = ?1"),
        vals![id],
        map,
    )
}
