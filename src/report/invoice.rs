//! The monthly invoice lines (DESIGN.md section 7): a prorated base fee per
//! tier segment and the LLM overage above the included tokens.
//!
//! Money rules:
//! - base fee = plan price x billed days / days in the month, where a day is
//!   billed when the customer is `active` at its local 00:00 (so a change
//!   dated at 00:00, what `mb-customer --effective DATE` records, applies to
//!   that whole day); one line per contiguous run of days on one tier;
//! - overage = API cost (USD) x (T - I) / T x (1 + markup) x USD->EUR rate,
//!   for T billable tokens strictly above the included I: pro-rata, so it does
//!   not depend on event order or on which events came late;
//! - each line is computed as an exact fraction of integers and rounded once,
//!   half away from zero (half-up for these positive amounts), to minor units
//!   of the invoice currency (2 decimals for EUR, none for JPY: see
//!   [`money::minor_exponent`]); `amount_unrounded` shows the exact value in
//!   minor units to 6 decimals.
//!
//! Each base line carries its own service period (the days of its tier
//! segment, end exclusive): Stripe prints `period` on the invoice and uses it
//! for revenue recognition. The description is what the customer reads on the
//! invoice, so it holds no internal arithmetic (markup, FX source); those are
//! the separate audit fields `cost_usd`, `markup`, `fx_rate`, `fx_source`,
//! `fx_date`. A rate dated more than [`FX_MAX_DAYS_AWAY`] days from the
//! period, or undated, is used but warned about.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::period::{midnight, Period};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::money;
use crate::output::thousands;
use crate::store::report::{ApiAgg, ChangeRow, Scope};
use crate::store::Store;
use crate::time;

/// A rate dated further than this from the billed month is suspect.
pub const FX_MAX_DAYS_AWAY: i64 = 7;

/// The USD -> invoice currency rate and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FxRate {
    /// Units of invoice currency per USD.
    #[serde(serialize_with = "ser_dec")]
    pub rate: Decimal,
    /// Where the rate came from.
    pub source: String,
    /// The rate's date.
    pub date: String,
}

/// An integer CSV field as a JSON integer, null when empty (the text kept
/// were it ever not an integer, rather than lost).
fn ser_int_or_null<S: serde::Serializer>(v: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        match v.parse::<i64>() {
            Ok(n) => s.serialize_i64(n),
            Err(_) => s.serialize_str(v),
        }
    }
}

/// An exact decimal or text CSV field as a JSON string, null when empty.
fn ser_text_or_null<S: serde::Serializer>(v: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(v)
    }
}

fn ser_dec<S: serde::Serializer>(d: &Decimal, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&d.normalize().to_string())
}

/// Options of an invoice run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The month.
    pub period: Period,
    /// The rate, if one was given.
    pub fx: Option<FxRate>,
    /// Skip unregistered customers (with a warning) instead of failing.
    pub allow_unregistered: bool,
    /// Bill priced usage only (with a warning) instead of failing on unpriced usage.
    pub allow_unpriced: bool,
    /// Invoice usage whose VM the registry lists for another customer
    /// (see report::provenance), instead of leaving it out.
    pub allow_vm_mismatch: bool,
    /// Only this customer.
    pub customer: Option<String>,
    /// Ingest cutoff.
    pub as_of: Option<DateTime<Utc>>,
}

/// One invoice line; the CSV columns, in order. The fields hold the CSV
/// text; serialized (JSON: mb-report invoice --json and the dashboard) they
/// are typed: integers as numbers, what a line does not have as null.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// Customer.
    pub customer_id: String,
    /// Stripe customer id ('' when unknown).
    #[serde(serialize_with = "ser_text_or_null")]
    pub stripe_customer_id: String,
    /// Period start, RFC 3339.
    pub period_start: String,
    /// Period end (exclusive), RFC 3339.
    pub period_end: String,
    /// `base` or `llm_overage`.
    pub line: String,
    /// What the line is, with its arithmetic.
    pub description: String,
    /// Days (base) or tokens above the allowance (overage).
    #[serde(serialize_with = "ser_int_or_null")]
    pub quantity: String,
    /// `day` or `token`.
    pub unit: String,
    /// ISO currency.
    pub currency: String,
    /// Rounded amount, minor units.
    pub amount_minor: i64,
    /// Exact amount in minor units, 6 decimals.
    pub amount_unrounded: String,
    /// Billable tokens of the month (overage).
    #[serde(serialize_with = "ser_int_or_null")]
    pub tokens: String,
    /// API cost of the month in USD, exact (overage).
    #[serde(serialize_with = "ser_text_or_null")]
    pub cost_usd: String,
    /// Markup as a fraction (overage).
    #[serde(serialize_with = "ser_text_or_null")]
    pub markup: String,
    /// USD -> currency rate (overage).
    #[serde(serialize_with = "ser_text_or_null")]
    pub fx_rate: String,
    /// Deterministic key for the upload's Idempotency-Key.
    pub idempotency_key: String,
    /// Where the rate came from (overage; audit only, not on the invoice).
    pub fx_source: String,
    /// The rate's date (overage; audit only).
    pub fx_date: String,
}

/// The invoice of a month.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    /// The month.
    pub period: Period,
    /// Lines, sorted by customer then line order.
    pub lines: Vec<Line>,
    /// Per customer: billable tokens and cost (for previews).
    pub usage: BTreeMap<String, ApiAgg>,
    /// The rate used, if any line needed one.
    pub fx: Option<FxRate>,
    /// Warnings to print (skipped customers, unpriced usage allowed).
    pub warnings: Vec<String>,
    /// When it was made.
    pub generated_at: DateTime<Utc>,
}

/// A non-negative exact fraction `num / den` rounded half-up to an integer,
/// and shown to 6 decimals.
fn round_fraction(num: i128, den: i128) -> (i64, String) {
    let q = num / den;
    let r = num % den;
    let rounded = if 2 * r >= den { q + 1 } else { q };
    // 6 decimals, themselves rounded half-up at the 7th.
    let scaled = num * 1_000_000;
    let mut micro = scaled / den;
    if 2 * (scaled % den) >= den {
        micro += 1;
    }
    let shown = format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000);
    (rounded as i64, shown)
}

/// `d` as an exact fraction `(mantissa, 10^scale)`.
fn frac(d: Decimal) -> (i128, i128) {
    (d.mantissa(), 10i128.pow(d.scale()))
}

/// Compute the invoice.
pub fn invoice(store: &Store, cfg: &Config, o: &Options) -> Result<Invoice> {
    let period = &o.period;
    let as_of = o.as_of.map(|t| time::format_fixed_micros(&t));
    let scope = Scope {
        start_ns: period.start_ns(),
        end_ns: period.end_ns(),
        customer: o.customer.as_deref(),
        vm: None,
        as_of: as_of.as_deref(),
    };
    let at = o.as_of.unwrap_or_else(time::now);
    let registered: Vec<_> = store
        .customers(at)?
        .into_iter()
        .filter(|c| o.customer.as_deref().is_none_or(|x| x == c.customer_id))
        .collect();
    let mut api = store.api_totals(&scope)?;
    let provenance =
        super::provenance::screen(store, &scope, &mut api, o.allow_vm_mismatch, &period.label)?;
    let mut usage: BTreeMap<String, ApiAgg> = BTreeMap::new();
    let mut unpriced: Vec<String> = Vec::new();
    for (k, v) in &api {
        usage.entry(k.customer_id.clone()).or_default().add(v, 1);
        if v.unpriced_requests > 0 {
            unpriced.push(format!(
                "{} {}/{} ({} requests)",
                k.customer_id, k.provider, k.model, v.unpriced_requests
            ));
        }
    }
    let mut warnings: Vec<String> = provenance.into_iter().collect();
    // Usage of customers that are not registered cannot be billed.
    let with_usage = match &o.customer {
        Some(c) => vec![c.clone()],
        None => store.customers_with_usage(&scope)?,
    };
    let unregistered: Vec<String> = with_usage
        .into_iter()
        .filter(|c| !registered.iter().any(|r| &r.customer_id == c))
        .filter(|c| o.customer.is_none() || usage.contains_key(c))
        .collect();
    if !unregistered.is_empty() {
        let msg = format!(
            "usage of unregistered customers in {}: {} (register them with mb-customer add)",
            period.label,
            unregistered.join(", ")
        );
        if o.allow_unregistered {
            warnings.push(format!("{msg}; not invoiced (--allow-unregistered)"));
        } else {
            return Err(Error::Invalid(format!(
                "{msg}; or pass --allow-unregistered to invoice the others"
            )));
        }
    }
    if !unpriced.is_empty() {
        let msg = format!(
            "unpriced API usage in {}: {}",
            period.label,
            unpriced.join("; ")
        );
        if o.allow_unpriced {
            warnings.push(format!(
                "{msg}; its tokens count toward the allowance but it adds no cost (--allow-unpriced)"
            ));
        } else {
            return Err(Error::Invalid(format!(
                "{msg}; add the models to a price table and price what is stored with \
                 `mb-tokens reprice --db DB --prices FILE`, or pass --allow-unpriced"
            )));
        }
    }

    let changes = store.all_changes()?;
    let days = period.days();
    let ndays = days.len() as i128;
    let currency = cfg.billing.currency.clone();
    let exp = money::minor_exponent(&currency).map_err(Error::Invalid)?;
    let pstart = time::format_rfc3339(&period.start);
    let pend = time::format_rfc3339(&period.end);
    let included = i128::from(cfg.billing.included_tokens);
    let mut lines = Vec::new();
    let mut fx_used = None;
    for c in &registered {
        let id = &c.customer_id;
        let stripe = c.stripe_customer_id.clone().unwrap_or_default();
        let mine: Vec<&ChangeRow> = changes.iter().filter(|h| &h.customer_id == id).collect();
        // Billed tier of each day (None = not billed).
        let mut day_tiers: Vec<Option<String>> = Vec::with_capacity(days.len());
        for d in &days {
            let t0 = time::to_unix_nanos(&midnight(*d, period.tz)?).unwrap_or(i64::MIN);
            let state = |field: &str| {
                mine.iter()
                    .filter(|h| h.field == field && h.effective_ns <= t0)
                    .max_by_key(|h| (h.effective_ns, h.change_id))
                    .map(|h| h.value.clone())
            };
            let tier = state("tier");
            let billed = state("status").as_deref() == Some("active");
            day_tiers.push(if billed { tier } else { None });
        }
        let mut i = 0;
        while i < days.len() {
            let Some(tier) = day_tiers[i].clone() else {
                i += 1;
                continue;
            };
            let mut j = i;
            while j + 1 < days.len() && day_tiers[j + 1].as_deref() == Some(tier.as_str()) {
                j += 1;
            }
            let n = (j - i + 1) as i128;
            let price = *cfg.plans.get(&tier).ok_or_else(|| {
                Error::Invalid(format!(
                    "customer {id}: tier {tier:?} is not among the configured plans ({})",
                    cfg.plans.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            let (amount, shown) = round_fraction(i128::from(price) * n, ndays);
            let (first, last) = (days[i], days[j]);
            // The segment's own period: 00:00 of its first day to 00:00 of
            // the day after its last (the month's end for the last segment).
            let seg_end = match last.succ_opt() {
                Some(d) if j + 1 < days.len() => midnight(d, period.tz)?,
                _ => period.end,
            };
            lines.push(Line {
                customer_id: id.clone(),
                stripe_customer_id: stripe.clone(),
                period_start: time::format_rfc3339(&midnight(first, period.tz)?.max(period.start)),
                period_end: time::format_rfc3339(&seg_end),
                line: "base".into(),
                description: format!(
                    "{tier} plan {} {currency}/month, {first} to {last}: {n} of {ndays} days",
                    money::format_minor_exp(price, exp)
                ),
                quantity: n.to_string(),
                unit: "day".into(),
                currency: currency.clone(),
                amount_minor: amount,
                amount_unrounded: shown,
                tokens: String::new(),
                cost_usd: String::new(),
                markup: String::new(),
                fx_rate: String::new(),
                idempotency_key: format!("mb-{}-{id}-base-{tier}-{first}", period.label),
                fx_source: String::new(),
                fx_date: String::new(),
            });
            i = j + 1;
        }
        // LLM overage.
        let u = usage.get(id).copied().unwrap_or_default();
        let t = i128::from(u.total_tokens());
        if t > included && u.cost_nusd > 0 {
            let fx = o.fx.clone().ok_or_else(|| {
                Error::Invalid(format!(
                    "customer {id} has LLM usage above the allowance in {} and no USD->{currency} rate: \
                     pass --usd-eur RATE or set billing.usd_eur in mb.toml",
                    period.label
                ))
            })?;
            let (m_num, m_den) = frac(Decimal::from(100) + cfg.billing.markup_percent);
            let (r_num, r_den) = frac(fx.rate);
            // minor = nusd / 1e9 x (t-i)/t x m_num/(m_den x 100) x r_num/r_den x 10^exp
            let num = i128::from(u.cost_nusd)
                .checked_mul(t - included)
                .and_then(|x| x.checked_mul(m_num))
                .and_then(|x| x.checked_mul(r_num))
                .and_then(|x| x.checked_mul(10i128.pow(exp)));
            let den = 1_000_000_000i128
                .checked_mul(t)
                .and_then(|x| x.checked_mul(m_den))
                .and_then(|x| x.checked_mul(r_den))
                .and_then(|x| x.checked_mul(100));
            let (Some(num), Some(den)) = (num, den) else {
                return Err(Error::Invalid(format!(
                    "customer {id}: overage amount too large to compute exactly"
                )));
            };
            let (amount, shown) = round_fraction(num, den);
            let markup = cfg.billing.markup_percent / Decimal::from(100);
            lines.push(Line {
                customer_id: id.clone(),
                stripe_customer_id: stripe.clone(),
                period_start: pstart.clone(),
                period_end: pend.clone(),
                line: "llm_overage".into(),
                // What the customer reads; the arithmetic is in the audit fields.
                description: format!(
                    "LLM usage above {} included tokens: {} of {} tokens billed pro rata",
                    thousands(included),
                    thousands(t - included),
                    thousands(t),
                ),
                quantity: (t - included).to_string(),
                unit: "token".into(),
                currency: currency.clone(),
                amount_minor: amount,
                amount_unrounded: shown,
                tokens: t.to_string(),
                cost_usd: money::format_nanos(u.cost_nusd),
                markup: markup.normalize().to_string(),
                fx_rate: fx.rate.normalize().to_string(),
                idempotency_key: format!("mb-{}-{id}-llm_overage", period.label),
                fx_source: fx.source.clone(),
                fx_date: fx.date.clone(),
            });
            fx_used = Some(fx);
        }
    }
    if let Some(fx) = &fx_used {
        if let Some(w) = fx_date_warning(fx, period) {
            warnings.push(w);
        }
    }
    Ok(Invoice {
        period: period.clone(),
        lines,
        usage,
        fx: fx_used,
        warnings,
        generated_at: o.as_of.unwrap_or_else(|| time::whole_seconds(at)),
    })
}

/// A warning when `fx`'s date is missing or more than [`FX_MAX_DAYS_AWAY`]
/// days from the billed period (a 2024 rate on a 2026 invoice).
pub fn fx_date_warning(fx: &FxRate, period: &Period) -> Option<String> {
    let days = period.days();
    let (first, last) = (*days.first()?, *days.last()?);
    let fix = "check --usd-eur-date or billing.usd_eur_date, or pass a current --usd-eur";
    let Ok(d) = chrono::NaiveDate::parse_from_str(fx.date.trim(), "%Y-%m-%d") else {
        return Some(format!(
            "the USD rate {} ({}) has no date (got {:?}), so nobody can tell whether it fits {}; {fix}",
            fx.rate.normalize(),
            fx.source,
            fx.date,
            period.label
        ));
    };
    let away = if d < first {
        (first - d).num_days()
    } else if d > last {
        (d - last).num_days()
    } else {
        0
    };
    (away > FX_MAX_DAYS_AWAY).then(|| {
        format!(
            "the USD rate {} ({}) is dated {d}, {away} days from {} ({first} to {last}); {fix}",
            fx.rate.normalize(),
            fx.source,
            period.label
        )
    })
}

/// The CSV header of invoice lines.
/// `fx_source` and `fx_date` are appended (audit only): readers by column
/// name, like stripe-upload, keep working.
pub const CSV_HEADER: [&str; 18] = [
    "customer_id",
    "stripe_customer_id",
    "period_start",
    "period_end",
    "line",
    "description",
    "quantity",
    "unit",
    "currency",
    "amount_minor",
    "amount_unrounded",
    "tokens",
    "cost_usd",
    "markup",
    "fx_rate",
    "idempotency_key",
    "fx_source",
    "fx_date",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_up_once() {
        // 49,900 x 14 / 30 = 23,286.666... -> 23,287
        assert_eq!(
            round_fraction(49_900 * 14, 30),
            (23_287, "23286.666667".into())
        );
        // exactly half rounds up
        assert_eq!(round_fraction(5, 2), (3, "2.500000".into()));
        assert_eq!(round_fraction(29_900, 1), (29_900, "29900.000000".into()));
    }
}
