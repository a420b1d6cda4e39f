//! Fleet freshness: every known VM, when it last reported, and whether it
//! stopped. One computation behind `mb-report vms`, the dashboard's fleet
//! view, `/api/v1/vms` and the `/metrics` sample ages, so they agree.
//!
//! A VM is known when it is registered to a customer, has resource samples,
//! or sent api or activity events in the look-back window. It is **stale**
//! when its last resource sample is older than `stale_after` at the cutoff
//! (default: two of its own sampling intervals, the `interval_seconds` of
//! its last sample, or two times 300 s when that is unknown), and also when
//! it is registered but never sent a sample. A VM known only from api or
//! activity events (no sampler installed, not registered) is `no_samples`,
//! not stale: nothing says it should be sampled.
//!
//! The last sample is looked up over all time (an index seek per boot);
//! api and activity events only in `[since, until)`, because finding them
//! costs a pass over that window (see [`crate::store::fleet`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::store::fleet::{EventTable, IngestRun, LastEvent};
use crate::store::Store;
use crate::time;

/// Sampling interval assumed when a VM's last sample does not give one
/// (a first sample after install or reboot): mb-sample's cron default.
pub const DEFAULT_INTERVAL_SECONDS: i64 = 300;

/// A VM is stale after this many sampling intervals without a sample.
pub const STALE_INTERVALS: i64 = 2;

/// Default look-back for api and activity events, days.
pub const LOOKBACK_DAYS: i64 = 31;

/// Default number of ingest runs listed.
pub const DEFAULT_RUNS: usize = 10;

/// What to compute.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start of the window for api and activity events.
    pub since: DateTime<Utc>,
    /// The cutoff: ages are measured at this instant; samples and events
    /// after it are ignored when `bounded`.
    pub until: DateTime<Utc>,
    /// Whether `until` was given (otherwise it is "now" and samples with a
    /// clock slightly ahead still count).
    pub bounded: bool,
    /// A fixed staleness threshold, seconds, instead of two intervals.
    pub stale_after: Option<i64>,
    /// Only this customer's VMs.
    pub customer: Option<String>,
    /// How many recent ingest runs to list.
    pub runs: usize,
    /// Whether to look up api and activity events (one pass over the
    /// window's rows); views that show only samples skip it.
    pub events: bool,
}

impl Options {
    /// The defaults at `now`: the last [`LOOKBACK_DAYS`] days, two
    /// intervals, every customer, [`DEFAULT_RUNS`] runs.
    pub fn at(now: DateTime<Utc>) -> Options {
        Options {
            since: now - Duration::days(LOOKBACK_DAYS),
            until: now,
            bounded: false,
            stale_after: None,
            customer: None,
            runs: DEFAULT_RUNS,
            events: true,
        }
    }
}

/// Whether a VM reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Its last sample is recent enough.
    Ok,
    /// No sample for longer than the threshold, or registered and never
    /// sampled.
    Stale,
    /// Known from api or activity events only, not registered.
    NoSamples,
}

impl State {
    /// The name used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Stale => "stale",
            State::NoSamples => "no_samples",
        }
    }
}

/// The latest sample of a VM, as reports show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleInfo {
    /// End of the sample's interval.
    #[serde(serialize_with = "ser_t")]
    pub ts: DateTime<Utc>,
    /// Seconds from it to the cutoff (0 when it is ahead of the cutoff).
    pub age_seconds: i64,
    /// Its interval, seconds (null on a first sample).
    pub interval_seconds: Option<f64>,
    /// CPU % of that interval (null when unknown).
    pub cpu_percent: Option<f64>,
    /// Memory % at the sample.
    pub memory_percent: Option<f64>,
    /// Disk in use, bytes.
    pub disk_used_bytes: Option<i64>,
    /// The ingest run that stored it.
    pub run_id: i64,
    /// When it was stored.
    pub ingested_at: String,
}

/// The latest events of one kind from a VM in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EventInfo {
    /// The latest event, if any.
    #[serde(serialize_with = "ser_opt_t")]
    pub last: Option<DateTime<Utc>>,
    /// Events in the window.
    pub count: i64,
}

/// One VM of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vm {
    /// VM id.
    pub vm_id: String,
    /// Its customer: the one of its last sample, else the registry's, else
    /// the one of its latest event.
    pub customer_id: Option<String>,
    /// Customers the registry lists it under (usually one).
    pub registered_to: Vec<String>,
    /// The last sample (over all time, before the cutoff).
    pub last_sample: Option<SampleInfo>,
    /// API events in the window.
    pub api: EventInfo,
    /// Activity events in the window.
    pub activity: EventInfo,
    /// The staleness threshold applied, seconds.
    pub stale_after_seconds: i64,
    /// ok, stale or no_samples.
    pub state: State,
}

/// The fleet at a cutoff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fleet {
    /// Start of the event window.
    #[serde(serialize_with = "ser_t")]
    pub since: DateTime<Utc>,
    /// The cutoff.
    #[serde(serialize_with = "ser_t")]
    pub until: DateTime<Utc>,
    /// The fixed threshold, when one was given (else two intervals per VM).
    pub stale_after_seconds: Option<i64>,
    /// VMs, sorted by id.
    pub vms: Vec<Vm>,
    /// The latest ingest runs, newest first (empty on a customer scope:
    /// they describe every customer's data).
    pub ingest_runs: Vec<IngestRun>,
}

/// The state of a VM from its last sample (aged at the cutoff), whether
/// the registry lists it, and its threshold.
fn state_of(last: Option<&SampleInfo>, registered: bool, stale_after: i64) -> State {
    match last {
        Some(s) if s.age_seconds > stale_after => State::Stale,
        Some(_) => State::Ok,
        None if registered => State::Stale,
        None => State::NoSamples,
    }
}

impl Fleet {
    /// This fleet seen at `now`: the ages, states and window moved to it.
    /// For a fleet computed without a bound and without events (ages are
    /// all that depends on the instant then), this is what [`fleet`] gives
    /// at `now` on the same data; the dashboard's cache relies on it.
    pub fn at(&self, now: DateTime<Utc>) -> Fleet {
        let mut f = self.clone();
        f.since = now - (self.until - self.since);
        f.until = now;
        let until_ns = ns(&now);
        for v in &mut f.vms {
            if let Some(s) = &mut v.last_sample {
                s.age_seconds = (until_ns.saturating_sub(ns(&s.ts)) / 1_000_000_000).max(0);
            }
            v.state = state_of(
                v.last_sample.as_ref(),
                !v.registered_to.is_empty(),
                v.stale_after_seconds,
            );
        }
        f
    }

    /// How many VMs are stale.
    pub fn stale(&self) -> usize {
        self.vms.iter().filter(|v| v.state == State::Stale).count()
    }
}

/// An age as people read it: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn human_age(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Parse a staleness threshold: seconds (`600`), or a number with `s`,
/// `m`, `h` or `d` (`10m`, `2h`). At least one second.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86_400),
        _ => (s, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
}

fn ser_t<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&time::format_rfc3339(t))
}

fn ser_opt_t<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&time::format_rfc3339(t)),
        None => s.serialize_none(),
    }
}

fn ns(t: &DateTime<Utc>) -> i64 {
    time::to_unix_nanos(t).unwrap_or(i64::MAX)
}

/// Merge the per-(customer, VM) events of one VM.
fn merge(ev: &BTreeMap<(String, String), LastEvent>, vm: &str) -> (EventInfo, Option<String>) {
    let mut info = EventInfo::default();
    let mut latest: Option<(i64, String)> = None;
    for ((c, v), e) in ev {
        if v != vm {
            continue;
        }
        info.count += e.count;
        if latest.as_ref().is_none_or(|(t, _)| e.ts_ns > *t) {
            latest = Some((e.ts_ns, c.clone()));
        }
    }
    info.last = latest.as_ref().map(|(t, _)| time::from_unix_nanos(*t));
    (info, latest.map(|(_, c)| c))
}

/// Compute the fleet's freshness.
pub fn fleet(store: &Store, o: &Options) -> Result<Fleet> {
    let (since_ns, until_ns) = (ns(&o.since), ns(&o.until));
    let bound = if o.bounded { until_ns } else { i64::MAX };
    let scope = o.customer.as_deref();
    let (api, act) = if o.events {
        (
            store.last_events(EventTable::Api, since_ns, bound, scope)?,
            store.last_events(EventTable::Activity, since_ns, bound, scope)?,
        )
    } else {
        Default::default()
    };
    let mut registry: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (vm, c) in store.registered_vms()? {
        registry.entry(vm).or_default().push(c);
    }
    let mut ids: Vec<String> = store.sampled_vms()?;
    ids.extend(registry.keys().cloned());
    ids.extend(api.keys().chain(act.keys()).map(|(_, v)| v.clone()));
    ids.sort();
    ids.dedup();

    let mut vms = Vec::with_capacity(ids.len());
    for id in ids {
        let registered_to = registry.get(&id).cloned().unwrap_or_default();
        let mut last = store.last_sample(&id, bound)?;
        if let (Some(c), Some(s)) = (scope, &last) {
            // A VM that moved between customers: another customer's
            // samples are not this customer's to see.
            if s.customer_id != c {
                last = None;
            }
        }
        let (api_info, api_c) = merge(&api, &id);
        let (act_info, act_c) = merge(&act, &id);
        let customer_id = last
            .as_ref()
            .map(|s| s.customer_id.clone())
            .or_else(|| registered_to.first().cloned())
            .or(api_c)
            .or(act_c);
        if let Some(c) = scope {
            let mine = customer_id.as_deref() == Some(c) || registered_to.iter().any(|r| r == c);
            if !mine {
                continue;
            }
        }
        let interval = last
            .as_ref()
            .and_then(|s| s.interval_seconds)
            .filter(|i| i.is_finite() && *i > 0.0)
            .map_or(DEFAULT_INTERVAL_SECONDS, |i| i.ceil() as i64);
        let stale_after = o.stale_after.unwrap_or(STALE_INTERVALS * interval);
        let last_sample = last.map(|s| SampleInfo {
            ts: time::from_unix_nanos(s.ts_ns),
            age_seconds: (until_ns.saturating_sub(s.ts_ns) / 1_000_000_000).max(0),
            interval_seconds: s.interval_seconds,
            cpu_percent: s.cpu_percent,
            memory_percent: s.memory_percent,
            disk_used_bytes: s.disk_used_bytes,
            run_id: s.run_id,
            ingested_at: s.ingested_at,
        });
        let state = state_of(last_sample.as_ref(), !registered_to.is_empty(), stale_after);
        vms.push(Vm {
            vm_id: id,
            customer_id,
            registered_to,
            last_sample,
            api: api_info,
            activity: act_info,
            stale_after_seconds: stale_after,
            state,
        });
    }
    let ingest_runs = if scope.is_some() {
        Vec::new()
    } else {
        store.ingest_runs(o.runs)?
    };
    Ok(Fleet {
        since: o.since,
        until: o.until,
        stale_after_seconds: o.stale_after,
        vms,
        ingest_runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_takes_the_latest_customer_and_sums_counts() {
        let mut ev = BTreeMap::new();
        let e = |ts_ns, count| LastEvent {
            ts_ns,
            count,
            tokens: 0,
            cost_nusd: 0,
        };
        ev.insert(("acme".to_string(), "vm-1".to_string()), e(10, 2));
        ev.insert(("globex".to_string(), "vm-1".to_string()), e(20, 1));
        ev.insert(("acme".to_string(), "vm-2".to_string()), e(30, 5));
        let (info, c) = merge(&ev, "vm-1");
        assert_eq!(info.count, 3);
        assert_eq!(info.last, Some(time::from_unix_nanos(20)));
        assert_eq!(c.as_deref(), Some("globex"));
        assert_eq!(merge(&ev, "vm-9").0, EventInfo::default());
        assert_eq!(State::NoSamples.as_str(), "no_samples");
    }

    #[test]
    fn a_fleet_aged_to_a_later_instant_is_the_fleet_computed_then() {
        use crate::events::{Body, Event, Header, Resource, SampleStatus};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("f.db"), crate::store::Mode::ReadWrite).unwrap();
        let t0 = time::from_unix_nanos(1_793_491_200_000_000_000);
        let w = store.writer().unwrap();
        let evs: Vec<Event> = [("vm-a", 0), ("vm-a", 300), ("vm-b", 900)]
            .iter()
            .enumerate()
            .map(|(i, (vm, secs))| Event {
                header: Header {
                    id: format!("r{i}"),
                    ts: t0 + Duration::seconds(*secs),
                    customer_id: "acme".into(),
                    vm_id: (*vm).into(),
                },
                body: Body::Resource(Resource {
                    status: if i == 1 {
                        SampleStatus::Ok
                    } else {
                        SampleStatus::First
                    },
                    interval_seconds: (i == 1).then_some(300.0),
                    boot_id: "b".into(),
                    ..Resource::default()
                }),
            })
            .collect();
        w.insert_batch(&evs.iter().collect::<Vec<_>>(), 1).unwrap();
        w.commit().unwrap();
        let o = |now| Options {
            events: false,
            ..Options::at(now)
        };
        let t1 = t0 + Duration::seconds(1000);
        // vm-a goes stale (600 s) between t1 and t2; vm-b later.
        for t2 in [t1, t0 + Duration::seconds(1500), t0 + Duration::days(3)] {
            let later = fleet(&store, &o(t2)).unwrap();
            assert_eq!(fleet(&store, &o(t1)).unwrap().at(t2), later);
        }
        let f = fleet(&store, &o(t0 + Duration::seconds(1500))).unwrap();
        let states: Vec<_> = f.vms.iter().map(|v| v.state).collect();
        assert_eq!(states, [State::Stale, State::Ok]);
    }

    #[test]
    fn ages() {
        assert_eq!(human_age(45), "45 s");
        assert_eq!(human_age(600), "10 min");
        assert_eq!(human_age(11_100), "3 h 5 min");
        assert_eq!(human_age(2_163_600), "25 d 1 h");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600"), Some(600));
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("1d"), Some(86_400));
        for bad in ["", "0", "-5", "m", "1.5h", "10x", "99999999999999999999"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
