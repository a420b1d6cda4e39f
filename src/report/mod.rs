//! Reports: what a customer used in a period, as numbers the CLI and the
//! dashboard both render (so they never disagree).
//!
//! - API usage comes from [`Store::api_totals`] (rollup + exact edges).
//! - Resource usage comes from [`Store::resource_usage`] per (customer, VM),
//!   as exact integer sums (the rules are in [`resource`]): consecutive
//!   samples of one VM boot give exact CPU ticks and network bytes even when
//!   a sample in between was lost; an interval that crosses the period's
//!   edge is split in proportion to time; a `reboot` sample contributes its
//!   since-boot counters over its uptime. Average CPU % is summed busy ticks
//!   over summed total ticks; average memory % is weighted by time; disk is
//!   the sum over the VMs of each one's largest use; coverage is the share
//!   of the period (times the number of VMs) covered by sample intervals.
//!   Each VM also gets its own line ([`resource::VmUsage`]).
//! - Activity is counted per type.
//!
//! Units in every output: GB = 10^9 bytes, MB = 10^6 bytes.

pub mod fleet;
pub mod glance;
pub mod invoice;
pub mod meter;
pub mod period;
pub mod provenance;
pub mod render;
pub mod resource;
pub mod standing;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::output::fixed;
use crate::store::report::{ApiAgg, ResourcePath, Scope};
use crate::store::Store;
use crate::time;
pub use period::{Period, Unit};

/// What a report covers.
#[derive(Debug, Clone)]
pub struct Query {
    /// The period.
    pub period: Period,
    /// Only this customer.
    pub customer: Option<String>,
    /// Only this VM.
    pub vm: Option<String>,
    /// Ingest-time cutoff.
    pub as_of: Option<DateTime<Utc>>,
}

impl Query {
    /// The cutoff in the stored `ingested_at` form.
    pub fn as_of_text(&self) -> Option<String> {
        self.as_of.map(|t| time::format_fixed_micros(&t))
    }

    /// The store scope of `[start, end)` with this query's filters.
    pub fn scope<'a>(&'a self, as_of: &'a Option<String>, start_ns: i64, end_ns: i64) -> Scope<'a> {
        Scope {
            start_ns,
            end_ns,
            customer: self.customer.as_deref(),
            vm: self.vm.as_deref(),
            as_of: as_of.as_deref(),
        }
    }
}

/// API usage of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelUsage {
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Sums.
    pub usage: ApiAgg,
}

/// Resource usage of a customer (or VM) in a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourceUsage {
    /// VMs with samples or intervals in the period.
    pub vms: u64,
    /// Samples in the period.
    pub samples: u64,
    /// Busy ticks / total ticks x 100.
    pub avg_cpu_percent: Option<f64>,
    /// Time-weighted memory %.
    pub avg_memory_percent: Option<f64>,
    /// Disk in use: the sum over the VMs of each one's largest use in the
    /// period, bytes.
    pub max_disk_bytes: Option<i64>,
    /// Bytes received (a whole number).
    pub net_in_bytes: f64,
    /// Bytes sent (a whole number).
    pub net_out_bytes: f64,
    /// Share of the period covered by samples, 0..=1.
    pub coverage: Option<f64>,
    /// Summed busy ticks.
    #[serde(skip)]
    pub busy_ticks: f64,
    /// Summed total ticks.
    #[serde(skip)]
    pub total_ticks: f64,
    /// Intervals left out of the CPU average because the sampler flagged
    /// their ticks (`cpu_counter_backwards`, `cpu_total_mismatch`).
    pub cpu_skipped_intervals: u64,
    /// Boot changes seen in the VMs' samples.
    pub reboots: u64,
    /// Cumulative counters that went backwards within one boot.
    pub counter_resets: u64,
    /// Gaps (lost lines) between same-boot samples.
    pub gaps: u64,
    /// VMs with usage that the registry does not list for this customer
    /// although it lists other VMs for it, or lists them for another
    /// customer (a customer without any registered VM is not flagged: the
    /// registry is not used for VMs there).
    pub unregistered_vms: Vec<String>,
    /// One line per VM, sorted by VM id.
    pub by_vm: Vec<resource::VmUsage>,
}

impl ResourceUsage {
    /// The customer's usage from its VMs' exact sums over a period of
    /// `period_ns`; `registered` lists the VMs the registry gives it, and
    /// `elsewhere` the VMs it gives to other customers.
    pub fn from_vms<'a>(
        vms: impl IntoIterator<Item = (&'a str, &'a resource::VmAcc)>,
        registered: &[String],
        elsewhere: &[String],
        period_ns: i64,
    ) -> ResourceUsage {
        let mut all = resource::VmAcc::default();
        let mut r = ResourceUsage::default();
        for (vm, a) in vms {
            if !a.is_present() {
                continue;
            }
            all.add(a, 1);
            if let Some(d) = a.max_disk {
                r.max_disk_bytes = Some(r.max_disk_bytes.unwrap_or(0).saturating_add(d));
            }
            let known = registered.iter().any(|v| v == vm);
            if !known && (!registered.is_empty() || elsewhere.iter().any(|v| v == vm)) {
                r.unregistered_vms.push(vm.to_string());
            }
            r.by_vm
                .push(resource::VmUsage::from_acc(vm, known, a, period_ns));
        }
        r.vms = r.by_vm.len() as u64;
        r.samples = u64::try_from(all.samples).unwrap_or(0);
        r.avg_cpu_percent = resource::cpu_percent(&all);
        r.avg_memory_percent = resource::memory_percent(&all);
        r.net_in_bytes = all.net_in as f64;
        r.net_out_bytes = all.net_out as f64;
        r.busy_ticks = all.busy as f64;
        r.total_ticks = all.total as f64;
        r.cpu_skipped_intervals = u64::try_from(all.cpu_skipped).unwrap_or(0);
        r.reboots = u64::try_from(all.reboots).unwrap_or(0);
        r.counter_resets = u64::try_from(all.resets).unwrap_or(0);
        r.gaps = u64::try_from(all.gaps).unwrap_or(0);
        if r.vms > 0 && period_ns > 0 {
            r.coverage = Some((all.covered_ns as f64 / (period_ns as f64 * r.vms as f64)).min(1.0));
        }
        r
    }
}

/// Per customer, the resource usage of its VMs in `scope`.
fn resources_by_customer(
    store: &Store,
    scope: &Scope,
    path: ResourcePath,
) -> Result<BTreeMap<String, ResourceUsage>> {
    let accs = store.resource_usage(scope, path)?;
    let period_ns = scope.end_ns.saturating_sub(scope.start_ns);
    let mut out = BTreeMap::new();
    let mut it = accs.iter().peekable();
    while let Some(((c, _), _)) = it.peek() {
        let c = c.clone();
        let mut vms = Vec::new();
        while let Some(((c2, vm), a)) = it.peek() {
            if *c2 != c {
                break;
            }
            vms.push((vm.as_str(), *a));
            it.next();
        }
        let registered = store.customer_vms(&c)?;
        let mut elsewhere = Vec::new();
        for (vm, _) in &vms {
            if !registered.iter().any(|v| v == vm) && store.vm_registered_elsewhere(vm, &c)? {
                elsewhere.push(vm.to_string());
            }
        }
        out.insert(
            c,
            ResourceUsage::from_vms(vms, &registered, &elsewhere, period_ns),
        );
    }
    Ok(out)
}

/// Activity of one type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityUsage {
    /// Type.
    pub activity_type: String,
    /// Number of events.
    pub count: i64,
    /// Total duration, seconds.
    pub duration_seconds: f64,
}

/// Everything one customer used in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerSummary {
    /// Customer id.
    pub customer_id: String,
    /// Whether the customer is in the registry.
    pub registered: bool,
    /// Per provider and model, sorted.
    pub api: Vec<ModelUsage>,
    /// Sum of `api`.
    pub api_total: ApiAgg,
    /// Price tables that priced the usage.
    pub price_tables: Vec<String>,
    /// Resource usage.
    pub resource: ResourceUsage,
    /// Per activity type, sorted.
    pub activity: Vec<ActivityUsage>,
}

/// A summary report.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The period.
    pub period: Period,
    /// When it was made (the cutoff when one was given, so reruns match).
    pub generated_at: DateTime<Utc>,
    /// Ingest cutoff.
    pub as_of: Option<DateTime<Utc>>,
    /// One entry per customer with usage (or the one asked for), sorted.
    pub customers: Vec<CustomerSummary>,
    /// Each customer's tier, status and usage while inactive, in the
    /// order of `customers`.
    pub standing: Vec<standing::Standing>,
}

impl Summary {
    /// Models with unpriced usage: (customer, provider, model, requests).
    pub fn unpriced(&self) -> Vec<(String, String, String, i64)> {
        let mut v = Vec::new();
        for c in &self.customers {
            for m in &c.api {
                if m.usage.unpriced_requests > 0 {
                    v.push((
                        c.customer_id.clone(),
                        m.provider.clone(),
                        m.model.clone(),
                        m.usage.unpriced_requests,
                    ));
                }
            }
        }
        v
    }
}

/// Build the summary for `q`.
pub fn summary(store: &Store, q: &Query) -> Result<Summary> {
    summary_with(store, q, ResourcePath::from_env())
}

/// Build the summary for `q`, reading resource usage through `path` (the
/// two give identical summaries; the raw path is the reference).
pub fn summary_with(store: &Store, q: &Query, path: ResourcePath) -> Result<Summary> {
    let as_of = q.as_of_text();
    let scope = q.scope(&as_of, q.period.start_ns(), q.period.end_ns());
    let api = store.api_totals(&scope)?;
    let mut resources = resources_by_customer(store, &scope, path)?;
    let activity = store.activity_totals(&scope)?;

    let mut ids: Vec<String> = api.keys().map(|k| k.customer_id.clone()).collect();
    ids.extend(
        resources
            .iter()
            .filter(|(_, r)| r.samples > 0)
            .map(|(c, _)| c.clone()),
    );
    ids.extend(activity.iter().map(|a| a.customer_id.clone()));
    if let Some(c) = &q.customer {
        ids.push(c.clone());
    }
    ids.sort();
    ids.dedup();

    let mut customers = Vec::with_capacity(ids.len());
    for id in ids {
        let mut models: BTreeMap<(String, String), ApiAgg> = BTreeMap::new();
        let mut tables: Vec<String> = Vec::new();
        let mut total = ApiAgg::default();
        for (k, v) in api.range(
            crate::store::report::ApiKey {
                customer_id: id.clone(),
                provider: String::new(),
                model: String::new(),
                price_table: String::new(),
            }..,
        ) {
            if k.customer_id != id {
                break;
            }
            models
                .entry((k.provider.clone(), k.model.clone()))
                .or_default()
                .add(v, 1);
            total.add(v, 1);
            if !k.price_table.is_empty() && !tables.contains(&k.price_table) {
                tables.push(k.price_table.clone());
            }
        }
        tables.sort();
        let resource = resources.remove(&id).unwrap_or_default();
        let activity = activity
            .iter()
            .filter(|a| a.customer_id == id)
            .map(|a| ActivityUsage {
                activity_type: a.activity_type.clone(),
                count: a.count,
                duration_seconds: a.duration_seconds,
            })
            .collect();
        customers.push(CustomerSummary {
            registered: store.customer_exists(&id)?,
            customer_id: id,
            api: models
                .into_iter()
                .map(|((provider, model), usage)| ModelUsage {
                    provider,
                    model,
                    usage,
                })
                .collect(),
            api_total: total,
            price_tables: tables,
            resource,
            activity,
        });
    }
    let ids: Vec<String> = customers.iter().map(|c| c.customer_id.clone()).collect();
    Ok(Summary {
        period: q.period.clone(),
        generated_at: q.as_of.unwrap_or_else(|| time::whole_seconds(time::now())),
        as_of: q.as_of,
        standing: standing::standing(store, q, &ids, time::now())?,
        customers,
    })
}

/// One value of the tidy series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesRow {
    /// Bucket start.
    #[serde(serialize_with = "ser_t")]
    pub bucket_start: DateTime<Utc>,
    /// Bucket end.
    #[serde(serialize_with = "ser_t")]
    pub bucket_end: DateTime<Utc>,
    /// Customer.
    pub customer_id: String,
    /// Metric name (see [`METRICS`]).
    pub metric: &'static str,
    /// Value (decimal text for money, so it stays exact).
    pub value: String,
}

fn ser_t<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&time::format_rfc3339(t))
}

/// Series metrics, in output order.
pub const METRICS: &[&str] = &[
    "requests",
    "tokens",
    "tokens_in",
    "tokens_out",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "cpu_percent",
    "memory_percent",
    "disk_gb",
    "net_in_mb",
    "net_out_mb",
    "activity_count",
    "activity_seconds",
];

/// The tidy series of `q` split by `by`: one row per bucket x customer x
/// metric, for the metrics asked (all when empty). Buckets without data for
/// a customer are omitted for that customer.
pub fn series(store: &Store, q: &Query, by: Unit, metrics: &[String]) -> Result<Vec<SeriesRow>> {
    let want = |m: &str| metrics.is_empty() || metrics.iter().any(|x| x == m);
    let as_of = q.as_of_text();
    let mut out = Vec::new();
    let need_resource = [
        "cpu_percent",
        "memory_percent",
        "disk_gb",
        "net_in_mb",
        "net_out_mb",
    ]
    .iter()
    .any(|m| want(m));
    let path = ResourcePath::from_env();
    for b in q.period.buckets(by)? {
        let sub = Query {
            period: b.clone(),
            ..q.clone()
        };
        let s = summary_parts(store, &sub, &as_of, need_resource.then_some(path))?;
        for c in s {
            let mut push = |metric: &'static str, value: String| {
                if want(metric) {
                    out.push(SeriesRow {
                        bucket_start: b.start,
                        bucket_end: b.end,
                        customer_id: c.customer_id.clone(),
                        metric,
                        value,
                    });
                }
            };
            let a = &c.api_total;
            if a.requests > 0 {
                push("requests", a.requests.to_string());
                push("tokens", a.total_tokens().to_string());
                push("tokens_in", a.tokens_in.to_string());
                push("tokens_out", a.tokens_out.to_string());
                push("cache_read_tokens", a.cache_read_tokens.to_string());
                push("cache_write_tokens", a.cache_write_tokens.to_string());
                push("cost_usd", crate::money::format_nanos(a.cost_nusd));
            }
            let r = &c.resource;
            if let Some(v) = r.avg_cpu_percent {
                push("cpu_percent", fixed(v, 1));
            }
            if let Some(v) = r.avg_memory_percent {
                push("memory_percent", fixed(v, 1));
            }
            if let Some(v) = r.max_disk_bytes {
                push("disk_gb", fixed(v as f64 / 1e9, 1));
            }
            if r.coverage.is_some() {
                push("net_in_mb", fixed(r.net_in_bytes / 1e6, 1));
                push("net_out_mb", fixed(r.net_out_bytes / 1e6, 1));
            }
            let (n, secs) = c
                .activity
                .iter()
                .fold((0, 0.0), |(n, s), a| (n + a.count, s + a.duration_seconds));
            if n > 0 {
                push("activity_count", n.to_string());
                push("activity_seconds", fixed(secs, 1));
            }
        }
    }
    Ok(out)
}

/// The per-customer parts of a summary for one bucket (resource usage only
/// when a path is given).
fn summary_parts(
    store: &Store,
    q: &Query,
    as_of: &Option<String>,
    resource_path: Option<ResourcePath>,
) -> Result<Vec<CustomerSummary>> {
    let scope = q.scope(as_of, q.period.start_ns(), q.period.end_ns());
    let api = store.api_totals(&scope)?;
    let activity = store.activity_totals(&scope)?;
    let mut resources = match resource_path {
        Some(p) => resources_by_customer(store, &scope, p)?,
        None => BTreeMap::new(),
    };
    let mut ids: Vec<String> = api.keys().map(|k| k.customer_id.clone()).collect();
    ids.extend(
        resources
            .iter()
            .filter(|(_, r)| r.samples > 0)
            .map(|(c, _)| c.clone()),
    );
    ids.extend(activity.iter().map(|a| a.customer_id.clone()));
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let mut total = ApiAgg::default();
        for (k, v) in &api {
            if k.customer_id == id {
                total.add(v, 1);
            }
        }
        let resource = resources.remove(&id).unwrap_or_default();
        let activity = activity
            .iter()
            .filter(|a| a.customer_id == id)
            .map(|a| ActivityUsage {
                activity_type: a.activity_type.clone(),
                count: a.count,
                duration_seconds: a.duration_seconds,
            })
            .collect();
        out.push(CustomerSummary {
            customer_id: id,
            registered: true,
            api: Vec::new(),
            api_total: total,
            price_tables: Vec::new(),
            resource,
            activity,
        });
    }
    Ok(out)
}
