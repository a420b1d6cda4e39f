//! Stripe meter events (Stripe prices the tokens): billable tokens per
//! customer and local day of a month, one event per customer-day with
//! usage, for customers that have a Stripe customer id.

use chrono::{DateTime, Utc};

use super::{Period, Query, Unit};
use crate::error::Result;
use crate::store::Store;

/// One meter event.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterEvent {
    /// Deterministic identifier: `mb-CUSTOMER-DAY-EVENT`.
    pub identifier: String,
    /// Unix seconds: the last second of the day (inside it).
    pub timestamp: i64,
    /// The meter's event name.
    pub event_name: String,
    /// Stripe customer id.
    pub stripe_customer_id: String,
    /// Billable tokens of the day.
    pub value: i64,
}

/// The meter events of a month.
#[derive(Debug, Clone, PartialEq)]
pub struct Meter {
    /// Events, by day then customer.
    pub events: Vec<MeterEvent>,
    /// Customers with usage but no Stripe customer id (left out), in order seen.
    pub missing: Vec<String>,
}

/// The meter events of `period` for `event_name`, with the registry as at
/// `at` and the filters of `q` (its period is replaced by each day).
pub fn meter(
    store: &Store,
    q: &Query,
    period: &Period,
    event_name: &str,
    at: DateTime<Utc>,
) -> Result<Meter> {
    let customers = store.customers(at)?;
    let mut m = Meter {
        events: Vec::new(),
        missing: Vec::new(),
    };
    for day in period.buckets(Unit::Day)? {
        let dq = Query {
            period: day.clone(),
            ..q.clone()
        };
        let as_of = dq.as_of_text();
        let api = store.api_totals(&dq.scope(&as_of, day.start_ns(), day.end_ns()))?;
        let mut per: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for (k, v) in &api {
            *per.entry(k.customer_id.as_str()).or_default() += v.total_tokens();
        }
        for (c, tokens) in per {
            if tokens == 0 {
                continue;
            }
            let stripe = customers
                .iter()
                .find(|x| x.customer_id == c)
                .and_then(|x| x.stripe_customer_id.clone());
            let Some(stripe) = stripe else {
                if !m.missing.iter().any(|x| x == c) {
                    m.missing.push(c.to_string());
                }
                continue;
            };
            // The last second of the day (inside it): Stripe takes Unix seconds,
            // e.g. 2026-11-02 -> 1793663999 (2026-11-02T23:59:59Z).
            let ts = (day.end - chrono::Duration::seconds(1)).timestamp();
            m.events.push(MeterEvent {
                identifier: format!("mb-{c}-{}-{event_name}", day.label),
                timestamp: ts,
                event_name: event_name.to_string(),
                stripe_customer_id: stripe,
                value: tokens,
            });
        }
    }
    Ok(m)
}
