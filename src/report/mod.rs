//! Reports: what a customer used in a period, as numbers the CLI and the
//! dashboard both render (so they never disagree).
//!
//! - API usage comes from [`Store::api_totals`] (rollup + exact edges).
//! - Resource usage is computed here from the samples' cumulative since-boot
//!   counters: consecutive samples of one VM boot give exact CPU ticks and
//!   network bytes even when a sample in between was lost; an interval that
//!   crosses the period's edge is split in proportion to time (usage is
//!   assumed even within one sampling interval, 5 minutes under cron); a
//!   `reboot` sample contributes its since-boot counters over its uptime.
//!   Average CPU % is summed busy ticks over summed total ticks (a ratio of
//!   sums, not an average of percentages); average memory % is weighted by
//!   time; coverage is the share of the period (times the number of VMs)
//!   covered by sample intervals.
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
pub mod standing;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::output::fixed;
use crate::store::report::{ApiAgg, Sample, Scope};
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
    /// VMs with samples.
    pub vms: u64,
    /// Samples in the period.
    pub samples: u64,
    /// Busy ticks / total ticks x 100.
    pub avg_cpu_percent: Option<f64>,
    /// Time-weighted memory %.
    pub avg_memory_percent: Option<f64>,
    /// Largest disk use seen, bytes.
    pub max_disk_bytes: Option<i64>,
    /// Bytes received.
    pub net_in_bytes: f64,
    /// Bytes sent.
    pub net_out_bytes: f64,
    /// Share of the period covered by samples, 0..=1.
    pub coverage: Option<f64>,
    /// Summed busy ticks (for combining).
    #[serde(skip)]
    pub busy_ticks: f64,
    /// Summed total ticks (for combining).
    #[serde(skip)]
    pub total_ticks: f64,
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
    let as_of = q.as_of_text();
    let scope = q.scope(&as_of, q.period.start_ns(), q.period.end_ns());
    let api = store.api_totals(&scope)?;
    let samples = store.resource_samples(&scope)?;
    let activity = store.activity_totals(&scope)?;

    let mut ids: Vec<String> = api.keys().map(|k| k.customer_id.clone()).collect();
    ids.extend(
        samples
            .iter()
            .filter(|s| s.ts_ns >= scope.start_ns && s.ts_ns < scope.end_ns)
            .map(|s| s.customer_id.clone()),
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
        let own: Vec<Sample> = samples
            .iter()
            .filter(|s| s.customer_id == id)
            .cloned()
            .collect();
        let resource = resource_usage(&own, scope.start_ns, scope.end_ns);
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

/// Resource usage in `[start_ns, end_ns)` from `samples` (sorted by VM then
/// time, including the neighbours just outside the range).
pub fn resource_usage(samples: &[Sample], start_ns: i64, end_ns: i64) -> ResourceUsage {
    let mut r = ResourceUsage::default();
    let (mut mem_w, mut mem_t) = (0.0f64, 0.0f64);
    let mut covered = 0.0f64;
    let mut vms: Vec<&str> = Vec::new();
    let mut prev: Option<&Sample> = None;
    let mut unweighted_mem: Vec<f64> = Vec::new();
    for c in samples {
        if prev.is_some_and(|p| p.vm_id != c.vm_id) {
            prev = None;
        }
        let inside = c.ts_ns >= start_ns && c.ts_ns < end_ns;
        if inside {
            r.samples += 1;
            if vms.last() != Some(&c.vm_id.as_str()) && !vms.contains(&c.vm_id.as_str()) {
                vms.push(&c.vm_id);
            }
            if let Some(d) = c.disk_used_bytes {
                r.max_disk_bytes = Some(r.max_disk_bytes.map_or(d, |m| m.max(d)));
            }
            if let Some(m) = c.memory_percent {
                unweighted_mem.push(m);
            }
        }
        // The interval this sample closes, and its counter deltas.
        let interval: Option<(i64, [Option<i64>; 4])> = match prev {
            Some(p) if p.boot_id == c.boot_id && c.ts_ns > p.ts_ns => {
                let d = |a: Option<i64>, b: Option<i64>| match (a, b) {
                    // A counter that went backwards within one boot should
                    // not happen (the sampler corrects resets); count the
                    // new value like a reset rather than a negative delta.
                    (Some(a), Some(b)) => Some(if b >= a { b - a } else { b }),
                    _ => None,
                };
                Some((
                    p.ts_ns,
                    [
                        d(p.cpu_busy_cum, c.cpu_busy_cum),
                        d(p.cpu_total_cum, c.cpu_total_cum),
                        d(p.net_in_cum, c.net_in_cum),
                        d(p.net_out_cum, c.net_out_cum),
                    ],
                ))
            }
            _ if c.status == "reboot" => c.interval_seconds.filter(|s| *s > 0.0).map(|s| {
                (
                    c.ts_ns - (s * 1e9) as i64,
                    [c.cpu_busy_cum, c.cpu_total_cum, c.net_in_cum, c.net_out_cum],
                )
            }),
            _ => None,
        };
        if let Some((a, d)) = interval {
            let b = c.ts_ns;
            let overlap = (b.min(end_ns) - a.max(start_ns)).max(0);
            if overlap > 0 && b > a {
                let f = overlap as f64 / (b - a) as f64;
                if let (Some(busy), Some(total)) = (d[0], d[1]) {
                    r.busy_ticks += busy as f64 * f;
                    r.total_ticks += total as f64 * f;
                }
                if let Some(x) = d[2] {
                    r.net_in_bytes += x as f64 * f;
                }
                if let Some(x) = d[3] {
                    r.net_out_bytes += x as f64 * f;
                }
                let secs = overlap as f64 / 1e9;
                covered += secs;
                if let Some(m) = c.memory_percent {
                    mem_w += m * secs;
                    mem_t += secs;
                }
                if !vms.contains(&c.vm_id.as_str()) {
                    vms.push(&c.vm_id);
                }
            }
        }
        prev = Some(c);
    }
    r.vms = vms.len() as u64;
    if r.total_ticks > 0.0 {
        r.avg_cpu_percent = Some(r.busy_ticks / r.total_ticks * 100.0);
    }
    r.avg_memory_percent = if mem_t > 0.0 {
        Some(mem_w / mem_t)
    } else if !unweighted_mem.is_empty() {
        Some(unweighted_mem.iter().sum::<f64>() / unweighted_mem.len() as f64)
    } else {
        None
    };
    if r.vms > 0 && end_ns > start_ns {
        r.coverage = Some((covered / ((end_ns - start_ns) as f64 / 1e9 * r.vms as f64)).min(1.0));
    }
    r
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
    // Resource samples are fetched once for the whole range and split here.
    let all_samples = if need_resource {
        store.resource_samples(&q.scope(&as_of, q.period.start_ns(), q.period.end_ns()))?
    } else {
        Vec::new()
    };
    for b in q.period.buckets(by)? {
        let sub = Query {
            period: b.clone(),
            ..q.clone()
        };
        let s = summary_parts(store, &sub, &as_of, &all_samples, need_resource)?;
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

/// The per-customer parts of a summary for one bucket, reusing samples.
fn summary_parts(
    store: &Store,
    q: &Query,
    as_of: &Option<String>,
    samples: &[Sample],
    with_resource: bool,
) -> Result<Vec<CustomerSummary>> {
    let scope = q.scope(as_of, q.period.start_ns(), q.period.end_ns());
    let api = store.api_totals(&scope)?;
    let activity = store.activity_totals(&scope)?;
    let mut ids: Vec<String> = api.keys().map(|k| k.customer_id.clone()).collect();
    if with_resource {
        ids.extend(
            samples
                .iter()
                .filter(|s| s.ts_ns >= scope.start_ns && s.ts_ns < scope.end_ns)
                .map(|s| s.customer_id.clone()),
        );
    }
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
        let resource = if with_resource {
            let own: Vec<Sample> = samples
                .iter()
                .filter(|s| s.customer_id == id)
                .cloned()
                .collect();
            resource_usage(&own, scope.start_ns, scope.end_ns)
        } else {
            ResourceUsage::default()
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn s(
        vm: &str,
        boot: &str,
        ts_s: i64,
        status: &str,
        iv: Option<f64>,
        busy: i64,
        total: i64,
        net_in: i64,
    ) -> Sample {
        Sample {
            customer_id: "c".into(),
            vm_id: vm.into(),
            boot_id: boot.into(),
            ts_ns: ts_s * 1_000_000_000,
            status: status.into(),
            interval_seconds: iv,
            memory_percent: Some(50.0),
            disk_used_bytes: Some(1000),
            cpu_busy_cum: Some(busy),
            cpu_total_cum: Some(total),
            net_in_cum: Some(net_in),
            net_out_cum: Some(0),
        }
    }

    #[test]
    fn a_lost_sample_loses_no_usage_and_edges_split_by_time() {
        // Samples every 300 s; the one at 600 is lost. Period [0, 1200).
        let v = vec![
            s("a", "b1", -300, "ok", Some(300.0), 0, 0, 0),
            s("a", "b1", 300, "ok", Some(300.0), 100, 600, 6_000),
            s("a", "b1", 900, "ok", Some(300.0), 400, 1800, 18_000),
            s("a", "b1", 1500, "ok", Some(300.0), 500, 2400, 24_000),
        ];
        let r = resource_usage(&v, 0, 1_200_000_000_000);
        // [-300,300] crosses 0: half of 6,000 bytes; [300,900] whole 12,000;
        // [900,1500] crosses 1200: half of 6,000.
        assert_eq!(r.net_in_bytes, 3_000.0 + 12_000.0 + 3_000.0);
        // busy 50 + 300 + 50 = 400 of total 300 + 1200 + 300 = 1800.
        assert_eq!(r.busy_ticks, 400.0);
        assert_eq!(r.total_ticks, 1800.0);
        assert_eq!(r.coverage, Some(1.0));
        assert_eq!(r.samples, 2);
    }

    #[test]
    fn reboot_counts_since_boot_and_no_pair_across_boots() {
        let v = vec![
            s("a", "b1", 100, "ok", Some(300.0), 10, 100, 1_000),
            // Rebooted; up 200 s at ts 1000: [800, 1000] carries 500 bytes.
            s("a", "b2", 1000, "reboot", Some(200.0), 5, 50, 500),
        ];
        let r = resource_usage(&v, 0, 2_000_000_000_000);
        assert_eq!(r.net_in_bytes, 500.0);
        assert_eq!(r.coverage, Some(0.1));
    }
}
