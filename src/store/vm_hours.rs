//! `vm_event_hours`: api and activity events per (customer, VM) and UTC
//! hour (count, billable tokens, cost, latest event time), kept by
//! mb-ingest in the transaction that stores the rows, and the read path
//! over it.
//!
//! Why: the fleet view, `/api/v1/vms` and `/metrics` need each VM's last
//! api and activity event and its month-to-date tokens and cost. Neither
//! usage table has a VM index (one more random index per row would slow
//! every ingest), so grouping the rows by VM read every row of the window:
//! seconds for a month of 10M api rows. This table holds a row per VM and
//! hour (200 VMs: 4,800 a day), so a month is one range of it.
//!
//! Exactness: a window's whole hours are summed from here; the partial
//! hours at its edges are read from the rows, through the usage table's
//! (customer, time) index, for the customers this table lists in those
//! hours. `mb-tokens reprice` moves a priced row's cost into its cell in
//! the same transaction. There is no ingest-time cutoff (`--as-of`): the
//! readers ask "what is stored now".

use std::collections::BTreeMap;

use super::db::{vals, Db, DbError, DbResult, Row};
use super::events::HOUR_NS;
use super::fleet::{EventTable, LastEvent};
use super::pgcopy::Field;

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

impl EventTable {
    fn kind(self) -> &'static str {
        match self {
            EventTable::Api => "api",
            EventTable::Activity => "activity",
        }
    }

    fn table(self) -> &'static str {
        match self {
            EventTable::Api => "api_usage",
            EventTable::Activity => "activity_log",
        }
    }
}

/// The cells one transaction touched, summed in memory while its rows are
/// inserted and added to the table at commit (like api_rollup).
#[derive(Debug, Default, Clone)]
pub(crate) struct VmHours {
    strings: super::FastMap<String, u32>,
    names: Vec<String>,
    cells: super::FastMap<(bool, u32, u32, i64), LastEvent>,
}

impl VmHours {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&n) = self.strings.get(s) {
            return n;
        }
        let n = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(s.to_owned());
        self.strings.insert(s.to_owned(), n);
        n
    }

    /// Count one stored event of `customer` on `vm` at `ts_ns` (`api`:
    /// an api event with its billable tokens and cost; else activity).
    pub(crate) fn add(
        &mut self,
        api: bool,
        customer: &str,
        vm: &str,
        ts_ns: i64,
        tokens: i64,
        cost_nusd: i64,
    ) -> DbResult<()> {
        let key = (
            api,
            self.intern(customer),
            self.intern(vm),
            floor_hour(ts_ns),
        );
        let e = self.cells.entry(key).or_insert(LastEvent {
            ts_ns,
            count: 0,
            tokens: 0,
            cost_nusd: 0,
        });
        let over = || DbError::Other("vm_event_hours overflows".into());
        e.ts_ns = e.ts_ns.max(ts_ns);
        e.count += 1;
        e.tokens = e.tokens.checked_add(tokens).ok_or_else(over)?;
        e.cost_nusd = e.cost_nusd.checked_add(cost_nusd).ok_or_else(over)?;
        Ok(())
    }

    /// Add the cells to the table, in key order, and forget them. The api
    /// cells of a (customer, hour) `fresh` says had no api row before this
    /// transaction are new: copied, not upserted (see
    /// [`super::pgcopy::copy_new`]).
    pub(crate) fn flush(&mut self, conn: &Db, fresh: &dyn Fn(&str, i64) -> bool) -> DbResult<()> {
        if self.cells.is_empty() {
            return Ok(());
        }
        let names = &self.names;
        let mut rows: Vec<_> = self
            .cells
            .drain()
            .map(|((api, c, v, hour), e)| {
                let kind = if api { "api" } else { "activity" };
                (kind, hour, &names[c as usize], &names[v as usize], e)
            })
            .collect();
        rows.sort_unstable_by(|a, b| (a.0, a.1, a.2, a.3).cmp(&(b.0, b.1, b.2, b.3)));
        // vm_event_hours' row of a cell, in COLS' order.
        fn row<'a>(
            (kind, hour, c, v, e): &(&'a str, i64, &'a String, &'a String, LastEvent),
        ) -> [Field<'a>; 8] {
            [
                Field::Text(kind),
                Field::Int(*hour),
                Field::Text(c),
                Field::Text(v),
                Field::Int(e.count),
                Field::Int(e.tokens),
                Field::Int(e.cost_nusd),
                Field::Int(e.ts_ns),
            ]
        }
        let (new, old): (Vec<_>, Vec<_>) = rows
            .iter()
            .partition(|(kind, hour, c, ..)| *kind == "api" && fresh(c, *hour));
        let new: Vec<_> = new.into_iter().map(row).collect();
        const COLS: &str =
            "vm_event_hours (kind, hour_ns, customer_id, vm_id, events, tokens, cost_nusd, last_ts_ns)";
        let mut rows: Vec<_> = old.into_iter().map(row).collect();
        if !super::pgcopy::copy_new(conn, COLS, &new)? {
            rows.extend(new);
        }
        let rows = super::pgcopy::values(&rows);
        if rows.is_empty() {
            return Ok(());
        }
        conn.insert_rows(
            &format!("INSERT INTO {COLS}"),
            "ON CONFLICT (kind, hour_ns, customer_id, vm_id) DO UPDATE SET \
             events = vm_event_hours.events + excluded.events, \
             tokens = vm_event_hours.tokens + excluded.tokens, \
             cost_nusd = vm_event_hours.cost_nusd + excluded.cost_nusd, \
             last_ts_ns = CASE WHEN vm_event_hours.last_ts_ns >= excluded.last_ts_ns \
             THEN vm_event_hours.last_ts_ns ELSE excluded.last_ts_ns END",
            &rows,
        )?;
        Ok(())
    }
}

/// `mb-tokens reprice` priced the api row `rowid` (of `customer` at
/// `ts_ns`), whose cost went from `old` to `new` nano-USD.
pub(crate) fn repriced(
    conn: &Db,
    rowid: i64,
    customer: &str,
    ts_ns: i64,
    old: i64,
    new: i64,
) -> DbResult<()> {
    conn.execute(
        "UPDATE vm_event_hours SET cost_nusd = cost_nusd + ?5 - ?4 \
         WHERE kind = 'api' AND hour_ns = ?3 AND customer_id = ?2 \
         AND vm_id = (SELECT vm_id FROM api_usage WHERE rowid = ?1)",
        vals![rowid, customer, floor_hour(ts_ns), old, new],
    )?;
    Ok(())
}

fn merge(out: &mut BTreeMap<(String, String), LastEvent>, key: (String, String), e: LastEvent) {
    match out.get_mut(&key) {
        Some(o) => {
            o.ts_ns = o.ts_ns.max(e.ts_ns);
            o.count += e.count;
            o.tokens += e.tokens;
            o.cost_nusd += e.cost_nusd;
        }
        None => {
            out.insert(key, e);
        }
    }
}

fn last_event(r: &Row, at: usize) -> DbResult<LastEvent> {
    Ok(LastEvent {
        ts_ns: r.get(at)?,
        count: r.get(at + 1)?,
        tokens: r.get(at + 2)?,
        cost_nusd: r.get(at + 3)?,
    })
}

/// The events of `table` per (customer, VM) in `[start_ns, end_ns)`: whole
/// hours from `vm_event_hours`, the edges from the rows.
pub(crate) fn last_events(
    conn: &Db,
    table: EventTable,
    start_ns: i64,
    end_ns: i64,
    customer: Option<&str>,
) -> DbResult<BTreeMap<(String, String), LastEvent>> {
    let mut out = BTreeMap::new();
    if start_ns >= end_ns {
        return Ok(out);
    }
    let kind = table.kind();
    let (h0, h1) = (ceil_hour(start_ns), floor_hour(end_ns));
    let edges = if h0 < h1 {
        conn.query_each(
            "SELECT customer_id, vm_id, max(last_ts_ns), CAST(sum(events) AS BIGINT), \
             CAST(sum(tokens) AS BIGINT), CAST(sum(cost_nusd) AS BIGINT) FROM vm_event_hours \
             WHERE kind = ?1 AND hour_ns >= ?2 AND hour_ns < ?3 \
             AND (CAST(?4 AS TEXT) IS NULL OR customer_id = ?4) GROUP BY 1, 2",
            vals![kind, h0, h1, customer],
            |r| {
                out.insert((r.get(0)?, r.get(1)?), last_event(r, 2)?);
                Ok(())
            },
        )?;
        vec![(start_ns, h0), (h1, end_ns)]
    } else {
        vec![(start_ns, end_ns)]
    };
    let sums = match table {
        EventTable::Api => {
            "CAST(sum(tokens_in + tokens_out + cache_read_tokens + cache_write_tokens) AS BIGINT), \
             coalesce(CAST(sum(cost_nusd) AS BIGINT), 0)"
        }
        EventTable::Activity => "0, 0",
    };
    let raw = format!(
        "SELECT vm_id, max(ts_ns), count(*), {sums} FROM {} \
         WHERE customer_id = ?1 AND ts_ns >= ?2 AND ts_ns < ?3 GROUP BY vm_id",
        table.table()
    );
    for (a, b) in edges.into_iter().filter(|(a, b)| a < b) {
        // The customers with events in the edge's hours (at most two).
        let customers: Vec<String> = conn.query_map(
            "SELECT DISTINCT customer_id FROM vm_event_hours WHERE kind = ?1 \
             AND hour_ns >= ?2 AND hour_ns < ?3 AND (CAST(?4 AS TEXT) IS NULL OR customer_id = ?4)",
            vals![kind, floor_hour(a), b, customer],
            |r| r.get(0),
        )?;
        for c in customers {
            conn.query_each(&raw, vals![c, a, b], |r| {
                merge(&mut out, (c.clone(), r.get(0)?), last_event(r, 1)?);
                Ok(())
            })?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! The read path equals a grouped pass over the rows, for windows with
    //! and without whole hours, after ingests in several transactions, an
    //! out-of-order line and a reprice.

    use std::collections::BTreeMap;

    use crate::events::{Activity, Api, Body, Event, Header};
    use crate::store::fleet::{EventTable, LastEvent};
    use crate::store::{Mode, Store};

    const S: i64 = 1_000_000_000;
    /// 2026-11-01T00:00:00Z.
    const T0: i64 = 1_793_491_200 * S;

    fn reference(
        store: &Store,
        table: EventTable,
        a: i64,
        b: i64,
        customer: Option<&str>,
    ) -> BTreeMap<(String, String), LastEvent> {
        let (t, sums) = match table {
            EventTable::Api => (
                "api_usage",
                "sum(tokens_in + tokens_out + cache_read_tokens + cache_write_tokens), \
                 coalesce(sum(cost_nusd), 0)",
            ),
            EventTable::Activity => ("activity_log", "0, 0"),
        };
        let sql = format!(
            "SELECT customer_id, vm_id, max(ts_ns), count(*), {sums} FROM {t} \
             WHERE ts_ns >= ?1 AND ts_ns < ?2 AND (CAST(?3 AS TEXT) IS NULL OR customer_id = ?3) \
             GROUP BY customer_id, vm_id"
        );
        let rows = store
            .conn()
            .query_map(&sql, crate::store::db::vals![a, b, customer], |r| {
                Ok((
                    (r.get(0)?, r.get(1)?),
                    LastEvent {
                        ts_ns: r.get(2)?,
                        count: r.get(3)?,
                        tokens: r.get(4)?,
                        cost_nusd: r.get(5)?,
                    },
                ))
            })
            .unwrap();
        rows.into_iter().collect()
    }

    fn event(i: i64, ts: i64, api: bool, priced: bool) -> Event {
        let customer = ["acme", "zeta", "beta"][(i % 3) as usize];
        let vm = format!("vm-{}", i % 5);
        let header = Header {
            id: format!("e{i}"),
            ts: crate::time::from_unix_nanos(ts),
            customer_id: customer.into(),
            vm_id: vm,
        };
        let body = if api {
            Body::Api(Api {
                provider: "anthropic".into(),
                model: "claude-x".into(),
                tokens_in: (i * 37 % 1000) as u64,
                tokens_out: (i * 11 % 500) as u64,
                cache_read_tokens: (i % 7) as u64,
                cost_nusd: priced.then_some(i * 1_000 + 7),
                priced,
                price_key: priced.then(|| "claude-x".to_string()),
                price_table: priced.then(|| "t1".to_string()),
                ..Api::default()
            })
        } else {
            Body::Activity(Activity {
                activity_type: "command".into(),
                ..Activity::default()
            })
        };
        Event { header, body }
    }

    #[test]
    fn rollup_path_equals_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db"), Mode::ReadWrite).unwrap();
        // Three transactions; times spread over 30 hours, not in order.
        for batch in 0..3i64 {
            let w = store.writer().unwrap();
            let evs: Vec<Event> = (0..120i64)
                .map(|k| {
                    let i = batch * 1000 + k;
                    let ts = T0 + ((i * 7_919 * S) % (30 * 3_600 * S));
                    event(i, ts, k % 4 != 0, k % 5 != 0)
                })
                .collect();
            let refs: Vec<&Event> = evs.iter().collect();
            w.insert_batch(&refs, 1).unwrap();
            w.commit().unwrap();
        }
        let windows = [
            (T0, T0 + 30 * 3_600 * S),
            (T0 + 1_234 * S, T0 + 20 * 3_600 * S + 17 * S),
            (T0 + 100 * S, T0 + 900 * S),
            (T0 + 3_500 * S, T0 + 3_700 * S),
            (T0 - 3_600 * S, i64::MAX),
            (T0 + 5 * 3_600 * S + 1, T0 + 9 * 3_600 * S - 1),
        ];
        let check = |store: &Store| {
            for (a, b) in windows {
                for t in [EventTable::Api, EventTable::Activity] {
                    for c in [None, Some("zeta")] {
                        let got = store.last_events(t, a, b, c).unwrap();
                        assert_eq!(got, reference(store, t, a, b, c), "{t:?} {a}..{b} {c:?}");
                    }
                }
            }
        };
        check(&store);
        // Pricing the unpriced rows moves their cost into the cells.
        let rows = store.unpriced_api_rows(None).unwrap();
        assert!(!rows.is_empty());
        let changes: Vec<_> = rows
            .into_iter()
            .map(|row| crate::store::reprice::Repricing {
                cost_nusd: row.tokens_in as i64 * 3 + 1,
                price_key: "claude-x".into(),
                price_table: "t2".into(),
                row,
            })
            .collect();
        store
            .reprice(
                &changes,
                &["t2".into()],
                None,
                "2026-12-01T00:00:00.000000Z",
            )
            .unwrap();
        check(&store);
        // The migration that creates the table fills it from the rows with
        // the same cells that ingest and reprice maintained.
        type Cell = (String, i64, String, String, i64, i64, i64, i64);
        let cells = |store: &Store| -> Vec<Cell> {
            store
                .conn()
                .query_map(
                    "SELECT * FROM vm_event_hours ORDER BY 1, 2, 3, 4",
                    crate::store::db::vals![],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                        ))
                    },
                )
                .unwrap()
        };
        let kept = cells(&store);
        assert!(kept.len() > 100, "{} cells", kept.len());
        let m = crate::store::schema::MIGRATIONS
            .iter()
            .find(|m| m.contains("CREATE TABLE vm_event_hours"))
            .unwrap();
        let fill = &m[m.find("INSERT INTO vm_event_hours").unwrap()..];
        store
            .conn()
            .batch(&format!("DELETE FROM vm_event_hours; {fill}"))
            .unwrap();
        assert_eq!(cells(&store), kept);
    }
}
