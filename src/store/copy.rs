//! PostgreSQL's insert path for a batch of events: api rows by binary COPY
//! into a staging table, then one `INSERT ... SELECT ... ON CONFLICT (id)
//! DO NOTHING`; resource and activity rows (a few per VM and minute) one
//! statement each.
//!
//! One row per round trip cannot come near COPY's speed, so a batch of api
//! events is decided in Rust first, exactly as SQLite's per-row path
//! decides them ([`super::events`]), in input order: an event over its
//! customer-hour bound is not stored unless it is a re-sent line; an event
//! whose id is stored, or appeared earlier in the batch, is a duplicate or a
//! conflict by content; anything else is stored and added to the rollup.
//! What is "stored" is found optimistically: the first attempt assumes no
//! id of the batch is, copies the new rows into `mb_stage_api` (a temporary
//! table created inside the transaction, dropped at commit: safe through
//! pgbouncer in transaction mode) and inserts them under a savepoint. When
//! every row went in, that was right and the batch cost a few round trips.
//! When some did not, the savepoint is rolled back and the batch decided
//! again knowing the stored rows of its ids (one query), and, should rows
//! still be refused, that those ids belong to rows this role cannot see
//! (row-level security: another customer's id, a conflict). The writers'
//! advisory lock (see [`super::pg`]) keeps what is stored from changing
//! between the attempts.

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
    let saved = w.rollup.borrow().clone();
    let mut known = Known::new();
    let mut fetched = false;
    for attempt in 0..3 {
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
        db.batch(&format!(
            "SAVEPOINT mb_batch; {STAGE}; TRUNCATE mb_stage_api"
        ))?;
        stage(w, api, &pending, run_id)?;
        let insert = format!(
            "WITH ins AS (INSERT INTO api_usage ({COLS}) SELECT {COLS} FROM mb_stage_api \
             ORDER BY seq ON CONFLICT (id) DO NOTHING RETURNING id)"
        );
        // The first attempt only counts; a later one needs the ids.
        let all_in = if attempt == 0 {
            let n: i64 = db.query_row(
                &format!("{insert} SELECT count(*) FROM ins"),
                vals![],
                |r| r.get(0),
            )?;
            usize::try_from(n).is_ok_and(|n| n == pending.len())
        } else {
            let ids: Vec<String> =
                db.query_map(&format!("{insert} SELECT id FROM ins"), vals![], |r| {
                    r.get(0)
                })?;
            if ids.len() != pending.len() {
                // Rows refused although no stored row of their id is
                // visible: another customer's (row-level security).
                let got: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
                for &k in &pending {
                    let id = &api[k].header.id;
                    if !got.contains(id.as_str()) && !known.contains_key(id) {
                        known.insert(id.clone(), None);
                    }
                }
            }
            ids.len() == pending.len()
        };
        if all_in {
            db.batch("RELEASE SAVEPOINT mb_batch")?;
            return Ok(res);
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

/// Copy the events to store into the staging table.
fn stage(w: &Writer<'_>, api: &[&Event], pending: &[usize], run_id: i64) -> DbResult<()> {
    let pg = w
        .db()
        .pg()
        .ok_or_else(|| DbError::Other("COPY needs PostgreSQL".into()))?;
    let mut client = pg.client()?;
    let sink = client.copy_in(&format!(
        "COPY mb_stage_api (seq, {COLS}) FROM STDIN (FORMAT binary)"
    ))?;
    let mut copy = BinaryCopyInWriter::new(sink, &TYPES);
    for (seq, &k) in pending.iter().enumerate() {
        let ev = api[k];
        let Body::Api(a) = &ev.body else {
            continue;
        };
        let seq = super::db::Value::Int(seq as i64);
        let row = events::api_values(&ev.header, a, &w.ingested_at, run_id);
        let refs: Vec<&(dyn ToSql + Sync)> = std::iter::once(&seq)
            .chain(row.iter())
            .map(|v| v as &(dyn ToSql + Sync))
            .collect();
        copy.write(&refs)?;
    }
    copy.finish()?;
    Ok(())
}

/// Read the stored rows (those this role sees) of the batch's ids.
fn fetch_stored(w: &Writer<'_>, api: &[&Event], known: &mut Known) -> DbResult<()> {
    let pg = w
        .db()
        .pg()
        .ok_or_else(|| DbError::Other("needs PostgreSQL".into()))?;
    let ids: Vec<&str> = api.iter().map(|e| e.header.id.as_str()).collect();
    let st = pg.stmt(&format!(
        "SELECT {API_COLS} FROM api_usage WHERE id = ANY(?1)"
    ))?;
    let rows = pg.client()?.query(&st, &[&ids])?;
    for r in &rows {
        let ev = events::api_row(&Row::Pg(r))?;
        known.insert(ev.header.id.clone(), Some(ev));
    }
    Ok(())
}
