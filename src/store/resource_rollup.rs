//! `resource_rollup`: exact hourly sums of each VM's resource usage, kept by
//! mb-ingest in the transaction that stores the samples, and the two read
//! paths over it.
//!
//! A cell is (customer, VM, UTC hour, ingest hour) and holds the
//! [`VmAcc`] of the samples whose time falls in that hour: their sample
//! statistics and the whole intervals they close (see
//! [`crate::report::resource`] for the rules). Storing a sample changes its
//! own cell and, when it lands between two stored samples (a late line),
//! the cell of the next sample, whose interval it splits: the next sample's
//! old interval is subtracted and its new one added. Each transaction adds
//! its changes as signed corrections under its own ingest hour, so:
//!
//! - the sum of a cell's rows always equals what its samples say now;
//! - the rows of ingest hours before an `--as-of` cutoff's hour are the
//!   state at the start of that hour; a cell that also changed during it is
//!   recomputed from the samples stored by the cutoff (found by rowid, as for
//!   api usage).
//!
//! Reading a window `[start, end)`: the cells of its whole hours, plus the
//! raw samples of the partial hours at its edges (and the first sample after
//! it, whose interval may cross the end). Only the first sample at or after
//! `start` can close an interval reaching back before `start` (every later
//! interval starts at its predecessor), so when that sample lies in a whole
//! hour its full interval is swapped for its share. The raw path reads every
//! sample of the window and is the reference the rollup path must equal.
//!
//! `resource_streams` lists each (customer, VM) with its first and last
//! sample time, so a report finds the VMs of a customer without scanning
//! samples.

use std::collections::{BTreeMap, HashMap};

use super::db::{vals, Db, DbResult, Row, Value};

use super::events::HOUR_NS;
use crate::events::{Header, Resource};
use crate::report::resource::{self, add_pair, add_sample, Point, Status, VmAcc, ALL};

/// A (customer, VM) stream.
pub type StreamKey = (String, String);

/// Columns of a [`Point`], in [`point`]'s order.
const POINT_COLS: &str = "ts_ns, boot_id, rowid, status, seq, interval_seconds, memory_percent, \
    disk_used_bytes, cpu_busy_ticks_cum, cpu_total_ticks_cum, net_in_bytes_cum, net_out_bytes_cum, flags";

fn point(r: &Row) -> DbResult<Point> {
    Ok(Point {
        ts_ns: r.get(0)?,
        boot_id: r.get(1)?,
        rowid: r.get(2)?,
        status: Status::parse(&r.get::<String>(3)?),
        seq: r.get(4)?,
        interval_seconds: r.get(5)?,
        memory_percent: r.get(6)?,
        disk_used_bytes: r.get(7)?,
        cpu_busy_cum: r.get(8)?,
        cpu_total_cum: r.get(9)?,
        net_in_cum: r.get(10)?,
        net_out_cum: r.get(11)?,
        cpu_suspect: resource::cpu_suspect(&r.get::<String>(12)?),
    })
}

fn floor_hour(ns: i64) -> i64 {
    ns.div_euclid(HOUR_NS) * HOUR_NS
}

fn ceil_hour(ns: i64) -> i64 {
    floor_hour(ns).saturating_add(if ns.rem_euclid(HOUR_NS) == 0 {
        0
    } else {
        HOUR_NS
    })
}

/// Changes of one transaction, per stream and hour, written at commit.
#[derive(Debug, Default)]
pub(crate) struct ResourceRollup {
    streams: HashMap<StreamKey, StreamDelta>,
}

#[derive(Debug, Default)]
struct StreamDelta {
    cells: HashMap<i64, VmAcc>,
    first_ts: i64,
    last_ts: i64,
}

/// What the ingest hook needs of a just-stored sample.
fn point_of(r: &Resource, ts_ns: i64, rowid: i64) -> Point {
    let i = |v: Option<u64>| v.map(|x| i64::try_from(x).unwrap_or(i64::MAX));
    Point {
        ts_ns,
        boot_id: r.boot_id.clone(),
        rowid,
        status: Status::parse(r.status.as_str()),
        seq: i64::try_from(r.seq).unwrap_or(i64::MAX),
        interval_seconds: r.interval_seconds,
        memory_percent: r.memory_percent,
        disk_used_bytes: i(r.disk_used_bytes),
        cpu_busy_cum: i(r.cpu_busy_ticks_cum),
        cpu_total_cum: i(r.cpu_total_ticks_cum),
        net_in_cum: i(r.net_in_bytes_cum),
        net_out_cum: i(r.net_out_bytes_cum),
        cpu_suspect: r
            .flags
            .iter()
            .any(|f| f == "cpu_counter_backwards" || f == "cpu_total_mismatch"),
    }
}

/// Record in `cells` what storing `c` between `p` and `n` (its neighbours
/// in the stream at that moment) changes.
fn on_insert(cells: &mut HashMap<i64, VmAcc>, p: Option<&Point>, c: &Point, n: Option<&Point>) {
    if let Some(n) = n {
        let cell = cells.entry(floor_hour(n.ts_ns)).or_default();
        add_pair(cell, p, n, ALL, -1);
        add_pair(cell, Some(c), n, ALL, 1);
    }
    let cell = cells.entry(floor_hour(c.ts_ns)).or_default();
    add_sample(cell, c, ALL);
    add_pair(cell, p, c, ALL, 1);
}

/// Stream queries over `resource_usage`, optionally limited to rows below a
/// rowid (an `--as-of` cutoff).
struct Stream<'c> {
    conn: &'c Db,
    customer: &'c str,
    vm: &'c str,
    cutoff: Option<i64>,
}

impl Stream<'_> {
    fn query(&self, cond: &str, order: &str, args: Vec<Value>) -> DbResult<Vec<Point>> {
        let mut sql = format!(
            "SELECT {POINT_COLS} FROM resource_usage INDEXED BY resource_usage_stream \
             WHERE customer_id = ?1 AND vm_id = ?2 AND {cond}"
        );
        let mut all: Vec<Value> =
            vec![self.customer.to_string().into(), self.vm.to_string().into()];
        all.extend(args);
        if let Some(r) = self.cutoff {
            sql.push_str(&format!(" AND rowid < ?{}", all.len() + 1));
            all.push(r.into());
        }
        sql.push_str(order);
        self.conn.query_map(&sql, &all, point)
    }

    const ASC: &'static str = " ORDER BY ts_ns, boot_id, rowid";
    const DESC1: &'static str = " ORDER BY ts_ns DESC, boot_id DESC, rowid DESC LIMIT 1";
    const ASC1: &'static str = " ORDER BY ts_ns, boot_id, rowid LIMIT 1";

    /// The sample just before `c` in stream order.
    fn pred(&self, c: &Point) -> DbResult<Option<Point>> {
        let v = self.query(
            "ts_ns <= ?3 AND (ts_ns < ?3 OR boot_id < ?4 OR (boot_id = ?4 AND rowid < ?5))",
            Self::DESC1,
            vec![c.ts_ns.into(), c.boot_id.clone().into(), c.rowid.into()],
        )?;
        Ok(v.into_iter().next())
    }

    /// The sample just after `c` in stream order.
    fn succ(&self, c: &Point) -> DbResult<Option<Point>> {
        let v = self.query(
            "ts_ns >= ?3 AND (ts_ns > ?3 OR boot_id > ?4 OR (boot_id = ?4 AND rowid > ?5))",
            Self::ASC1,
            vec![c.ts_ns.into(), c.boot_id.clone().into(), c.rowid.into()],
        )?;
        Ok(v.into_iter().next())
    }

    /// The last sample before `t`.
    fn last_before(&self, t: i64) -> DbResult<Option<Point>> {
        Ok(self
            .query("ts_ns < ?3", Self::DESC1, vec![t.into()])?
            .into_iter()
            .next())
    }

    /// The first sample at or after `t`.
    fn first_at(&self, t: i64) -> DbResult<Option<Point>> {
        Ok(self
            .query("ts_ns >= ?3", Self::ASC1, vec![t.into()])?
            .into_iter()
            .next())
    }

    /// The samples in `[a, b)`, in stream order.
    fn range(&self, a: i64, b: i64) -> DbResult<Vec<Point>> {
        if a >= b {
            return Ok(Vec::new());
        }
        self.query(
            "ts_ns >= ?3 AND ts_ns < ?4",
            Self::ASC,
            vec![a.into(), b.into()],
        )
    }

    /// Usage in `w` from the raw samples of `[a, b)`, the one before them,
    /// and, when `with_next`, the first one at or after `b`.
    fn raw(&self, a: i64, b: i64, w: (i64, i64), with_next: bool) -> DbResult<VmAcc> {
        let before = self.last_before(a)?;
        let mut pts = self.range(a, b)?;
        if with_next {
            pts.extend(self.first_at(b)?);
        }
        Ok(resource::stream_usage(before.as_ref(), &pts, w))
    }
}

impl ResourceRollup {
    /// The ingest hook: `r` was just stored as row `rowid`. Reads its
    /// neighbours in the stream (rows stored earlier in this transaction
    /// included) and records the changes.
    pub(crate) fn add(
        &mut self,
        conn: &Db,
        h: &Header,
        r: &Resource,
        ts_ns: i64,
        rowid: i64,
    ) -> DbResult<()> {
        let c = point_of(r, ts_ns, rowid);
        let s = Stream {
            conn,
            customer: &h.customer_id,
            vm: &h.vm_id,
            cutoff: None,
        };
        let p = s.pred(&c)?;
        let n = s.succ(&c)?;
        let key = (h.customer_id.clone(), h.vm_id.clone());
        let d = self.streams.entry(key).or_insert_with(|| StreamDelta {
            first_ts: ts_ns,
            last_ts: ts_ns,
            ..Default::default()
        });
        d.first_ts = d.first_ts.min(ts_ns);
        d.last_ts = d.last_ts.max(ts_ns);
        on_insert(&mut d.cells, p.as_ref(), &c, n.as_ref());
        Ok(())
    }

    /// Write the changes under `ingest_hour_ns` and forget them.
    pub(crate) fn flush(&mut self, conn: &Db, ingest_hour_ns: i64) -> DbResult<()> {
        let mut streams: Vec<(StreamKey, StreamDelta)> = self.streams.drain().collect();
        streams.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for ((c, v), d) in &streams {
            conn.execute(
                "INSERT INTO resource_streams (customer_id, vm_id, first_ts_ns, last_ts_ns) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (customer_id, vm_id) DO UPDATE SET \
                 first_ts_ns = CASE WHEN resource_streams.first_ts_ns <= excluded.first_ts_ns \
                 THEN resource_streams.first_ts_ns ELSE excluded.first_ts_ns END, \
                 last_ts_ns = CASE WHEN resource_streams.last_ts_ns >= excluded.last_ts_ns \
                 THEN resource_streams.last_ts_ns ELSE excluded.last_ts_ns END",
                vals![c, v, d.first_ts, d.last_ts],
            )?;
            let mut cells: Vec<(&i64, &VmAcc)> = d.cells.iter().collect();
            cells.sort_unstable_by_key(|(h, _)| **h);
            for (hour, a) in cells {
                write_cell(conn, c, v, *hour, ingest_hour_ns, a)?;
            }
        }
        Ok(())
    }
}

const MEM_W_SHIFT: u32 = 40;

fn write_cell(
    conn: &Db,
    customer: &str,
    vm: &str,
    hour: i64,
    ingest_hour: i64,
    a: &VmAcc,
) -> DbResult<()> {
    // The memory weight is an i128; it is stored as a high and a low part
    // so SQL can sum it: sum(hi) * 2^40 + sum(lo) is exact while there are
    // fewer than 2^23 rows in a sum.
    let hi = (a.mem_w >> MEM_W_SHIFT) as i64;
    let lo = (a.mem_w & ((1i128 << MEM_W_SHIFT) - 1)) as i64;
    conn.execute(
        "INSERT INTO resource_rollup (customer_id, vm_id, hour_ns, ingest_hour_ns, samples, \
         last_ts_ns, max_disk_bytes, mem_sample_sum, mem_samples, intervals, busy_ticks, \
         total_ticks, cpu_intervals, cpu_skipped, net_in_bytes, net_out_bytes, net_intervals, \
         covered_ns, mem_w_hi, mem_w_lo, mem_t_ns, reboots, resets, gaps) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
         ?19, ?20, ?21, ?22, ?23, ?24) \
         ON CONFLICT (customer_id, vm_id, hour_ns, ingest_hour_ns) DO UPDATE SET \
         samples = resource_rollup.samples + excluded.samples, \
         last_ts_ns = CASE WHEN excluded.last_ts_ns IS NULL OR (resource_rollup.last_ts_ns IS NOT NULL \
         AND resource_rollup.last_ts_ns >= excluded.last_ts_ns) THEN resource_rollup.last_ts_ns \
         ELSE excluded.last_ts_ns END, \
         max_disk_bytes = CASE WHEN excluded.max_disk_bytes IS NULL OR (resource_rollup.max_disk_bytes \
         IS NOT NULL AND resource_rollup.max_disk_bytes >= excluded.max_disk_bytes) \
         THEN resource_rollup.max_disk_bytes ELSE excluded.max_disk_bytes END, \
         mem_sample_sum = resource_rollup.mem_sample_sum + excluded.mem_sample_sum, \
         mem_samples = resource_rollup.mem_samples + excluded.mem_samples, intervals = resource_rollup.intervals + excluded.intervals, \
         busy_ticks = resource_rollup.busy_ticks + excluded.busy_ticks, total_ticks = resource_rollup.total_ticks + excluded.total_ticks, \
         cpu_intervals = resource_rollup.cpu_intervals + excluded.cpu_intervals, cpu_skipped = resource_rollup.cpu_skipped + excluded.cpu_skipped, \
         net_in_bytes = resource_rollup.net_in_bytes + excluded.net_in_bytes, net_out_bytes = resource_rollup.net_out_bytes + excluded.net_out_bytes, \
         net_intervals = resource_rollup.net_intervals + excluded.net_intervals, covered_ns = resource_rollup.covered_ns + excluded.covered_ns, \
         mem_w_hi = resource_rollup.mem_w_hi + excluded.mem_w_hi, mem_w_lo = resource_rollup.mem_w_lo + excluded.mem_w_lo, \
         mem_t_ns = resource_rollup.mem_t_ns + excluded.mem_t_ns, reboots = resource_rollup.reboots + excluded.reboots, \
         resets = resource_rollup.resets + excluded.resets, gaps = resource_rollup.gaps + excluded.gaps",
        vals![
        customer,
        vm,
        hour,
        ingest_hour,
        a.samples,
        a.last_ts_ns,
        a.max_disk,
        a.mem_sample_sum,
        a.mem_samples,
        a.intervals,
        a.busy,
        a.total,
        a.cpu_intervals,
        a.cpu_skipped,
        a.net_in,
        a.net_out,
        a.net_intervals,
        a.covered_ns,
        hi,
        lo,
        a.mem_t_ns,
        a.reboots,
        a.resets,
        a.gaps
    ])?;
    Ok(())
}

const SUM_COLS: &str = "coalesce(CAST(sum(samples) AS BIGINT), 0), max(last_ts_ns), max(max_disk_bytes), \
    coalesce(CAST(sum(mem_sample_sum) AS BIGINT), 0), coalesce(CAST(sum(mem_samples) AS BIGINT), 0), coalesce(CAST(sum(intervals) AS BIGINT), 0), \
    coalesce(CAST(sum(busy_ticks) AS BIGINT), 0), coalesce(CAST(sum(total_ticks) AS BIGINT), 0), coalesce(CAST(sum(cpu_intervals) AS BIGINT), 0), \
    coalesce(CAST(sum(cpu_skipped) AS BIGINT), 0), coalesce(CAST(sum(net_in_bytes) AS BIGINT), 0), coalesce(CAST(sum(net_out_bytes) AS BIGINT), 0), \
    coalesce(CAST(sum(net_intervals) AS BIGINT), 0), coalesce(CAST(sum(covered_ns) AS BIGINT), 0), coalesce(CAST(sum(mem_w_hi) AS BIGINT), 0), \
    coalesce(CAST(sum(mem_w_lo) AS BIGINT), 0), coalesce(CAST(sum(mem_t_ns) AS BIGINT), 0), coalesce(CAST(sum(reboots) AS BIGINT), 0), \
    coalesce(CAST(sum(resets) AS BIGINT), 0), coalesce(CAST(sum(gaps) AS BIGINT), 0)";

fn acc_of(r: &Row, at: usize) -> DbResult<VmAcc> {
    let g = |i: usize| r.get::<i64>(at + i);
    let (hi, lo) = (g(14)?, g(15)?);
    Ok(VmAcc {
        samples: g(0)?,
        last_ts_ns: r.get(at + 1)?,
        max_disk: r.get(at + 2)?,
        mem_sample_sum: g(3)?,
        mem_samples: g(4)?,
        intervals: g(5)?,
        busy: g(6)?,
        total: g(7)?,
        cpu_intervals: g(8)?,
        cpu_skipped: g(9)?,
        net_in: g(10)?,
        net_out: g(11)?,
        net_intervals: g(12)?,
        covered_ns: g(13)?,
        mem_w: (i128::from(hi) << MEM_W_SHIFT) + i128::from(lo),
        mem_t_ns: g(16)?,
        reboots: g(17)?,
        resets: g(18)?,
        gaps: g(19)?,
    })
}

/// Rebuild both tables from `resource_usage` (the migration that creates
/// them, on a database that already has samples). Replays each stream's
/// samples in storage order, as mb-ingest would have stored them, each
/// under the ingest hour of its `ingested_at`, so `--as-of` cutoffs before
/// the migration stay exact. Holds one stream's samples at a time.
pub(crate) fn rebuild(conn: &Db) -> DbResult<()> {
    conn.batch("DELETE FROM resource_rollup; DELETE FROM resource_streams;")?;
    let keys: Vec<StreamKey> = conn.query_map(
        "SELECT DISTINCT customer_id, vm_id FROM resource_usage",
        vals![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (customer, vm) in keys {
        let rows = conn.query_map(
            &format!(
                "SELECT {POINT_COLS}, ingested_at FROM resource_usage \
                 WHERE customer_id = ?1 AND vm_id = ?2 ORDER BY rowid"
            ),
            vals![customer, vm],
            |r| {
                let at: String = r.get(13)?;
                Ok((point(r)?, at))
            },
        )?;
        // Per ingest hour, the cells it changed.
        let mut by_ingest: BTreeMap<i64, HashMap<i64, VmAcc>> = BTreeMap::new();
        let mut stored: BTreeMap<(i64, String, i64), Point> = BTreeMap::new();
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        for (c, at) in rows {
            let ih = crate::time::parse_rfc3339(&at)
                .map_or(0, |t| t.timestamp().div_euclid(3600) * HOUR_NS);
            let k = (c.ts_ns, c.boot_id.clone(), c.rowid);
            let p = stored.range(..k.clone()).next_back().map(|(_, v)| v);
            let n = stored.range(k.clone()..).next().map(|(_, v)| v);
            on_insert(by_ingest.entry(ih).or_default(), p, &c, n);
            first = first.min(c.ts_ns);
            last = last.max(c.ts_ns);
            stored.insert(k, c);
        }
        for (ih, cells) in by_ingest {
            let mut cells: Vec<(i64, VmAcc)> = cells.into_iter().collect();
            cells.sort_unstable_by_key(|(h, _)| *h);
            for (hour, a) in cells {
                write_cell(conn, &customer, &vm, hour, ih, &a)?;
            }
        }
        if first <= last {
            conn.execute(
                "INSERT INTO resource_streams (customer_id, vm_id, first_ts_ns, last_ts_ns) \
                 VALUES (?1, ?2, ?3, ?4)",
                vals![customer, vm, first, last],
            )?;
        }
    }
    Ok(())
}

/// Which samples a read covers.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// Start, Unix ns (inclusive).
    pub start_ns: i64,
    /// End, Unix ns (exclusive).
    pub end_ns: i64,
    /// Only this customer.
    pub customer: Option<&'a str>,
    /// Only this VM.
    pub vm: Option<&'a str>,
    /// Only rows below this rowid (stored by the cutoff), and the cutoff's
    /// ingest hour.
    pub cutoff: Option<(i64, i64)>,
}

fn stream_filter(w: &Window, sql: &mut String, args: &mut Vec<Value>) {
    if let Some(c) = w.customer {
        sql.push_str(&format!(" AND customer_id = ?{}", args.len() + 1));
        args.push(c.to_string().into());
    }
    if let Some(v) = w.vm {
        sql.push_str(&format!(" AND vm_id = ?{}", args.len() + 1));
        args.push(v.to_string().into());
    }
}

/// Usage per stream in the window from the samples alone (the reference).
pub(crate) fn raw_usage(conn: &Db, w: &Window) -> DbResult<BTreeMap<StreamKey, VmAcc>> {
    let mut sql = String::from("SELECT DISTINCT customer_id, vm_id FROM resource_usage WHERE TRUE");
    let mut args = Vec::new();
    stream_filter(w, &mut sql, &mut args);
    sql.push_str(" ORDER BY 1, 2");
    let keys: Vec<StreamKey> = conn.query_map(&sql, &args, |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut out = BTreeMap::new();
    for (c, v) in keys {
        let s = Stream {
            conn,
            customer: &c,
            vm: &v,
            cutoff: w.cutoff.map(|x| x.0),
        };
        let acc = s.raw(w.start_ns, w.end_ns, (w.start_ns, w.end_ns), true)?;
        if acc.is_present() {
            out.insert((c, v), acc);
        }
    }
    Ok(out)
}

/// Usage per stream in the window: whole hours from the rollup, the edges
/// from the samples. Equal to [`raw_usage`].
pub(crate) fn rollup_usage(conn: &Db, w: &Window) -> DbResult<BTreeMap<StreamKey, VmAcc>> {
    let mut sql = String::from(
        "SELECT customer_id, vm_id FROM resource_streams WHERE first_ts_ns < ?1 AND last_ts_ns >= ?2",
    );
    let mut args: Vec<Value> = vec![w.end_ns.into(), w.start_ns.into()];
    stream_filter(w, &mut sql, &mut args);
    sql.push_str(" ORDER BY 1, 2");
    let keys: Vec<StreamKey> = conn.query_map(&sql, &args, |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut out = BTreeMap::new();
    for (c, v) in keys {
        let s = Stream {
            conn,
            customer: &c,
            vm: &v,
            cutoff: w.cutoff.map(|x| x.0),
        };
        let acc = stream_rollup(&s, w)?;
        if acc.is_present() {
            out.insert((c, v), acc);
        }
    }
    Ok(out)
}

fn stream_rollup(s: &Stream, w: &Window) -> DbResult<VmAcc> {
    let win = (w.start_ns, w.end_ns);
    let (h0, h1) = (ceil_hour(w.start_ns), floor_hour(w.end_ns));
    if h0 >= h1 {
        return s.raw(w.start_ns, w.end_ns, win, true);
    }
    let mut acc = cells(s, h0, h1, w.cutoff.map(|x| x.1))?;
    // The start edge: samples of [start, h0) and the one before them.
    let before = s.last_before(w.start_ns)?;
    let edge = s.range(w.start_ns, h0)?;
    // (An hour-aligned start has no start edge: range() answers that
    // without a query.)
    if edge.is_empty() {
        // The first sample at or after start is in the rollup with its
        // whole interval, which may reach back before start.
        if let Some(c) = s.first_at(h0)?.filter(|c| c.ts_ns < h1) {
            add_pair(&mut acc, before.as_ref(), &c, ALL, -1);
            add_pair(&mut acc, before.as_ref(), &c, win, 1);
        }
    } else {
        acc.add(&resource::stream_usage(before.as_ref(), &edge, win), 1);
    }
    // The end edge: samples of [h1, end), the one before, the one after.
    acc.add(&s.raw(h1, w.end_ns, win, true)?, 1);
    Ok(acc)
}

/// The summed cells of hours `[h0, h1)` of one stream, as of the cutoff's
/// ingest hour when given.
fn cells(s: &Stream, h0: i64, h1: i64, cutoff_hour: Option<i64>) -> DbResult<VmAcc> {
    let base = "FROM resource_rollup WHERE customer_id = ?1 AND vm_id = ?2 \
                AND hour_ns >= ?3 AND hour_ns < ?4";
    let Some(ch) = cutoff_hour else {
        return s.conn.query_row(
            &format!("SELECT {SUM_COLS} {base}"),
            vals![s.customer, s.vm, h0, h1],
            |r| acc_of(r, 0),
        );
    };
    // Cells changed during the cutoff's own ingest hour are recomputed from
    // the samples stored by the cutoff; the others are the sum of their
    // rows from earlier ingest hours.
    let touched: Vec<i64> = s.conn.query_map(
        &format!("SELECT hour_ns {base} AND ingest_hour_ns = ?5 ORDER BY hour_ns"),
        vals![s.customer, s.vm, h0, h1, ch],
        |r| r.get(0),
    )?;
    let mut acc = s.conn.query_row(
        &format!(
            "SELECT {SUM_COLS} {base} AND ingest_hour_ns < ?5 AND hour_ns NOT IN \
             (SELECT hour_ns {base} AND ingest_hour_ns = ?5)"
        ),
        vals![s.customer, s.vm, h0, h1, ch],
        |r| acc_of(r, 0),
    )?;
    for hour in touched {
        let before = s.last_before(hour)?;
        let pts = s.range(hour, hour + HOUR_NS)?;
        acc.add(&resource::stream_usage(before.as_ref(), &pts, ALL), 1);
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    //! The rollup path equals the raw path on random sample streams: lost
    //! samples, reboots with and without a reboot sample, counter resets,
    //! missing counters, flagged CPU, samples at one instant, late lines
    //! stored in later transactions, `--as-of` cutoffs inside and between
    //! ingest hours, windows with half-hour offsets (Asia/Kolkata), and a
    //! rollup rebuilt by the migration.

    use chrono::{DateTime, TimeZone, Utc};
    use proptest::prelude::*;

    use crate::events::{Body, Event, Header, Resource, SampleStatus};
    use crate::report::{self, period, Query};
    use crate::store::report::{ResourcePath, Scope};
    use crate::store::{Mode, Store};

    const S: i64 = 1_000_000_000;
    /// 2026-11-01T00:00:00Z.
    const T0: i64 = 1_793_491_200;

    #[derive(Debug, Clone)]
    struct Step {
        dt: i64,
        kind: u8,
        busy: u64,
        net: u64,
        mem: u16,
        disk: u32,
        flag: bool,
        skip_seq: bool,
        batch: u8,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            prop_oneof![
                6 => 280i64..320,
                1 => 0i64..2,
                1 => 600i64..20_000,
            ],
            0u8..40,
            0u64..30_000,
            0u64..5_000_000,
            0u16..10_000,
            0u32..1_000_000,
            proptest::bool::weighted(0.08),
            proptest::bool::weighted(0.1),
            0u8..6,
        )
            .prop_map(
                |(dt, kind, busy, net, mem, disk, flag, skip_seq, batch)| Step {
                    dt,
                    kind,
                    busy,
                    net,
                    mem,
                    disk,
                    flag,
                    skip_seq,
                    batch,
                },
            )
    }

    /// Events of one VM from `steps`, each with the transaction it goes in.
    fn stream(customer: &str, vm: &str, start: i64, steps: &[Step]) -> Vec<(u8, Event)> {
        let (mut boot, mut seq, mut t) = (0u32, 0u64, start * S);
        let (mut busy, mut total, mut net) = (0u64, 0u64, 0u64);
        let mut out = Vec::new();
        for (i, st) in steps.iter().enumerate() {
            t += st.dt * S + i64::from(st.mem % 997) * 1_000_000;
            seq += if st.skip_seq { 3 } else { 1 };
            let mut status = if i == 0 {
                SampleStatus::First
            } else {
                SampleStatus::Ok
            };
            let mut interval = Some(st.dt as f64 + 0.25);
            match st.kind {
                // Reboot with a reboot sample: counters restart.
                0 | 1 => {
                    boot += 1;
                    (busy, total, net) = (0, 0, 0);
                    status = SampleStatus::Reboot;
                    interval = Some((st.dt as f64 * 0.7).max(1.0));
                }
                // A new boot whose reboot sample was lost.
                2 => {
                    boot += 1;
                    (busy, total, net) = (st.busy, st.busy * 3, st.net);
                }
                // Counters went back within the boot.
                3 => (busy, total, net) = (busy / 3, total / 3, net / 5),
                // A state file lost: a first sample in the same boot.
                4 => status = SampleStatus::First,
                _ => {}
            }
            busy += st.busy;
            total += st.busy * 4 + 100;
            net += st.net;
            let missing = st.kind == 5;
            let r = Resource {
                interval_seconds: interval.filter(|_| status != SampleStatus::First),
                status,
                flags: if st.flag {
                    vec!["cpu_total_mismatch".into()]
                } else {
                    vec![]
                },
                boot_id: format!("{vm}-b{boot}"),
                seq,
                memory_percent: (st.kind != 6).then_some(f64::from(st.mem) / 100.0),
                disk_used_bytes: (st.kind != 7).then_some(u64::from(st.disk)),
                cpu_busy_ticks_cum: (!missing).then_some(busy),
                cpu_total_ticks_cum: (!missing).then_some(total),
                net_in_bytes_cum: (st.kind != 8).then_some(net),
                net_out_bytes_cum: Some(net / 2),
                ..Resource::default()
            };
            out.push((
                st.batch,
                Event {
                    header: Header {
                        id: format!("{vm}:{i}"),
                        ts: crate::time::from_unix_nanos(t),
                        customer_id: customer.into(),
                        vm_id: vm.into(),
                    },
                    body: Body::Resource(r),
                },
            ));
        }
        out
    }

    /// Ingest times of the transactions: some share an hour, some do not.
    fn ingest_time(batch: u8) -> DateTime<Utc> {
        let secs = [0, 600, 1_500, 3_700, 9_000, 9_030][usize::from(batch)];
        Utc.timestamp_opt(T0 + 40 * 86_400 + secs, 0).unwrap()
    }

    fn load(store: &Store, mut events: Vec<(u8, Event)>) {
        events.sort_by_key(|(b, _)| *b);
        for b in 0..6u8 {
            let w = store.writer_at(ingest_time(b)).unwrap();
            let batch: Vec<&Event> = events
                .iter()
                .filter(|(x, _)| *x == b)
                .map(|(_, ev)| ev)
                .collect();
            w.insert_batch(&batch, 1).unwrap();
            w.commit().unwrap();
        }
    }

    fn check(store: &Store, start: i64, end: i64, as_of: Option<&str>, customer: Option<&str>) {
        let scope = Scope {
            start_ns: start,
            end_ns: end,
            customer,
            vm: None,
            as_of,
        };
        let raw = store.resource_usage(&scope, ResourcePath::Raw).unwrap();
        let rollup = store.resource_usage(&scope, ResourcePath::Rollup).unwrap();
        assert_eq!(raw, rollup, "window {start}..{end} as of {as_of:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn rollup_equals_raw(
            a in proptest::collection::vec(step(), 1..60),
            b in proptest::collection::vec(step(), 1..60),
            c in proptest::collection::vec(step(), 0..30),
            windows in proptest::collection::vec((0i64..200_000, 1i64..300_000), 4),
            cut in 0usize..9,
            rebuild_after in proptest::bool::ANY,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path().join("t.db"), Mode::ReadWrite).unwrap();
            let mut events = stream("acme", "vm-a", T0 - 1_800, &a);
            events.extend(stream("acme", "vm-b", T0 + 1_234, &b));
            // The same VM id under another customer is another stream.
            events.extend(stream("zeta", "vm-a", T0 + 77, &c));
            load(&store, events);
            if rebuild_after {
                let tx = store.begin_write().unwrap();
                super::rebuild(store.conn()).unwrap();
                tx.commit().unwrap();
            }
            let cutoffs = [
                None,
                Some(ingest_time(0)),
                Some(ingest_time(1)),
                Some(ingest_time(1) + chrono::Duration::seconds(1)),
                Some(ingest_time(2) + chrono::Duration::seconds(5)),
                Some(ingest_time(3)),
                Some(ingest_time(4) + chrono::Duration::seconds(10)),
                Some(ingest_time(5)),
                Some(ingest_time(0) - chrono::Duration::seconds(1)),
            ];
            let as_of = cutoffs[cut].map(|t| crate::time::format_fixed_micros(&t));
            for (off, len) in &windows {
                let start = (T0 - 3_600 + off) * S + off * 7_919;
                check(&store, start, start + len * S, as_of.as_deref(), None);
                check(&store, start, start + len * S, as_of.as_deref(), Some("acme"));
            }
            // Whole days and a month in a zone half an hour off UTC.
            let tz: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
            let month = period::month(2026, 11, tz).unwrap();
            for p in [month.clone(), period::day(chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(), tz).unwrap()] {
                let q = Query {
                    period: p,
                    customer: None,
                    vm: None,
                    as_of: cutoffs[cut],
                };
                let raw = report::summary_with(&store, &q, ResourcePath::Raw).unwrap();
                let rollup = report::summary_with(&store, &q, ResourcePath::Rollup).unwrap();
                prop_assert_eq!(raw.customers, rollup.customers);
            }
        }
    }
}
