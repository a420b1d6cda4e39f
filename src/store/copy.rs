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
//! of the batch is, and streams the new rows, as it decides them, under a
//! savepoint, by binary COPY ([`super::pgcopy`]) straight into api_usage
//! (as fast as `psql \copy`, and PostgreSQL inserts while mb decides) or,
//! for a role under row-level security (PostgreSQL refuses `COPY FROM`
//! there), into `mb_stage_api`, a temporary table created inside the
//! transaction and dropped at commit (safe through pgbouncer in
//! transaction mode), then `INSERT ... SELECT`. A stored id makes it fail
//! on the unique index, and a line over its hour's bound stops it (that
//! line is a duplicate if its id is stored); then the savepoint is rolled
//! back and the batch decided again knowing the stored rows of its ids
//! (one query), and inserted through the staging table with `ON CONFLICT
//! (id) DO NOTHING RETURNING id`. Rows still refused belong to rows this
//! role cannot see (another customer's id: a conflict), and the batch is
//! decided once more. Each row joins the transaction's rollup as it is
//! decided, and an attempt that fails puts the rollup back as it was
//! before it. The writers' advisory lock (see
//! [`super::pg`]) keeps what is stored from changing between the attempts,
//! and identity `rowid`s follow input order (COPY and `ORDER BY seq`).

use std::collections::HashMap;

use postgres::types::Type;

use super::db::{vals, DbError, DbResult, Row};
use super::events::{self, InsertResult, API_COLS};
use super::pgcopy::BinaryCopy;
use super::FastMap;
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
    let mut known = Known::new();
    let mut fetched = false;
    for _ in 0..5 {
        // The rollup takes each row as it is decided (while the server is
        // still inserting the COPY's rows, which is what sets the pace);
        // an attempt that fails gives it back as it was.
        let before = w.rollup.borrow().clone();
        db.batch("SAVEPOINT mb_batch")?;
        let tried = attempt(w, api, &mut known, fetched, run_id);
        match tried {
            Ok(Some((res, _))) => {
                db.batch("RELEASE SAVEPOINT mb_batch")?;
                return Ok(res);
            }
            Ok(None) => {}
            Err(e) if !fetched && e.pg_code() == Some(UNIQUE_VIOLATION) => {}
            Err(e) => return Err(e),
        }
        *w.rollup.borrow_mut() = before;
        // Some ids were stored after all (or a line over its hour's bound
        // needs to know whether it is a re-sent one): undo, learn, decide
        // again.
        db.batch("ROLLBACK TO SAVEPOINT mb_batch; RELEASE SAVEPOINT mb_batch")?;
        if !fetched {
            fetch_stored(w, api, &mut known)?;
            fetched = true;
        }
    }
    Err(DbError::Other(
        "a batch of api events kept meeting stored ids it could not account for".into(),
    ))
}

/// One attempt at storing the batch, under the savepoint: the results and
/// the indices of the stored events, or None when it must be tried again
/// knowing (more of) the stored rows, which it may have added to `known`.
///
/// The first attempt (nothing `fetched`) is optimistic: it assumes no id
/// of the batch is stored, and decides each event while it streams the
/// rows to store into the COPY, so PostgreSQL inserts while mb decides.
/// Straight into api_usage (as fast as `psql \copy`) where the role may,
/// else through the staging table without a conflict clause; either fails
/// on a stored id. It gives up at the first line over its hour's bound (a
/// reject only if its id is not stored, which needs the stored rows).
/// Later attempts decide first (the decisions may then ask the database),
/// and insert through the staging table with `ON CONFLICT (id) DO NOTHING
/// RETURNING id`: rows still refused belong to rows this role cannot see
/// (another customer's id: a conflict).
fn attempt(
    w: &Writer<'_>,
    api: &[&Event],
    known: &mut Known,
    fetched: bool,
    run_id: i64,
) -> DbResult<Option<Decided>> {
    let db = w.db();
    if !fetched {
        let staged = !direct_copy(w)?;
        let Some(decided) = copy_deciding(w, api, run_id, staged)? else {
            return Ok(None);
        };
        if staged && !decided.1.is_empty() {
            db.execute(
                &format!(
                    "INSERT INTO api_usage ({COLS}) SELECT {COLS} FROM mb_stage_api ORDER BY seq"
                ),
                vals![],
            )?;
        }
        return Ok(Some(decided));
    }
    let Some((res, pending)) = decide(w, api, known, false, &mut |_| Ok(()))? else {
        return Ok(None);
    };
    if pending.is_empty() {
        return Ok(Some((res, pending)));
    }
    open_stage(w)?;
    {
        let mut client = pg(w)?.client()?;
        let mut copy = copy_in(&mut client, true)?;
        for (seq, &k) in pending.iter().enumerate() {
            write_row(&mut copy, api[k], Some(seq), &w.ingested_at, run_id)?;
        }
        copy.finish()?;
    }
    let ids: Vec<String> = db.query_map(
        &format!(
            "WITH ins AS (INSERT INTO api_usage ({COLS}) SELECT {COLS} FROM mb_stage_api \
             ORDER BY seq ON CONFLICT (id) DO NOTHING RETURNING id) SELECT id FROM ins"
        ),
        vals![],
        |r| r.get(0),
    )?;
    if ids.len() == pending.len() {
        return Ok(Some((res, pending)));
    }
    // Rows refused although no stored row of their id is visible: another
    // customer's (row-level security).
    let got: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    for &k in &pending {
        let id = &api[k].header.id;
        if !got.contains(id.as_str()) && !known.contains_key(id) {
            known.insert(id.clone(), None);
        }
    }
    Ok(None)
}

/// The results of a batch and the indices of the events to store.
type Decided = (Vec<InsertResult>, Vec<usize>);

/// The optimistic attempt's decide-and-copy: the rows go to the COPY as
/// they are decided; None (the COPY aborted) at a line over its hour's
/// bound.
fn copy_deciding(
    w: &Writer<'_>,
    api: &[&Event],
    run_id: i64,
    staged: bool,
) -> DbResult<Option<Decided>> {
    if staged {
        open_stage(w)?;
    }
    let mut client = pg(w)?.client()?;
    let mut copy = copy_in(&mut client, staged)?;
    let mut seq = 0;
    let decided = decide(w, api, &Known::new(), true, &mut |k| {
        write_row(
            &mut copy,
            api[k],
            staged.then_some(seq),
            &w.ingested_at,
            run_id,
        )?;
        seq += 1;
        Ok(())
    })?;
    if decided.is_some() {
        copy.finish()?;
    }
    // Dropped unfinished, the COPY is aborted.
    Ok(decided)
}

/// SQLSTATE unique_violation.
const UNIQUE_VIOLATION: &str = "23505";

/// Whether this role may COPY straight into api_usage: PostgreSQL refuses
/// `COPY FROM` into a table whose row-level security applies to the role
/// (a VM's ingest role), which then inserts through the staging table.
/// Asked once per connection.
fn direct_copy(w: &Writer<'_>) -> DbResult<bool> {
    let pg = pg(w)?;
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

/// Decide each event (see the module doc) given what is `known` stored,
/// calling `store` with the index of each event to store, in order;
/// returns the results and those indices. With `stop_at_bound`, None at
/// the first line over its hour's bound. Each event to store is added to
/// the rollup (the caller restores it if the attempt fails); while `store`
/// streams a COPY the connection is busy, so a decision that would need
/// the database must not come up then: with `known` empty, an earlier
/// line of the batch is the only possible stored event, and it cannot
/// have been repriced.
fn decide(
    w: &Writer<'_>,
    api: &[&Event],
    known: &Known,
    stop_at_bound: bool,
    store: &mut dyn FnMut(usize) -> DbResult<()>,
) -> DbResult<Option<Decided>> {
    let db = w.db();
    let mut rollup = w.rollup.borrow_mut();
    let mut res = Vec::with_capacity(api.len());
    let mut pending = Vec::with_capacity(api.len());
    // The first event of each id this batch stores.
    let mut first: FastMap<&str, usize> =
        FastMap::with_capacity_and_hasher(api.len(), Default::default());
    for (k, ev) in api.iter().enumerate() {
        let Body::Api(a) = &ev.body else {
            return Err(DbError::Other("not an api event".into()));
        };
        let id = ev.header.id.as_str();
        let fits = rollup.admits(db, &ev.header, a)?;
        let (prior, in_batch): (Option<Option<&Event>>, bool) = match first.get(id) {
            Some(&j) => (Some(Some(api[j])), true),
            None => (known.get(id).map(Option::as_ref), false),
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
                let same = if in_batch {
                    events::same_content_if(stored, ev, || Ok(false))?
                } else {
                    events::same_content(db, stored, ev)?
                };
                if same {
                    InsertResult::Duplicate
                } else {
                    InsertResult::Conflict
                }
            }
            None if !fits => {
                if stop_at_bound {
                    return Ok(None);
                }
                InsertResult::OverHourBound
            }
            None => {
                first.insert(id, k);
                store(k)?;
                rollup.add(&ev.header, a)?;
                pending.push(k);
                InsertResult::Inserted
            }
        };
        res.push(r);
    }
    Ok(Some((res, pending)))
}

/// Make the staging table (created in this transaction if it is not there
/// yet) and empty it.
fn open_stage(w: &Writer<'_>) -> DbResult<()> {
    w.db().batch(&format!("{STAGE}; TRUNCATE mb_stage_api"))
}

fn pg<'a>(w: &'a Writer<'_>) -> DbResult<&'a super::db::Pg> {
    w.db()
        .pg()
        .ok_or_else(|| DbError::Other("needs PostgreSQL".into()))
}

/// Start a binary COPY of api rows into the staging table or straight into
/// api_usage.
fn copy_in(client: &mut postgres::Client, staged: bool) -> DbResult<BinaryCopy<'_>> {
    let sink = client.copy_in(&if staged {
        format!("COPY mb_stage_api (seq, {COLS}) FROM STDIN (FORMAT binary)")
    } else {
        format!("COPY api_usage ({COLS}) FROM STDIN (FORMAT binary)")
    })?;
    Ok(BinaryCopy::new(sink))
}

/// Write one api event's row (the staging table's has `seq` first): the
/// columns of [`events::api_values`], in its order and the columns' types
/// (BIGINT or TEXT; flags as 0/1), borrowed from the event rather than
/// copied (this runs once per stored line).
fn write_row(
    copy: &mut BinaryCopy<'_>,
    ev: &Event,
    seq: Option<usize>,
    ingested_at: &str,
    run_id: i64,
) -> DbResult<()> {
    let Body::Api(a) = &ev.body else {
        return Err(DbError::Other("not an api event".into()));
    };
    let h = &ev.header;
    // Validation bounds every count far below i64::MAX.
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    match seq {
        Some(seq) => {
            copy.row(24)?;
            copy.int(seq as i64);
        }
        None => copy.row(23)?,
    }
    copy.text(&h.id)?;
    copy.int(events::ts_ns(h));
    copy.text(&h.customer_id)?;
    copy.text(&h.vm_id)?;
    copy.text(&a.provider)?;
    copy.text(&a.model)?;
    copy.opt_text(a.price_key.as_deref())?;
    copy.int(n(a.tokens_in));
    copy.int(n(a.tokens_out));
    copy.int(n(a.cache_read_tokens));
    copy.int(n(a.cache_write_tokens));
    copy.int(n(a.reasoning_tokens));
    copy.opt_int(a.cost_nusd);
    copy.int(i64::from(a.priced));
    copy.opt_text(a.price_table.as_deref())?;
    copy.opt_text(a.request_id.as_deref())?;
    copy.int(i64::from(a.failed));
    copy.text(&a.auth_type)?;
    copy.opt_text(a.client.as_deref())?;
    copy.opt_text(a.service_tier.as_deref())?;
    copy.opt_text(a.source_format.as_deref())?;
    copy.text(ingested_at)?;
    copy.int(run_id);
    Ok(())
}

/// Read the stored totals of every (customer, hour) of the batch that
/// the transaction has not read yet, in one query (the bound check would
/// otherwise ask once per hour). One index lookup per key (LATERAL): a
/// join would let the planner, whose statistics of api_rollup lag behind
/// a bulk load, scan the whole rollup once per batch.
fn load_hours(w: &Writer<'_>, api: &[&Event]) -> DbResult<()> {
    let missing = w.rollup.borrow_mut().missing_hours(api);
    if missing.is_empty() {
        return Ok(());
    }
    let pg = pg(w)?;
    let (customers, hours): (Vec<&str>, Vec<i64>) = missing.into_iter().unzip();
    let rows = pg.query_typed(
        "SELECT u.c, u.h, coalesce(s.tokens, 0), coalesce(s.nusd, 0), s.n \
         FROM unnest(?1::text[], ?2::int8[]) AS u (c, h) CROSS JOIN LATERAL \
         (SELECT CAST(sum(r.tokens_in + r.tokens_out + r.cache_read_tokens \
         + r.cache_write_tokens) AS BIGINT) AS tokens, CAST(sum(r.cost_nusd) AS BIGINT) AS nusd, \
         count(*) AS n FROM api_rollup r WHERE r.customer_id = u.c AND r.hour_ns = u.h) AS s",
        &[(&customers, Type::TEXT_ARRAY), (&hours, Type::INT8_ARRAY)],
    )?;
    let mut rollup = w.rollup.borrow_mut();
    for r in &rows {
        let r = Row::Pg(r);
        let (c, h): (String, i64) = (r.get(0)?, r.get(1)?);
        rollup.set_hour(&c, h, r.get(2)?, r.get(3)?, r.get(4)?);
    }
    Ok(())
}

/// Read the stored rows (those this role sees) of the batch's ids.
fn fetch_stored(w: &Writer<'_>, api: &[&Event], known: &mut Known) -> DbResult<()> {
    let pg = pg(w)?;
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
