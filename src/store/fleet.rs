//! Queries of the fleet: which VMs exist, when each last reported, and the
//! recent ingest runs. The computation over them (staleness) lives in
//! [`crate::report::fleet`]; this module only reads.
//!
//! Speed: a fleet database holds millions of samples, so "the last sample
//! of each VM" must not scan them. The `(vm_id, boot_id, ts_ns)` index
//! answers it with a loose index scan done by hand: the distinct VMs, then
//! each VM's distinct boots (a few per month), then `max(ts_ns)` of each
//! boot, every step one index seek. API and activity rows have no VM index
//! (adding one would slow every ingest); their last events per VM come from
//! `vm_event_hours` (see [`super::vm_hours`]).

use std::collections::BTreeMap;

use super::db::{vals, DbError, DbResult, Row};
use super::Store;
use crate::error::{Error, Result};

/// The last resource sample of one VM.
#[derive(Debug, Clone, PartialEq)]
pub struct LastSample {
    /// Customer the sample was recorded for.
    pub customer_id: String,
    /// End of its interval, ns since the epoch.
    pub ts_ns: i64,
    /// Its interval length, seconds (None on a first sample).
    pub interval_seconds: Option<f64>,
    /// CPU % of that interval; None when mb-sample flagged its ticks as
    /// wrong (`cpu_counter_backwards`, `cpu_total_mismatch`), as the
    /// reports leave such intervals out.
    pub cpu_percent: Option<f64>,
    /// Memory % at the sample.
    pub memory_percent: Option<f64>,
    /// Disk use at the sample, bytes.
    pub disk_used_bytes: Option<i64>,
    /// The ingest run that stored it.
    pub run_id: i64,
    /// When it was stored (RFC 3339).
    pub ingested_at: String,
}

/// The last api or activity event of one (customer, VM) in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastEvent {
    /// Time of the latest event, ns.
    pub ts_ns: i64,
    /// Events in the window.
    pub count: i64,
    /// Billable tokens of the api events (in + out + cache read + cache
    /// write; 0 for activity).
    pub tokens: i64,
    /// Cost of the api events, nano-USD (unpriced count 0).
    pub cost_nusd: i64,
}

/// One row of `ingest_runs`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestRun {
    /// Run id.
    pub run_id: i64,
    /// Tool that ran it (mb-ingest).
    pub tool: String,
    /// Input (a file name or `-`).
    pub source: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End, if it finished.
    pub finished_at: Option<String>,
    /// running, ok, partial, failed or abandoned.
    pub status: String,
    /// Lines read.
    pub read: i64,
    /// Rows stored.
    pub inserted: i64,
    /// Lines already stored.
    pub duplicates: i64,
    /// Lines conflicting with a stored row.
    pub conflicts: i64,
    /// Lines rejected.
    pub rejected: i64,
    /// The fatal error of a failed run.
    pub error: Option<String>,
}

/// Totals of every ingest run, per status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunTotals {
    /// Runs.
    pub runs: i64,
    /// Lines read.
    pub read: i64,
    /// Rows stored.
    pub inserted: i64,
    /// Duplicates.
    pub duplicates: i64,
    /// Conflicts.
    pub conflicts: i64,
    /// Rejects.
    pub rejected: i64,
}

impl Store {
    fn fleet_err(&self, ctx: &'static str) -> impl Fn(DbError) -> Error + '_ {
        move |e| Error::db(self.path(), ctx, e)
    }

    /// Every VM with at least one resource sample, sorted.
    pub fn sampled_vms(&self) -> Result<Vec<String>> {
        let err = self.fleet_err("listing sampled VMs");
        let mut out = Vec::new();
        let mut after = String::new();
        while let Some(vm) = self
            .conn()
            .query_row(
                "SELECT min(vm_id) FROM resource_usage WHERE vm_id > ?1",
                vals![after],
                |r| r.get::<Option<String>>(0),
            )
            .map_err(&err)?
        {
            after.clone_from(&vm);
            out.push(vm);
        }
        Ok(out)
    }

    /// The latest sample of `vm` before `until_ns`.
    pub fn last_sample(&self, vm: &str, until_ns: i64) -> Result<Option<LastSample>> {
        let err = self.fleet_err("reading the last sample");
        let db = self.conn();
        let mut best: Option<(i64, String)> = None;
        let mut after = String::new();
        while let Some(boot) = db
            .query_row(
                "SELECT min(boot_id) FROM resource_usage WHERE vm_id = ?1 AND boot_id > ?2",
                vals![vm, after],
                |r| r.get::<Option<String>>(0),
            )
            .map_err(&err)?
        {
            let ts: Option<i64> = db
                .query_row(
                    "SELECT max(ts_ns) FROM resource_usage \
                     WHERE vm_id = ?1 AND boot_id = ?2 AND ts_ns < ?3",
                    vals![vm, boot, until_ns],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            if let Some(ts) = ts {
                if best.as_ref().is_none_or(|(b, _)| ts > *b) {
                    best = Some((ts, boot.clone()));
                }
            }
            after = boot;
        }
        let Some((ts, boot)) = best else {
            return Ok(None);
        };
        db.query_opt(
            "SELECT customer_id, ts_ns, interval_seconds, cpu_percent, memory_percent, \
             disk_used_bytes, run_id, ingested_at, flags FROM resource_usage \
             WHERE vm_id = ?1 AND boot_id = ?2 AND ts_ns = ?3 ORDER BY rowid DESC LIMIT 1",
            vals![vm, boot, ts],
            |r| {
                let flags: String = r.get(8)?;
                Ok(LastSample {
                    customer_id: r.get(0)?,
                    ts_ns: r.get(1)?,
                    interval_seconds: r.get(2)?,
                    cpu_percent: r
                        .get::<Option<f64>>(3)?
                        .filter(|_| !crate::report::resource::cpu_suspect(&flags)),
                    memory_percent: r.get(4)?,
                    disk_used_bytes: r.get(5)?,
                    run_id: r.get(6)?,
                    ingested_at: r.get(7)?,
                })
            },
        )
        .map_err(err)
    }

    /// The last api or activity event per (customer, VM) in
    /// `[start_ns, end_ns)`, with the api events' token and cost sums, from
    /// `vm_event_hours` and the rows at the window's edges.
    pub fn last_events(
        &self,
        table: EventTable,
        start_ns: i64,
        end_ns: i64,
        customer: Option<&str>,
    ) -> Result<BTreeMap<(String, String), LastEvent>> {
        super::vm_hours::last_events(self.conn(), table, start_ns, end_ns, customer)
            .map_err(self.fleet_err("reading the last events"))
    }

    /// Every VM of the registry: (vm, customer), sorted by VM.
    pub fn registered_vms(&self) -> Result<Vec<(String, String)>> {
        self.conn()
            .query_map(
                "SELECT vm_id, customer_id FROM customer_vms ORDER BY vm_id, customer_id",
                vals![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.fleet_err("listing registered VMs"))
    }

    /// The latest `limit` ingest runs, newest first.
    pub fn ingest_runs(&self, limit: usize) -> Result<Vec<IngestRun>> {
        self.conn()
            .query_map(
                "SELECT run_id, tool, source, started_at, finished_at, status, read, inserted, \
                 duplicates, conflicts, rejected, error FROM ingest_runs \
                 ORDER BY run_id DESC LIMIT ?1",
                vals![limit],
                run_row,
            )
            .map_err(self.fleet_err("reading ingest runs"))
    }

    /// One ingest run.
    pub fn ingest_run(&self, run_id: i64) -> Result<Option<IngestRun>> {
        self.conn()
            .query_opt(
                "SELECT run_id, tool, source, started_at, finished_at, status, read, inserted, \
                 duplicates, conflicts, rejected, error FROM ingest_runs WHERE run_id = ?1",
                vals![run_id],
                run_row,
            )
            .map_err(self.fleet_err("reading an ingest run"))
    }

    /// The latest `finished_at` of the runs of each status.
    pub fn last_finished_runs(&self) -> Result<Vec<(String, String)>> {
        self.conn()
            .query_map(
                "SELECT status, max(finished_at) FROM ingest_runs \
                 WHERE finished_at IS NOT NULL GROUP BY status ORDER BY status",
                vals![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.fleet_err("reading ingest runs"))
    }

    /// Totals of all ingest runs per status.
    pub fn run_totals(&self) -> Result<BTreeMap<String, RunTotals>> {
        let rows = self
            .conn()
            .query_map(
                "SELECT status, count(*), CAST(sum(read) AS BIGINT), CAST(sum(inserted) AS BIGINT), \
                 CAST(sum(duplicates) AS BIGINT), CAST(sum(conflicts) AS BIGINT), \
                 CAST(sum(rejected) AS BIGINT) FROM ingest_runs GROUP BY status",
                vals![],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        RunTotals {
                            runs: r.get(1)?,
                            read: r.get(2)?,
                            inserted: r.get(3)?,
                            duplicates: r.get(4)?,
                            conflicts: r.get(5)?,
                            rejected: r.get(6)?,
                        },
                    ))
                },
            )
            .map_err(self.fleet_err("summing ingest runs"))?;
        Ok(rows.into_iter().collect())
    }
}

/// The event tables [`Store::last_events`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTable {
    /// `api_usage`.
    Api,
    /// `activity_log`.
    Activity,
}

fn run_row(r: &Row) -> DbResult<IngestRun> {
    Ok(IngestRun {
        run_id: r.get(0)?,
        tool: r.get(1)?,
        source: r.get(2)?,
        started_at: r.get(3)?,
        finished_at: r.get(4)?,
        status: r.get(5)?,
        read: r.get(6)?,
        inserted: r.get(7)?,
        duplicates: r.get(8)?,
        conflicts: r.get(9)?,
        rejected: r.get(10)?,
        error: r.get(11)?,
    })
}
