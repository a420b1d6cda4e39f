//! The daily cost and CPU "at a glance" of each customer, which the text
//! summary draws as sparklines on terminals: one value per local day of the
//! period, 0 for a day without data.

use super::{series, Query, Summary, Unit};
use crate::error::Result;
use crate::store::Store;

/// Daily values of one customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Glance {
    /// Customer.
    pub customer_id: String,
    /// API cost per day, USD.
    pub cost_usd: Vec<f64>,
    /// Average CPU % per day.
    pub cpu_percent: Vec<f64>,
}

/// The glance of every customer in `s` (queried like `q`).
pub fn daily(store: &Store, q: &Query, s: &Summary) -> Result<Vec<Glance>> {
    let days = s.period.buckets(Unit::Day)?;
    let mut out = Vec::with_capacity(s.customers.len());
    for c in &s.customers {
        let cq = Query {
            customer: Some(c.customer_id.clone()),
            ..q.clone()
        };
        let rows = series(
            store,
            &cq,
            Unit::Day,
            &["cost_usd".into(), "cpu_percent".into()],
        )?;
        let pick = |metric: &str| -> Vec<f64> {
            days.iter()
                .map(|d| {
                    rows.iter()
                        .find(|r| r.bucket_start == d.start && r.metric == metric)
                        .and_then(|r| r.value.parse().ok())
                        .unwrap_or(0.0)
                })
                .collect()
        };
        out.push(Glance {
            customer_id: c.customer_id.clone(),
            cost_usd: pick("cost_usd"),
            cpu_percent: pick("cpu_percent"),
        });
    }
    Ok(out)
}
