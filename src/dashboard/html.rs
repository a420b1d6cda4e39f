//! The HTML page: one server-rendered document with inline CSS and inline
//! SVG charts, no JavaScript, no external resource (the VM may be offline;
//! the Content-Security-Policy forbids scripts outright).
//!
//! Every value that comes from the database or the request goes through
//! [`esc`] before it reaches the document, in text and in attributes alike,
//! so a customer id, model name or command containing `<script>` is shown
//! as text. Links are relative (`?period=day&date=...`), so the page also
//! works behind a reverse proxy that serves it under a path prefix.
//!
//! The page reloads itself every minute (`<meta http-equiv="refresh">`),
//! which keeps the chosen period because the period lives in the URL.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::data::Preview;
use super::request::{encode, Selection};
use super::svg;
use crate::money::{format_minor, format_nanos_places};
use crate::output::{fixed, thousands};
use crate::report::period::tz_label;
use crate::report::{CustomerSummary, Period, SeriesRow, Summary, Unit};
use crate::time;

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = include_str!("dashboard.css");

/// Everything the page shows.
pub struct PageData<'a> {
    /// The selection (period, customer).
    pub sel: &'a Selection,
    /// Whether the dashboard is scoped to one customer.
    pub scoped: bool,
    /// The display zone.
    pub tz: Tz,
    /// Time of rendering.
    pub now: DateTime<Utc>,
    /// The summary of the period.
    pub summary: &'a Summary,
    /// Series rows of the selected customer (empty for the overview).
    pub series: &'a [SeriesRow],
    /// The chart buckets of the period.
    pub buckets: &'a [Period],
    /// Their unit.
    pub bucket_unit: Unit,
    /// The current month's invoice preview, or why it is unavailable.
    pub preview: Option<(Period, Result<Preview, String>)>,
}

/// The link to a selection, relative to the page.
fn href(unit: Unit, date: Option<&str>, customer: Option<&str>, scoped: bool) -> String {
    let mut q = format!("?period={}", unit.as_str());
    if let Some(d) = date {
        q.push_str("&date=");
        q.push_str(&encode(d));
    }
    if let (Some(c), false) = (customer, scoped) {
        q.push_str("&customer=");
        q.push_str(&encode(c));
    }
    esc(&q)
}

fn local_date(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d").to_string()
}

fn money4(n: i64) -> String {
    format_nanos_places(n, 4)
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| fixed(x, 1) + " %").unwrap_or_else(|| "-".into())
}

/// Render the page.
pub fn page(d: &PageData) -> String {
    let sel = d.sel;
    let p = &sel.period;
    let who = match &sel.customer {
        Some(c) => c.clone(),
        None => "all customers".into(),
    };
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"60\">\
<link rel=\"icon\" href=\"data:,\">\
<title>{t}</title><style>{CSS}</style></head><body>",
        t = esc(&format!("Usage {} {} - mb", who, p.label))
    );
    // Header: who, which period, the selector and the step links.
    let _ = write!(
        h,
        "<header><h1>Usage <span class=\"who\" id=\"customer\">{}</span></h1>",
        esc(&who)
    );
    h.push_str("<nav class=\"units\" aria-label=\"period length\">");
    let date = local_date(p.start, d.tz);
    for u in [Unit::Day, Unit::Week, Unit::Month] {
        let cls = if u == sel.unit { " class=\"on\"" } else { "" };
        let _ = write!(
            h,
            "<a{cls} data-unit=\"{u}\" href=\"{href}\">{label}</a>",
            u = u.as_str(),
            href = href(u, Some(&date), sel.customer.as_deref(), d.scoped),
            label = match u {
                Unit::Day => "Day",
                Unit::Week => "Week",
                _ => "Month",
            }
        );
    }
    h.push_str("</nav><nav class=\"step\" aria-label=\"previous and next period\">");
    if let Ok(prev) = p.prev() {
        let _ = write!(
            h,
            "<a rel=\"prev\" id=\"prev\" href=\"{}\">&larr; {}</a>",
            href(
                sel.unit,
                Some(&local_date(prev.start, d.tz)),
                sel.customer.as_deref(),
                d.scoped
            ),
            esc(&prev.label)
        );
    }
    let _ = write!(
        h,
        "<strong id=\"period\" data-kind=\"{}\">{}</strong>",
        esc(&p.kind),
        esc(&p.label)
    );
    if let Ok(next) = p.next() {
        let _ = write!(
            h,
            "<a rel=\"next\" id=\"next\" href=\"{}\">{} &rarr;</a>",
            href(
                sel.unit,
                Some(&local_date(next.start, d.tz)),
                sel.customer.as_deref(),
                d.scoped
            ),
            esc(&next.label)
        );
    }
    let _ = write!(
        h,
        "<a id=\"now\" href=\"{}\">now</a></nav>",
        href(sel.unit, None, sel.customer.as_deref(), d.scoped)
    );
    let _ = write!(
        h,
        "<p class=\"meta\">{} to {} ({}); updated {} UTC, refreshes every minute. \
Costs in USD (exact sums shown to 4 decimals), GB = 10<sup>9</sup> B, MB = 10<sup>6</sup> B.</p></header><main>",
        esc(&time::format_rfc3339(&p.start)),
        esc(&time::format_rfc3339(&p.end)),
        esc(&tz_label(p.tz, p.start)),
        esc(&d.now.format("%Y-%m-%d %H:%M:%S").to_string())
    );
    match &sel.customer {
        Some(id) => {
            let c = d.summary.customers.iter().find(|c| &c.customer_id == id);
            customer_sections(&mut h, d, c);
        }
        None => overview(&mut h, d),
    }
    let api = {
        let mut q = format!("api/v1/summary?period={}&date={}", sel.unit.as_str(), date);
        if let (Some(c), false) = (&sel.customer, d.scoped) {
            q.push_str("&customer=");
            q.push_str(&encode(c));
        }
        q
    };
    let _ = writeln!(
        h,
        "</main><footer>mb-dashboard {} &middot; read-only &middot; the same figures as \
<code>mb-report</code> &middot; <a href=\"{}\">JSON</a></footer></body></html>",
        env!("CARGO_PKG_VERSION"),
        esc(&api)
    );
    h
}

/// The list of customers with usage in the period (unscoped dashboards).
fn overview(h: &mut String, d: &PageData) {
    h.push_str("<section id=\"customers\"><h2>Customers</h2>");
    if d.summary.customers.is_empty() {
        h.push_str("<p class=\"empty\">No usage in this period.</p></section>");
        return;
    }
    h.push_str(
        "<table><thead><tr><th>Customer</th><th class=\"n\">Requests</th><th class=\"n\">Tokens</th>\
<th class=\"n\">Cost USD</th><th class=\"n\">CPU</th><th class=\"n\">Activities</th></tr></thead><tbody>",
    );
    let date = local_date(d.sel.period.start, d.tz);
    for c in &d.summary.customers {
        let t = &c.api_total;
        let _ = write!(
            h,
            "<tr><td><a href=\"{}\">{}</a>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            href(d.sel.unit, Some(&date), Some(&c.customer_id), false),
            esc(&c.customer_id),
            if c.registered {
                ""
            } else {
                " <small>(not registered)</small>"
            },
            thousands(t.requests.into()),
            thousands(t.total_tokens().into()),
            money4(t.cost_nusd),
            pct(c.resource.avg_cpu_percent),
            thousands(c.activity.iter().map(|a| i128::from(a.count)).sum()),
        );
    }
    h.push_str("</tbody></table></section>");
}

/// Label of a chart bucket.
fn bucket_label(b: &Period, unit: Unit, period_unit: Unit, tz: Tz) -> String {
    let l = b.start.with_timezone(&tz);
    match (unit, period_unit) {
        (Unit::Hour, _) => l.format("%H:00").to_string(),
        (Unit::Day, Unit::Week) => l.format("%a %d").to_string(),
        (Unit::Day, _) => l.format("%d").to_string(),
        _ => b.label.clone(),
    }
}

/// The value of `metric` in bucket `b`, if the series has one.
fn value(rows: &[SeriesRow], b: &Period, metric: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.bucket_start == b.start && r.metric == metric)
        .and_then(|r| r.value.parse().ok())
}

fn customer_sections(h: &mut String, d: &PageData, c: Option<&CustomerSummary>) {
    let empty = CustomerSummary {
        customer_id: String::new(),
        registered: false,
        api: Vec::new(),
        api_total: Default::default(),
        price_tables: Vec::new(),
        resource: Default::default(),
        activity: Vec::new(),
    };
    let c = c.unwrap_or(&empty);
    let unit_word = if d.bucket_unit == Unit::Hour {
        "hour"
    } else {
        "day"
    };

    // API by provider and model: chart and table.
    h.push_str("<section id=\"api\"><h2>API cost and tokens by provider and model</h2>");
    let items: Vec<(String, f64, String)> = c
        .api
        .iter()
        .map(|m| {
            (
                format!("{}/{}", m.provider, m.model),
                m.usage.cost_nusd as f64 / 1e9,
                format!("USD {}", money4(m.usage.cost_nusd)),
            )
        })
        .collect();
    h.push_str(&svg::hbars("API cost by model, USD", &items));
    if !c.api.is_empty() {
        h.push_str(
            "<table><thead><tr><th>Provider</th><th>Model</th><th class=\"n\">Requests</th>\
<th class=\"n\">Tokens in</th><th class=\"n\">Tokens out</th><th class=\"n\">Cache read</th>\
<th class=\"n\">Cache write</th><th class=\"n\">Total tokens</th><th class=\"n\">Cost USD</th></tr></thead><tbody>",
        );
        let row = |h: &mut String,
                   a: &str,
                   b: &str,
                   u: &crate::store::report::ApiAgg,
                   total: bool| {
            let _ = write!(
                h,
                "<tr{}><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}{}</td></tr>",
                if total { " class=\"total\"" } else { "" },
                esc(a),
                esc(b),
                thousands(u.requests.into()),
                thousands(u.tokens_in.into()),
                thousands(u.tokens_out.into()),
                thousands(u.cache_read_tokens.into()),
                thousands(u.cache_write_tokens.into()),
                thousands(u.total_tokens().into()),
                money4(u.cost_nusd),
                if u.unpriced_requests > 0 { " *" } else { "" }
            );
        };
        for m in &c.api {
            row(h, &m.provider, &m.model, &m.usage, false);
        }
        row(h, "total", "", &c.api_total, true);
        h.push_str("</tbody></table>");
        if c.api_total.unpriced_requests > 0 {
            let _ = write!(
                h,
                "<p class=\"note\">* {} requests have no price and no cost.</p>",
                thousands(c.api_total.unpriced_requests.into())
            );
        }
    }
    h.push_str("</section>");

    // Cost per bucket.
    let labels: Vec<String> = d
        .buckets
        .iter()
        .map(|b| bucket_label(b, d.bucket_unit, d.sel.unit, d.tz))
        .collect();
    let costs: Vec<f64> = d
        .buckets
        .iter()
        .map(|b| value(d.series, b, "cost_usd").unwrap_or(0.0))
        .collect();
    let tips: Vec<String> = d
        .buckets
        .iter()
        .map(|b| {
            let cost = d
                .series
                .iter()
                .find(|r| r.bucket_start == b.start && r.metric == "cost_usd")
                .map(|r| r.value.clone())
                .unwrap_or_else(|| "0".into());
            let tokens = value(d.series, b, "tokens").unwrap_or(0.0);
            format!(
                "{}: USD {cost}, {} tokens",
                b.start.with_timezone(&d.tz).format("%Y-%m-%d %H:%M"),
                thousands(tokens as i128)
            )
        })
        .collect();
    let _ = write!(
        h,
        "<section id=\"cost\"><h2>Cost per {unit_word}</h2>{}</section>",
        svg::bars(
            &format!("API cost per {unit_word}, USD"),
            &labels,
            &costs,
            &tips,
            ""
        )
    );

    // CPU and memory over time, then the totals.
    let cpu: Vec<Option<f64>> = d
        .buckets
        .iter()
        .map(|b| value(d.series, b, "cpu_percent"))
        .collect();
    let mem: Vec<Option<f64>> = d
        .buckets
        .iter()
        .map(|b| value(d.series, b, "memory_percent"))
        .collect();
    let _ = write!(
        h,
        "<section id=\"resources\"><h2>CPU and memory</h2>{}",
        svg::lines(
            &format!("CPU and memory per {unit_word}, percent"),
            &labels,
            &[
                svg::Line {
                    name: "CPU %",
                    class: "cpu",
                    values: cpu
                },
                svg::Line {
                    name: "memory %",
                    class: "mem",
                    values: mem
                },
            ],
            Some(100.0),
            "%"
        )
    );
    let r = &c.resource;
    let _ = write!(
        h,
        "<dl class=\"totals\"><div><dt>Average CPU</dt><dd>{}</dd></div>\
<div><dt>Average memory</dt><dd>{}</dd></div>\
<div><dt>Disk used (max)</dt><dd>{}</dd></div>\
<div><dt>Network in</dt><dd>{} MB</dd></div>\
<div><dt>Network out</dt><dd>{} MB</dd></div>\
<div><dt>Coverage</dt><dd>{} <small>({} VMs, {} samples)</small></dd></div></dl></section>",
        pct(r.avg_cpu_percent),
        pct(r.avg_memory_percent),
        r.max_disk_bytes
            .map(|b| fixed(b as f64 / 1e9, 1) + " GB")
            .unwrap_or_else(|| "-".into()),
        fixed(r.net_in_bytes / 1e6, 1),
        fixed(r.net_out_bytes / 1e6, 1),
        r.coverage
            .map(|v| fixed(v * 100.0, 1) + " %")
            .unwrap_or_else(|| "-".into()),
        r.vms,
        r.samples
    );

    // Activity by type.
    h.push_str("<section id=\"activity\"><h2>Activity by type</h2>");
    if c.activity.is_empty() {
        h.push_str("<p class=\"empty\">No activity in this period.</p>");
    } else {
        h.push_str(
            "<table><thead><tr><th>Type</th><th class=\"n\">Count</th>\
<th class=\"n\">Duration (s)</th></tr></thead><tbody>",
        );
        for a in &c.activity {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&a.activity_type),
                thousands(a.count.into()),
                fixed(a.duration_seconds, 1)
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");

    if let Some((month, pv)) = &d.preview {
        invoice_section(h, month, pv);
    }
}

fn invoice_section(h: &mut String, month: &Period, pv: &Result<Preview, String>) {
    let _ = write!(
        h,
        "<section id=\"invoice\"><h2>Invoice preview {}</h2>",
        esc(&month.label)
    );
    let p = match pv {
        Ok(p) => p,
        Err(e) => {
            let _ = write!(
                h,
                "<p class=\"error\">Preview unavailable: {}</p></section>",
                esc(e)
            );
            return;
        }
    };
    let cur = esc(&p.currency);
    let ocur = esc(&p.overage_currency);
    h.push_str("<table><tbody>");
    for l in p.lines.iter().filter(|l| l.line == "base") {
        let _ = write!(
            h,
            "<tr><td>Base fee: {}</td><td class=\"n\">{cur} {}</td></tr>",
            esc(&l.description),
            format_minor(l.amount_minor)
        );
    }
    if !p.lines.iter().any(|l| l.line == "base") {
        h.push_str("<tr><td>Base fee</td><td class=\"n\">none</td></tr>");
    }
    let _ = write!(
        h,
        "<tr><td>LLM tokens used <meter id=\"allowance\" min=\"0\" max=\"{inc}\" value=\"{t}\">{t}</meter> \
{ts} of {incs} included ({share} %)</td><td class=\"n\">USD {cost}</td></tr>",
        inc = p.included_tokens,
        t = p.tokens.max(0),
        ts = thousands(p.tokens.into()),
        incs = thousands(p.included_tokens.into()),
        share = fixed(
            p.tokens as f64 / (p.included_tokens.max(1) as f64) * 100.0,
            1
        ),
        cost = esc(&p.cost_usd)
    );
    let _ = write!(
        h,
        "<tr><td>Overage so far</td><td class=\"n\">{ocur} {}</td></tr>",
        format_minor(p.overage_minor)
    );
    if let (Some(t), Some(c), Some(o)) = (
        p.projected_tokens,
        &p.projected_cost_usd,
        p.projected_overage_minor,
    ) {
        let _ = write!(
            h,
            "<tr class=\"projected\"><td>Projected to month end: {} tokens, USD {}</td>\
<td class=\"n\">overage {ocur} {}</td></tr>",
            thousands(t.into()),
            esc(c),
            format_minor(o)
        );
        if p.overage_currency == p.currency {
            let _ = write!(
                h,
                "<tr class=\"total\"><td>Projected total</td><td class=\"n\">{cur} {}</td></tr>",
                format_minor(p.base_minor + o)
            );
        }
    }
    h.push_str("</tbody></table>");
    for n in &p.notes {
        let _ = write!(h, "<p class=\"note\">{}</p>", esc(n));
    }
    h.push_str("</section>");
}

/// A minimal HTML document for an error, escaped.
pub fn error_page(status: u16, msg: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title>\
<style>{CSS}</style></head><body><main><h1>{status}</h1><p class=\"error\">{}</p>\
<p><a href=\"./\">Back to the dashboard</a></p></main></body></html>\n",
        esc(msg)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert!(!error_page(400, "<b>").contains("<b>"));
    }
}
