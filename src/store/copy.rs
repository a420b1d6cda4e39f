//! PostgreSQL's insert path for a batch of events: api rows by binary
//! COPY; resource and activity rows (a few per VM and minute) one statement
//! each.
//!
//! One row per round trip cannot come near COPY's speed, so a batch of api
//! events is decided in Rust first, exactly as SQLite's per-row path
//! decides them ([`super::events`]), in input order: an event over its
//! customer-hour bound is not stored unless it is a re-sent line; an event
//! whose id is stored, or appeared earlier in the batch, is a duplicate or a
//! conflict by content; anything else is stored and added to the rollup.
//!
//! What is stored is found optimistically. The first attempt assumes no id
//! of the batch is, and copies the new rows, under a savepoint, straight
//! into api_usage (as fast as `psql \copy`) or, for a role under row-level
//! security (PostgreSQL refuses `COPY FROM` there), into `mb_stage_api`, a
//! temporary table created inside the transaction and dropped at commit
//! (safe through pgbouncer in transaction mode), then `INSERT ... SELECT`.
//! A stored id makes it fail on the unique index; then the savepoint is
//! rolled back and the batch decided again knowing the stored rows of its
//! ids (one query), and inserted through the staging table with `ON
//! CONFLICT (id) DO NOTHING RETURNING id`. Rows still refused belong to
//! rows this role cannot see (another customer's id: a conflict), and the
//! batch is decided once more. The writers' advisory lock (see
//! [`super::pg`]) keeps what is stored from changing between the attempts,
//! and identity `rowid`s follow input order (COPY and `ORDER BY seq`).

use std::collections::HashMap;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::db::{vals, DbError, DbResult, Row};
use super::events::{self, InsertResult, API_COLS};
use super::Writer;
use crate::events::{Body, Event};

/// The staging table: a sequence number (input order) and api_usage's
/// insert columns, without constraints or indexes.
const STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS mb_stage_api (seq BIGINT, \
    id TEXT COLLATE \"C\", ts_ns BIGINT, customer_id TEXT COLLATE \"C\", vm_id TEXT COLLATE \"C\", \
    provider TEXT COLLATE \"C\", model TEXT COLLATE \"C\", price_key TEXT COLLATE \"C\", \
    tokens_in BIGINT, tokens_out BIGINT, cache_read_tokens BIGINT, cache_write_tokens BIGINT, \
    reasoning_tokens BIGINT, cost_nusd BIGINT, priced BIGINT, price_table TEXT COLLATE \"C\", \
    request_id TEXT COLLATE \"C\", failed BIGINT, auth_type TEXT COLLATE \"C\", \
    client TEXT COLLATE \"C\", service_tier TEXT COLLATE \"C\", source_format TEXT COLLATE \"C\", \
    ingested_at TEXT COLLATE \"C\", run_id BIGINT) ON COMMIT DROP";

/// The columns in [`events::api_values`]' order.
const COLS: &str = "id, ts_ns, customer_id, vm_id, provider, model, price_key, tokens_in, \
    tokens_out, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_nusd, priced, \
    price_table, request_id, failed, auth_type, client, service_tier, source_format, \
    ingested_at, run_id";

/// The staging table's column types, `seq` first.
const TYPES: [Type; 24] = [
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
];

/// Store `evs` in the writer's transaction (see [`Writer::insert_batch`]).
pub(super) fn insert_batch(
    w: &Writer<'_>,
    evs: &[&Event],
    run_id: i64,
) -> DbResult<Vec<InsertResult>> {
    let db = w.db();
    let mut out = vec![InsertResult::Conflict; evs.len()];
    let mut api_at = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        match ev.body {
            Body::Api(_) => api_at.push(i),
            _ => {
                out[i] = events::insert_row(
                    db,
                    &w.rollup,
                    &w.resource_rollup,
                    ev,
                    &w.ingested_at,
                    run_id,
                )?
            }
        }
    }
    let api: Vec<&Event> = api_at.iter().map(|&i| evs[i]).collect();
    for (r, i) in insert_api(w, &api, run_id)?.into_iter().zip(api_at) {
        out[i] = r;
    }
    Ok(out)
}

/// What is known to be stored under an id: a row this role sees, or one
/// it does not (row-level security).
type Known = HashMap<String, Option<Event>>;

fn insert_api(w: &Writer<'_>, api: &[&Event], run_id: i64) -> DbResult<Vec<InsertResult>> {
    if api.is_empty() {
        return Ok(Vec::new());
    }
    let db = w.db();
    load_hours(w, api)?;
    let saved = w.rollup.borrow().clone();
    let mut known = Known::new();
    let mut fetched = false;
    for _ in 0..5 {
        let (mut res, mut pending) = decide(w, api, &known)?;
        // A line over its hour's bound is a reject only if its id is not
        // stored (a re-sent line is a duplicate): that needs the stored rows.
        if !fetched && res.contains(&InsertResult::OverHourBound) {
            *w.rollup.borrow_mut() = saved.clone();
            fetch_stored(w, api, &mut known)?;
            fetched = true;
            (res, pending) = decide(w, api, &known)?;
        }
        if pending.is_empty() {
            return Ok(res);
        }
        db.batch("SAVEPOINT mb_batch")?;
        let direct = !fetched && direct_copy(w)?;
        let tried: DbResult<bool> = if !fetched {
            // Optimistic: no id of the batch is stored. Straight into
            // api_usage (COPY, as fast as psql's \copy) where the role may,
            // else through the staging table without a conflict clause;
            // either fails on a stored id.
            if direct {
                copy_rows(w, api, &pending, run_id, false).map(|()| true)
            } else {
                copy_rows(w, api, &pending, run_id, true).and_then(|()| {
                    db.execute(
                        &format!(
                            "INSERT INTO api_usage ({COLS}) SELECT {COLS} FROM mb_stage_api \
                             ORDER BY seq"
                        ),
                        vals![],
                    )
                    .map(|_| true)
                })
            }
        } else {
            copy_rows(w, api, &pending, run_id, true).and_then(|()| {
                let ids: Vec<String> = db.query_map(
                    &format!(
                        "WITH ins AS (INSERT INTO api_usage ({COLS}) SELECT {COLS} \
                         FROM mb_stage_api ORDER BY seq ON CONFLICT (id) DO NOTHING \
                         RETURNING id) SELECT id FROM ins"
                    ),
                    vals![],
                    |r| r.get(0),
                )?;
                if ids.len() != pending.len() {
                    // Rows refused although no stored row of their id is
                    // visible: another customer's (row-level security).
                    let got: std::collections::HashSet<&str> =
                        ids.iter().map(String::as_str).collect();
                    for &k in &pending {
                        let id = &api[k].header.id;
                        if !got.contains(id.as_str()) && !known.contains_key(id) {
                            known.insert(id.clone(), None);
                        }
                    }
                }
                Ok(ids.len() == pending.len())
            })
        };
        match tried {
            Ok(true) => {
                db.batch("RELEASE SAVEPOINT mb_batch")?;
                return Ok(res);
            }
            Ok(false) => {}
            Err(e) if !fetched && e.pg_code() == Some(UNIQUE_VIOLATION) => {}
            Err(e) => return Err(e),
        }
        // Some ids were stored after all: undo, learn, decide again.
        db.batch("ROLLBACK TO SAVEPOINT mb_batch; RELEASE SAVEPOINT mb_batch")?;
        *w.rollup.borrow_mut() = saved.clone();
        if !fetched {
            fetch_stored(w, api, &mut known)?;
            fetched = true;
        }
    }
    Err(DbError::Other(
        "a batch of api events kept meeting stored ids it could not account for".into(),
    ))
}

/// SQLSTATE unique_violation.
const UNIQUE_VIOLATION: &str = "23505";

/// Whether this role may COPY straight into api_usage: PostgreSQL refuses
/// `COPY FROM` into a table whose row-level security applies to the role
/// (a VM's ingest role), which then inserts through the staging table.
/// Asked once per connection.
fn direct_copy(w: &Writer<'_>) -> DbResult<bool> {
    let pg = w
        .db()
        .pg()
        .ok_or_else(|| DbError::Other("needs PostgreSQL".into()))?;
    if let Some(d) = pg.direct_copy.get() {
        return Ok(d);
    }
    let rls: bool = w
        .db()
        .query_row("SELECT row_security_active('api_usage')", vals![], |r| {
            r.get(0)
        })?;
    pg.direct_copy.set(Some(!rls));
    Ok(!rls)
}

/// Decide each event (see the module doc) given what is `known` stored;
/// returns the results and the indices of the events to store, in order.
/// Adds the events to store to the writer's rollup.
fn decide(
    w: &Writer<'_>,
    api: &[&Event],
    known: &Known,
) -> DbResult<(Vec<InsertResult>, Vec<usize>)> {
    let db = w.db();
    let mut rollup = w.rollup.borrow_mut();
    let mut res = Vec::with_capacity(api.len());
    let mut pending = Vec::new();
    // The first event of each id this batch stores.
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (k, ev) in api.iter().enumerate() {
        let Body::Api(a) = &ev.body else {
            return Err(DbError::Other("not an api event".into()));
        };
        let id = ev.header.id.as_str();
        let fits = rollup.admits(db, &ev.header, a)?;
        let prior: Option<Option<&Event>> = match first.get(id) {
            Some(&j) => Some(Some(api[j])),
            None => known.get(id).map(Option::as_ref),
        };
        let r = match prior {
            // Another customer's row, invisible to this role.
            Some(None) => InsertResult::Conflict,
            // As SQLite's path: a line over the bound is a duplicate only
            // when it is the stored event exactly.
            Some(Some(stored)) if !fits => {
                if stored == *ev {
                    InsertResult::Duplicate
                } else {
                    InsertResult::Conflict
                }
            }
            Some(Some(stored)) => {
                if events::same_content(db, stored, ev)? {
                    InsertResult::Duplicate
                } else {
                    InsertResult::Conflict
                }
            }
            None if !fits => InsertResult::OverHourBound,
            None => {
                rollup.add(&ev.header, a)?;
                first.insert(id, k);
                pending.push(k);
                InsertResult::Inserted
            }
        };
        res.push(r);
    }
    Ok((res, pending))
}

/// Copy the events to store, in order, into the staging table (emptied
/// first; created in this transaction if it is not there yet) or, without
/// `staged`, straight into api_usage.
fn copy_rows(
    w: &Writer<'_>,
    api: &[&Event],
    pending: &[usize],
    run_id: i64,
    staged: bool,
) -> DbResult<()> {
    let pg = w
        .db()
        .pg()
        .ok_or_else(|| DbError::Other("COPY needs PostgreSQL".into()))?;
    if staged {
        w.db().batch(&format!("{STAGE}; TRUNCATE mb_stage_api"))?;
    }
    let mut client = pg.client()?;
    let sink = client.copy_in(&if staged {
        format!("COPY mb_stage_api (seq, {COLS}) FROM STDIN (FORMAT binary)")
    } else {
        format!("COPY api_usage ({COLS}) FROM STDIN (FORMAT binary)")
    })?;
    let types = if staged { &TYPES[..] } else { &TYPES[1..] };
    let mut copy = BinaryCopyInWriter::new(sink, types);
    for (seq, &k) in pending.iter().enumerate() {
        let ev = api[k];
        let Body::Api(a) = &ev.body else {
            continue;
        };
        let seq = super::db::Value::Int(seq as i64);
        let row = events::api_values(&ev.header, a, &w.ingested_at, run_id);
        let refs: Vec<&(dyn ToSql + Sync)> = staged
            .then_some(&seq)
            .into_iter()
            .chain(row.iter())
            .map(|v| v as &(dyn ToSql + Sync))
            .collect();
        copy.write(&refs)?;
    }
    copy.finish()?;
    Ok(())
}

/// Read the stored totals of every (customer, hour) of the batch that
/// the transaction has not read yet, in one query (the bound check would
/// otherwise ask once per hour).
fn load_hours(w: &Writer<'_>, api: &[&Event]) -> DbResult<()> {
    let missing = w.rollup.borrow_mut().missing_hours(api);
    if missing.is_empty() {
        return Ok(());
    }
    let pg = w
        .db()
        .pg()
        .ok_or_else(|| DbError::Other("needs PostgreSQL".into()))?;
    let (customers, hours): (Vec<&str>, Vec<i64>) = missing.into_iter().unzip();
    let rows = pg.query_typed(
        "SELECT u.c, u.h, coalesce(CAST(sum(r.tokens_in + r.tokens_out + r.cache_read_tokens \
         + r.cache_write_tokens) AS BIGINT), 0), coalesce(CAST(sum(r.cost_nusd) AS BIGINT), 0) \
         FROM unnest(?1::text[], ?2::int8[]) AS u (c, h) \
         LEFT JOIN api_rollup r ON r.customer_id = u.c AND r.hour_ns = u.h GROUP BY u.c, u.h",
        &[(&customers, Type::TEXT_ARRAY), (&hours, Type::INT8_ARRAY)],
    )?;
    let mut rollup = w.rollup.borrow_mut();
    for r in &rows {
        let r = Row::Pg(r);
        let (c, h): (String, i64) = (r.get(0)?, r.get(1)?);
        rollup.set_hour(&c, h, r.get(2)?, r.get(3)?);
    }
    Ok(())
}

/// Read the stored rows (those this role sees) of the batch's ids.
fn fetch_stored(w: &Writer<'_>, api: &[&Event], known: &mut Known) -> DbResult<()> {
    let pg = w
        .db()
        .pg()
        .ok_or_else(|| DbError::Other("needs PostgreSQL".into()))?;
    let ids: Vec<&str> = api.iter().map(|e| e.header.id.as_str()).collect();
    let rows = pg.query_typed(
        &format!("SELECT {API_COLS} FROM api_usage WHERE id = ANY(?1)"),
        &[(&ids, Type::TEXT_ARRAY)],
    )?;
    for r in &rows {
        let ev = events::api_row(&Row::Pg(r))?;
        known.insert(ev.header.id.clone(), Some(ev));
    }
    Ok(())
}
