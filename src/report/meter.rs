//! Stripe meter events (Stripe prices the tokens): billable tokens per
//! customer and local day of a month, one event per customer-day with
//! usage, for customers that have a Stripe customer id, kept inside the
//! limits of `POST /v1/billing/meter_events`
//! (<https://docs.stripe.com/api/billing/meter-event/create>):
//!
//! - `identifier` at most 100 characters: `mb-<day>-<customer>-<8 hex of
//!   sha256(event name)>` is at most 3 + 10 + 1 + 64 + 1 + 8 = 87 (the old
//!   `mb-CUSTOMER-DAY-EVENT` reached 119), leaving room for the uploader's
//!   correction suffix (`.r2`, ...);
//! - `timestamp` "within the past 35 calendar days or up to 5 minutes in the
//!   future": a day is sent as its last second, so a day that has not ended
//!   at `now` is left out (its event would be in the future), and so is a
//!   day whose last second is older than 35 days minus [`PAST_MARGIN`]
//!   (Stripe would refuse it, or would by the time it is uploaded). The days
//!   left out are listed in [`Meter::refused`] with the reason, never
//!   silently dropped.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Period, Query, Unit};
use crate::error::Result;
use crate::store::Store;
use crate::time;

/// Stripe's limit on `identifier` and `event_name`.
pub const MAX_IDENTIFIER: usize = 100;
/// Stripe accepts meter-event timestamps within the past 35 days.
pub const MAX_PAST_DAYS: i64 = 35;
/// Margin kept inside the 35-day edge for the time between generating the
/// events and uploading them.
pub const PAST_MARGIN: Duration = Duration::hours(1);

/// The identifier of `customer`'s event of `day`: at most 87 characters for
/// a customer id of at most 64, whatever the event name's length.
pub fn identifier(day: NaiveDate, customer: &str, event_name: &str) -> String {
    let h = Sha256::digest(event_name.as_bytes());
    let hex: String = h.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("mb-{day}-{customer}-{hex}")
}

/// One meter event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeterEvent {
    /// Deterministic identifier (see [`identifier`]).
    pub identifier: String,
    /// Unix seconds: the last second of the day (inside it).
    pub timestamp: i64,
    /// The meter's event name.
    pub event_name: String,
    /// Stripe customer id.
    pub stripe_customer_id: String,
    /// Billable tokens of the day.
    pub value: i64,
    /// mb's customer.
    pub customer_id: String,
    /// The local day.
    pub day: NaiveDate,
}

/// The meter events of a month.
#[derive(Debug, Clone, PartialEq)]
pub struct Meter {
    /// Events, by day then customer.
    pub events: Vec<MeterEvent>,
    /// Customers with usage but no Stripe customer id (left out), in order seen.
    pub missing: Vec<String>,
    /// Days with usage left out because Stripe would refuse their
    /// timestamp, with the reason.
    pub refused: Vec<(NaiveDate, String)>,
}

/// The meter events of `period` for `event_name`, with the registry as at
/// `at` and the filters of `q` (its period is replaced by each day); `now`
/// (the wall clock) decides Stripe's timestamp window.
pub fn meter(
    store: &Store,
    q: &Query,
    period: &Period,
    event_name: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Meter> {
    let customers = store.customers(at)?;
    let oldest = now - Duration::days(MAX_PAST_DAYS) + PAST_MARGIN;
    let mut m = Meter {
        events: Vec::new(),
        missing: Vec::new(),
        refused: Vec::new(),
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
        per.retain(|_, t| *t != 0);
        if per.is_empty() {
            continue;
        }
        let date = day.start.with_timezone(&period.tz).date_naive();
        // The last second of the day (inside it): Stripe takes Unix seconds,
        // e.g. 2026-11-02 -> 1793663999 (2026-11-02T23:59:59Z).
        let last = day.end - Duration::seconds(1);
        if day.end > now {
            m.refused.push((
                date,
                format!(
                    "has not ended yet: its event would be dated {}, in the future, and Stripe \
                     accepts at most 5 minutes ahead; upload it after the day",
                    time::format_rfc3339(&last)
                ),
            ));
            continue;
        }
        if last < oldest {
            m.refused.push((
                date,
                format!(
                    "is older than Stripe's {MAX_PAST_DAYS}-day window for meter events (its event \
                     would be dated {}); bill it as an invoice item instead",
                    time::format_rfc3339(&last)
                ),
            ));
            continue;
        }
        for (c, tokens) in per {
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
            m.events.push(MeterEvent {
                identifier: identifier(date, c, event_name),
                timestamp: last.timestamp(),
                event_name: event_name.to_string(),
                stripe_customer_id: stripe,
                value: tokens,
                customer_id: c.to_string(),
                day: date,
            });
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_fit_stripe_with_room_for_corrections() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        let id = identifier(day, &"c".repeat(64), &"e".repeat(100));
        assert_eq!(id.len(), 87);
        assert!(id.len() + ".r999".len() <= MAX_IDENTIFIER);
        let a = identifier(day, "acme", "llm_tokens");
        assert!(a.starts_with("mb-2026-11-02-acme-") && a.len() == 27, "{a}");
        assert_ne!(
            identifier(day, "acme", "llm_tokens"),
            identifier(day, "acme", "other")
        );
    }
}
