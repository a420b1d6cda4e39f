//! PostgreSQL's insert path for a batch of events.
//!
//! Same decisions as SQLite's per-row path ([`super::events`]), in the same
//! order: an api event over its customer-hour bound is not stored (unless
//! it is a re-sent line), an event whose id exists is a duplicate or a
//! conflict by content, anything else is stored and added to the rollups.

use super::db::DbResult;
use super::events::{self, InsertResult};
use super::Writer;
use crate::events::{Body, Event, Kind};

/// Store `evs` in the writer's transaction (see [`Writer::insert_batch`]).
pub(super) fn insert_batch(
    w: &Writer<'_>,
    evs: &[&Event],
    run_id: i64,
) -> DbResult<Vec<InsertResult>> {
    let db = w.db();
    let mut out = Vec::with_capacity(evs.len());
    for ev in evs {
        if let Body::Api(a) = &ev.body {
            if !w.rollup.borrow_mut().admits(db, &ev.header, a)? {
                out.push(match events::get(db, Kind::Api, &ev.header.id)? {
                    Some(stored) if stored == **ev => InsertResult::Duplicate,
                    Some(_) => InsertResult::Conflict,
                    None => InsertResult::OverHourBound,
                });
                continue;
            }
        }
        out.push(events::insert_row(
            db,
            &w.rollup,
            &w.resource_rollup,
            ev,
            &w.ingested_at,
            run_id,
        )?);
    }
    Ok(out)
}
