//! The operator's fleet view: one row per customer (tier, status, usage
//! against the allowance, resources) with a total row, as the page's
//! table and `/api/v1/customers`. VM freshness comes from
//! [`crate::report::fleet`], shared with `mb-report vms`.
//!
//! Every figure is the report library's: a customer row is its
//! [`CustomerSummary`] (the numbers of `mb-report --json`), plus tier and
//! status from the registry. The total row adds what adds up (requests,
//! tokens, cost, network, disk of every customer) and combines CPU as the
//! ratio of summed ticks; memory has no meaningful fleet total and is
//! left out (null) rather than averaged over unlike VMs.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::money::format_nanos;
use crate::report::{CustomerSummary, Period, Summary};
use crate::store::Store;
use crate::time;

/// One customer's line of the fleet view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerRow {
    /// Customer id (`null` in the total row).
    pub customer_id: Option<String>,
    /// Whether the customer is in the registry.
    pub registered: bool,
    /// Tier at the end of the period (or now, for the current one).
    pub tier: Option<String>,
    /// Status at the same instant.
    pub status: Option<String>,
    /// API requests.
    pub requests: i64,
    /// Billable tokens (in + out + cache read + cache write).
    pub tokens: i64,
    /// Tokens included per month (per customer; the total row: all
    /// registered customers' allowances).
    pub included_tokens: u64,
    /// API cost, exact decimal USD.
    pub cost_usd: String,
    /// Requests without a price.
    pub unpriced_requests: i64,
    /// Average CPU %, busy over total ticks (null without samples).
    pub avg_cpu_percent: Option<f64>,
    /// Time-weighted memory % (null without samples, and in the total).
    pub avg_memory_percent: Option<f64>,
    /// Largest disk use seen, bytes (total row: the sum of the customers').
    pub max_disk_bytes: Option<i64>,
    /// Bytes received (null without samples).
    pub net_in_bytes: Option<i64>,
    /// Bytes sent (null without samples).
    pub net_out_bytes: Option<i64>,
    /// VMs with samples.
    pub vms: u64,
    /// Samples in the period.
    pub samples: u64,
}

/// `/api/v1/customers`.
#[derive(Debug, Clone, Serialize)]
pub struct Customers {
    /// The period.
    pub period: Period,
    /// When it was computed.
    #[serde(serialize_with = "ser_t")]
    pub generated_at: DateTime<Utc>,
    /// The instant tier and status are read at.
    #[serde(serialize_with = "ser_t")]
    pub registry_at: DateTime<Utc>,
    /// Per customer, sorted.
    pub customers: Vec<CustomerRow>,
    /// The sums.
    pub total: CustomerRow,
}

fn ser_t<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&time::format_rfc3339(t))
}

fn row(c: &CustomerSummary, included: u64) -> CustomerRow {
    let r = &c.resource;
    let sampled = r.samples > 0 || r.vms > 0;
    CustomerRow {
        customer_id: Some(c.customer_id.clone()),
        registered: c.registered,
        tier: None,
        status: None,
        requests: c.api_total.requests,
        tokens: c.api_total.total_tokens(),
        included_tokens: if c.registered { included } else { 0 },
        cost_usd: format_nanos(c.api_total.cost_nusd),
        unpriced_requests: c.api_total.unpriced_requests,
        avg_cpu_percent: r.avg_cpu_percent,
        avg_memory_percent: r.avg_memory_percent,
        max_disk_bytes: r.max_disk_bytes,
        net_in_bytes: sampled.then(|| r.net_in_bytes.round() as i64),
        net_out_bytes: sampled.then(|| r.net_out_bytes.round() as i64),
        vms: r.vms,
        samples: r.samples,
    }
}

/// The fleet view of `summary` (every customer with usage) plus every
/// registered customer without usage; scoped to `only` when given.
pub fn customers(
    store: &Store,
    cfg: &Config,
    summary: &Summary,
    only: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Customers> {
    let p = &summary.period;
    let at = now.min(p.end - Duration::nanoseconds(1));
    let registry = store.customers(at)?;
    let included = cfg.billing.included_tokens;
    let mut rows: Vec<CustomerRow> = summary
        .customers
        .iter()
        .filter(|c| only.is_none_or(|o| o == c.customer_id))
        .map(|c| row(c, included))
        .collect();
    for reg in &registry {
        if only.is_some_and(|o| o != reg.customer_id) {
            continue;
        }
        let found = rows
            .iter_mut()
            .find(|r| r.customer_id.as_deref() == Some(&reg.customer_id));
        let r = match found {
            Some(r) => r,
            None => {
                rows.push(CustomerRow {
                    customer_id: Some(reg.customer_id.clone()),
                    registered: true,
                    tier: None,
                    status: None,
                    requests: 0,
                    tokens: 0,
                    included_tokens: included,
                    cost_usd: "0".into(),
                    unpriced_requests: 0,
                    avg_cpu_percent: None,
                    avg_memory_percent: None,
                    max_disk_bytes: None,
                    net_in_bytes: None,
                    net_out_bytes: None,
                    vms: 0,
                    samples: 0,
                });
                rows.last_mut().expect("just pushed")
            }
        };
        r.tier.clone_from(&reg.tier);
        r.status.clone_from(&reg.status);
    }
    rows.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));

    let (mut busy, mut ticks) = (0.0f64, 0.0f64);
    let mut cost = 0i64;
    for c in summary
        .customers
        .iter()
        .filter(|c| only.is_none_or(|o| o == c.customer_id))
    {
        busy += c.resource.busy_ticks;
        ticks += c.resource.total_ticks;
        cost += c.api_total.cost_nusd;
    }
    let sum_opt = |f: fn(&CustomerRow) -> Option<i64>| {
        rows.iter()
            .filter_map(f)
            .fold(None, |a: Option<i64>, v| Some(a.unwrap_or(0) + v))
    };
    let total = CustomerRow {
        customer_id: None,
        registered: false,
        tier: None,
        status: None,
        requests: rows.iter().map(|r| r.requests).sum(),
        tokens: rows.iter().map(|r| r.tokens).sum(),
        included_tokens: rows.iter().map(|r| r.included_tokens).sum(),
        cost_usd: format_nanos(cost),
        unpriced_requests: rows.iter().map(|r| r.unpriced_requests).sum(),
        avg_cpu_percent: (ticks > 0.0).then(|| busy / ticks * 100.0),
        avg_memory_percent: None,
        max_disk_bytes: sum_opt(|r| r.max_disk_bytes),
        net_in_bytes: sum_opt(|r| r.net_in_bytes),
        net_out_bytes: sum_opt(|r| r.net_out_bytes),
        vms: rows.iter().map(|r| r.vms).sum(),
        samples: rows.iter().map(|r| r.samples).sum(),
    };
    Ok(Customers {
        period: p.clone(),
        generated_at: time::whole_seconds(now),
        registry_at: at,
        customers: rows,
        total,
    })
}
