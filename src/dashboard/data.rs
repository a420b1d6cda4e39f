//! What the page and the API show, computed with the report library only.
//!
//! Every figure comes from [`report::summary`], [`report::series`] or
//! [`invoice::invoice`], the functions behind mb-report, so the dashboard
//! and the CLI cannot disagree. The one computation of this module is the
//! month-end projection of the invoice preview, which mb-report has no use
//! for: tokens and API cost are extrapolated linearly from the elapsed part
//! of the month, and the overage of the projected figures follows the
//! invoice rule (DESIGN.md section 7) as an exact fraction rounded once,
//! half-up, to minor units. The projection is an estimate and labelled so.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use std::sync::Arc;

use super::cache::Cache;
use super::HttpError;
use crate::config::Config;
use crate::error::Result;
use crate::report::invoice::{self, FxRate, Line};
use crate::report::period::{self, Period, Unit};
use crate::report::{self, Query, SeriesRow, Summary};
use crate::store::Store;

/// The summary of `period` for `customer` (all when `None`).
pub fn summary(store: &Store, period: &Period, customer: Option<&str>) -> Result<Summary> {
    report::summary(store, &query(period, customer))
}

/// [`summary`] through the cache: computed again only after a commit. The
/// copy served says when it was served.
pub fn summary_cached(
    cache: &Cache,
    store: &Store,
    period: &Period,
    customer: Option<&str>,
) -> Result<Summary> {
    let key = format!("summary\0{period:?}\0{customer:?}");
    let s = cache.get(key, || summary(store, period, customer))?;
    let mut s = Summary::clone(&s);
    s.generated_at = crate::time::whole_seconds(crate::time::now());
    Ok(s)
}

/// [`series`] through the cache.
pub fn series_cached(
    cache: &Cache,
    store: &Store,
    period: &Period,
    customer: Option<&str>,
    by: Unit,
    metrics: &[String],
) -> Result<Arc<Vec<SeriesRow>>> {
    let key = format!("series\0{period:?}\0{customer:?}\0{by:?}\0{metrics:?}");
    cache.get(key, || series(store, period, customer, by, metrics))
}

/// [`previews`] with the invoice through the cache: the invoice (every
/// database read) is computed again only after a commit; the projection,
/// which depends on `now`, is recomputed on each request from it.
pub fn previews_cached(
    cache: &Cache,
    store: &Store,
    cfg: &Config,
    month: &Period,
    customer: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Previews> {
    let key = format!("invoice\0{month:?}\0{customer:?}");
    let inv = cache.get(key, || preview_invoice(store, cfg, month, customer))?;
    let registered = cache.get(format!("registered\0{customer:?}\0{month:?}"), || {
        preview_ids(&inv, customer)
            .into_iter()
            .map(|id| Ok((store.customer_exists(&id)?, id)))
            .collect::<Result<Vec<(bool, String)>>>()
    })?;
    Ok(previews_from(cfg, month, &inv, &registered, now))
}

/// [`crate::report::fleet::fleet`] through the cache when its result
/// depends on the instant only through the ages (no bound, no events):
/// computed after each commit, then aged to `o.until` per request.
pub fn fleet_cached(
    cache: &Cache,
    store: &Store,
    o: &crate::report::fleet::Options,
) -> Result<crate::report::fleet::Fleet> {
    if o.bounded || o.events {
        return crate::report::fleet::fleet(store, o);
    }
    let key = format!(
        "fleet\0{:?}\0{:?}\0{}\0{}",
        o.customer,
        o.stale_after,
        o.runs,
        (o.until - o.since).num_nanoseconds().unwrap_or(i64::MAX)
    );
    let f = cache.get(key, || crate::report::fleet::fleet(store, o))?;
    Ok(f.at(o.until))
}

fn query(period: &Period, customer: Option<&str>) -> Query {
    Query {
        period: period.clone(),
        customer: customer.map(str::to_string),
        vm: None,
        as_of: None,
    }
}

/// 404 for a customer that is neither registered nor has any usage in the
/// summary's period (a typo, or a probe for other customers' ids). The
/// customer a dashboard is scoped to is always known: its page may simply
/// be empty.
pub fn check_known(s: &Summary, customer: Option<&str>, scoped: bool) -> Result<(), HttpError> {
    let Some(id) = customer else { return Ok(()) };
    if scoped {
        return Ok(());
    }
    let known = s.customers.iter().any(|c| {
        c.customer_id == id
            && (c.registered
                || !c.api.is_empty()
                || c.resource.vms > 0
                || c.resource.samples > 0
                || !c.activity.is_empty())
    });
    if known {
        Ok(())
    } else {
        Err(HttpError::not_found(format!(
            "unknown customer {id:?}: not registered and no usage in {}",
            s.period.label
        )))
    }
}

/// The tidy series of `period` split by `by`.
pub fn series(
    store: &Store,
    period: &Period,
    customer: Option<&str>,
    by: Unit,
    metrics: &[String],
) -> Result<Vec<SeriesRow>> {
    report::series(store, &query(period, customer), by, metrics)
}

/// The invoice preview of one customer for one month.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// Customer.
    pub customer_id: String,
    /// Whether the customer is registered (unregistered: nothing is invoiced).
    pub registered: bool,
    /// Invoice currency of the base fee.
    pub currency: String,
    /// Tokens included per month.
    pub included_tokens: u64,
    /// Billable tokens so far (in + out + cache read + cache write).
    pub tokens: i64,
    /// API cost so far, USD, exact.
    pub cost_usd: String,
    /// Share of the month elapsed, 0..=1.
    pub elapsed_fraction: f64,
    /// Tokens extrapolated linearly to the end of the month.
    pub projected_tokens: Option<i64>,
    /// Cost extrapolated linearly to the end of the month, USD.
    pub projected_cost_usd: Option<String>,
    /// Sum of the base-fee lines, minor units of `currency`.
    pub base_minor: i64,
    /// Overage on the usage so far, minor units of `overage_currency`.
    pub overage_minor: i64,
    /// Overage of the projected usage, minor units of `overage_currency`.
    pub projected_overage_minor: Option<i64>,
    /// `currency`, or `USD` when no USD rate is configured.
    pub overage_currency: String,
    /// The invoice lines of the usage so far, as mb-report invoice makes them.
    pub lines: Vec<Line>,
    /// Caveats to show next to the figures.
    pub notes: Vec<String>,
}

/// The invoice previews of a month: one per customer (the one asked for,
/// or every registered customer and every customer with usage).
#[derive(Debug, Clone, Serialize)]
pub struct Previews {
    /// The month.
    pub period: Period,
    /// When it was computed.
    #[serde(serialize_with = "ser_t")]
    pub generated_at: DateTime<Utc>,
    /// Markup on API cost for the overage, percent.
    pub markup_percent: String,
    /// The USD rate used, if one is configured.
    pub fx: Option<FxRate>,
    /// Per customer, sorted.
    pub customers: Vec<Preview>,
}

fn ser_t<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::time::format_rfc3339(t))
}

/// The configured USD rate, as mb-report invoice builds it from mb.toml.
fn config_fx(cfg: &Config) -> Option<FxRate> {
    cfg.billing.usd_eur.map(|rate| FxRate {
        rate,
        source: cfg
            .billing
            .usd_eur_source
            .clone()
            .unwrap_or_else(|| "mb.toml".into()),
        date: cfg
            .billing
            .usd_eur_date
            .clone()
            .unwrap_or_else(|| "undated".into()),
    })
}

/// Build the previews of `month` at `now`.
pub fn previews(
    store: &Store,
    cfg: &Config,
    month: &Period,
    customer: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Previews> {
    let inv = preview_invoice(store, cfg, month, customer)?;
    let registered = preview_ids(&inv, customer)
        .into_iter()
        .map(|id| Ok((store.customer_exists(&id)?, id)))
        .collect::<Result<Vec<(bool, String)>>>()?;
    Ok(previews_from(cfg, month, &inv, &registered, now))
}

/// The invoice a preview is made from.
fn preview_invoice(
    store: &Store,
    cfg: &Config,
    month: &Period,
    customer: Option<&str>,
) -> Result<invoice::Invoice> {
    // Without a configured rate the library would (rightly) refuse to
    // invoice an overage; a preview shows it in USD instead, computed by the
    // same code at a rate of 1.
    let usd = FxRate {
        rate: Decimal::ONE,
        source: "no rate configured".into(),
        date: String::new(),
    };
    let opts = invoice::Options {
        period: month.clone(),
        fx: Some(config_fx(cfg).unwrap_or(usd)),
        allow_unregistered: true,
        allow_unpriced: true,
        allow_vm_mismatch: false,
        customer: customer.map(str::to_string),
        as_of: None,
    };
    invoice::invoice(store, cfg, &opts)
}

/// The customers a preview lists: those with usage or invoice lines, and
/// the one asked for; sorted.
fn preview_ids(inv: &invoice::Invoice, customer: Option<&str>) -> Vec<String> {
    let mut ids: Vec<String> = inv.usage.keys().cloned().collect();
    ids.extend(inv.lines.iter().map(|l| l.customer_id.clone()));
    if let Some(c) = customer {
        ids.push(c.to_string());
    }
    ids.sort();
    ids.dedup();
    ids
}

/// The previews of `month` at `now` from its invoice, for the customers
/// of `registered` (whether each is registered, and its id).
fn previews_from(
    cfg: &Config,
    month: &Period,
    inv: &invoice::Invoice,
    registered: &[(bool, String)],
    now: DateTime<Utc>,
) -> Previews {
    let fx = config_fx(cfg);
    let len_s = (month.end - month.start).num_seconds().max(1);
    let el_s = (now.min(month.end) - month.start)
        .num_seconds()
        .clamp(0, len_s);
    let included = cfg.billing.included_tokens;
    let overage_currency = if fx.is_some() {
        cfg.billing.currency.clone()
    } else {
        "USD".to_string()
    };
    let mut customers = Vec::with_capacity(registered.len());
    for (registered, id) in registered {
        let (registered, id) = (*registered, id.clone());
        let usage = inv.usage.get(&id).copied().unwrap_or_default();
        let mut lines: Vec<Line> = inv
            .lines
            .iter()
            .filter(|l| l.customer_id == id)
            .cloned()
            .collect();
        let mut notes = Vec::new();
        if fx.is_none() {
            // The line was computed at a rate of 1: say so (the library's
            // description carries no rate since issue 14).
            for l in lines.iter_mut().filter(|l| l.line == "llm_overage") {
                l.currency = "USD".into();
                l.fx_rate = String::new();
                l.fx_source = String::new();
                l.description
                    .push_str(" (USD, not converted: no rate configured)");
            }
            if usage.total_tokens() > 0 {
                notes.push(format!(
                    "No USD->{} rate is configured (billing.usd_eur in mb.toml): the overage \
                     is shown in USD before conversion.",
                    cfg.billing.currency
                ));
            }
        }
        if !registered {
            notes.push(
                "This customer is not registered (mb-customer add): nothing is invoiced.".into(),
            );
        }
        if usage.unpriced_requests > 0 {
            notes.push(format!(
                "{} requests have no price: their tokens count toward the allowance but add no cost.",
                usage.unpriced_requests
            ));
        }
        let base_minor = lines
            .iter()
            .filter(|l| l.line == "base")
            .map(|l| l.amount_minor)
            .sum();
        let overage_minor = lines
            .iter()
            .filter(|l| l.line == "llm_overage")
            .map(|l| l.amount_minor)
            .sum();
        let markup = Decimal::from(100) + cfg.billing.markup_percent;
        let rate = fx.as_ref().map_or(Decimal::ONE, |f| f.rate);
        let proj = if el_s > 0 {
            project(
                usage.cost_nusd,
                usage.total_tokens(),
                el_s,
                len_s,
                included,
                markup,
                (
                    rate,
                    crate::money::minor_exponent(&overage_currency).unwrap_or(2),
                ),
            )
        } else {
            None
        };
        if el_s > 0 && el_s < len_s {
            notes.push(format!(
                "Projection: usage so far extrapolated linearly over the remaining {:.0}% of the month; an estimate, not an invoice.",
                100.0 * (len_s - el_s) as f64 / len_s as f64
            ));
        }
        customers.push(Preview {
            customer_id: id,
            registered,
            currency: cfg.billing.currency.clone(),
            included_tokens: included,
            tokens: usage.total_tokens(),
            cost_usd: crate::money::format_nanos(usage.cost_nusd),
            elapsed_fraction: el_s as f64 / len_s as f64,
            projected_tokens: proj.map(|p| p.tokens),
            projected_cost_usd: proj.map(|p| crate::money::format_nanos(p.cost_nusd)),
            base_minor,
            overage_minor,
            projected_overage_minor: proj.map(|p| if registered { p.overage_minor } else { 0 }),
            overage_currency: overage_currency.clone(),
            lines,
            notes,
        });
    }
    Previews {
        period: month.clone(),
        generated_at: now,
        markup_percent: cfg.billing.markup_percent.normalize().to_string(),
        fx,
        customers,
    }
}

/// Month-end projection of one customer's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projection {
    /// Billable tokens at month end (rounded down).
    pub tokens: i64,
    /// API cost at month end, nano-USD (rounded half-up).
    pub cost_nusd: i64,
    /// Overage at month end in minor units (rounded half-up once).
    pub overage_minor: i64,
}

/// Project `cost_nusd` and `tokens`, seen over `el_s` of a `len_s`-second
/// month, to the whole month, and compute the overage above `included`
/// tokens with `markup` (100 + percent) and `rate`.
///
/// With `Cp = C x len/el` and `Tp = T x len/el`, the invoice's overage
/// `Cp x (Tp - I)/Tp x markup/100 x rate x 100` (minor units) simplifies to
/// `C x (T x len - I x el) / (el x T x 1e9) x markup x rate`, one exact
/// fraction of integers. `fx` is the rate and the ISO 4217 exponent of the
/// currency it converts to: the overage is in that currency's minor units
/// (`markup` is in percent, 120 for +20 %, hence the `/ 100`). `None` when nothing has elapsed or a product
/// overflows i128 (never for real usage: 10^13 nano-USD x 10^16 token-seconds
/// x 10^6 leaves room).
pub fn project(
    cost_nusd: i64,
    tokens: i64,
    el_s: i64,
    len_s: i64,
    included: u64,
    markup: Decimal,
    (rate, exp): (Decimal, u32),
) -> Option<Projection> {
    if el_s <= 0 || len_s <= 0 {
        return None;
    }
    let (c, t, el, len) = (
        i128::from(cost_nusd),
        i128::from(tokens),
        i128::from(el_s),
        i128::from(len_s),
    );
    let i = i128::from(included);
    let p_tokens = t.checked_mul(len)? / el;
    let p_cost = round_half_up(c.checked_mul(len)?, el);
    let excess = t.checked_mul(len)? - i.checked_mul(el)?;
    let overage = if excess > 0 && c > 0 && t > 0 {
        let (m_num, m_den) = (markup.mantissa(), 10i128.checked_pow(markup.scale())?);
        let (r_num, r_den) = (rate.mantissa(), 10i128.checked_pow(rate.scale())?);
        let num = c
            .checked_mul(excess)?
            .checked_mul(m_num)?
            .checked_mul(r_num)?
            .checked_mul(10i128.checked_pow(exp)?)?;
        let den = el
            .checked_mul(t)?
            .checked_mul(1_000_000_000)?
            .checked_mul(100)?
            .checked_mul(m_den)?
            .checked_mul(r_den)?;
        round_half_up(num, den)
    } else {
        0
    };
    Some(Projection {
        tokens: i64::try_from(p_tokens).ok()?,
        cost_nusd: i64::try_from(p_cost).ok()?,
        overage_minor: i64::try_from(overage).ok()?,
    })
}

/// `num / den` for non-negative values, rounded half-up.
fn round_half_up(num: i128, den: i128) -> i128 {
    if den <= 0 {
        return 0;
    }
    let q = num / den;
    if 2 * (num % den) >= den {
        q + 1
    } else {
        q
    }
}

/// The month containing `now` in `tz` (the invoice preview's month).
pub fn current_month(now: DateTime<Utc>, tz: chrono_tz::Tz) -> Result<Period> {
    Period::containing(Unit::Month, now, tz)
}

/// `month=YYYY-MM|current|last` of an invoice request (default current).
pub fn invoice_month(
    m: Option<&str>,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<Period, HttpError> {
    match m {
        None | Some("") => current_month(now, tz)
            .map_err(|_| HttpError::bad_request("no current month in this time zone")),
        Some(m) => period::parse_month(m, now, tz)
            .map_err(|_| HttpError::bad_request("month: expected YYYY-MM, current or last")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_is_linear_and_overage_follows_the_invoice_rule() {
        // 10 of 30 days elapsed; 600,000 tokens for USD 6 so far.
        // Projected: 1,800,000 tokens, USD 18. Overage of the projection:
        // 18 x 800,000/1,800,000 x 1.2 x 0.9 EUR/USD = 8.64 EUR = 864 cents.
        let day = 86_400;
        let p = project(
            6_000_000_000,
            600_000,
            10 * day,
            30 * day,
            1_000_000,
            Decimal::from(120),
            (Decimal::new(9, 1), 2),
        )
        .unwrap();
        assert_eq!(
            p,
            Projection {
                tokens: 1_800_000,
                cost_nusd: 18_000_000_000,
                overage_minor: 864
            }
        );
        // Below the allowance at month end: no overage.
        let p = project(
            1_000_000_000,
            100_000,
            15 * day,
            30 * day,
            1_000_000,
            Decimal::from(120),
            (Decimal::ONE, 2),
        )
        .unwrap();
        assert_eq!((p.tokens, p.overage_minor), (200_000, 0));
        // JPY (exponent 0) at 135 yen/USD: 18 x 800k/1.8M x 1.2 x 135
        // = 1,296 yen, not 129,600.
        let p = project(
            6_000_000_000,
            600_000,
            10 * day,
            30 * day,
            1_000_000,
            Decimal::from(120),
            (Decimal::from(135), 0),
        )
        .unwrap();
        assert_eq!(p.overage_minor, 1296);
        // Nothing elapsed: no projection.
        assert!(project(1, 1, 0, 30, 1, Decimal::ONE, (Decimal::ONE, 2)).is_none());
    }

    #[test]
    fn projection_at_month_end_equals_the_invoice() {
        // Whole month elapsed: 1,500,000 tokens, USD 3 -> 3 x 500k/1.5M x 1.2
        // = 1.20 USD = 120 cents at rate 1 (what invoice() gives too).
        let p = project(
            3_000_000_000,
            1_500_000,
            100,
            100,
            1_000_000,
            Decimal::from(120),
            (Decimal::ONE, 2),
        )
        .unwrap();
        assert_eq!(p.overage_minor, 120);
        assert_eq!(p.tokens, 1_500_000);
    }
}
