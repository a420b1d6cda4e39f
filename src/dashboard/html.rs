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
use super::fleet::{CustomerRow, Customers};
use super::request::{encode, Selection};
use super::svg;
use crate::money::{format_minor_exp, format_nanos_places, minor_exponent};
use crate::output::{fixed, thousands};
use crate::report::fleet::{human_age as age, Fleet, State};
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

/// Who the page is about: the registry's view of the customer.
#[derive(Debug, Clone, Default)]
pub struct Who {
    /// Registered at all.
    pub registered: bool,
    /// Tier in effect (at the period's end, or now).
    pub tier: Option<String>,
    /// Status in effect.
    pub status: Option<String>,
    /// Since when the status is in effect.
    pub status_since: Option<DateTime<Utc>>,
}

/// Whether the invoice shown is final, a projection, or not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceState {
    /// The month is over: the figures are the invoice.
    Final,
    /// The current month: usage so far, projected to the month end.
    Projected,
    /// A month that has not started.
    Future,
}

/// The invoice of the viewed month.
pub struct InvoiceView {
    /// The month.
    pub month: Period,
    /// Final, projected or future.
    pub state: InvoiceState,
    /// The preview, or why it is unavailable.
    pub preview: Result<Preview, String>,
    /// Why there is no base fee, when there is none.
    pub no_base_reason: String,
}

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
    /// The selected customer's tier and status.
    pub who: Option<Who>,
    /// The viewed month's invoice (customer pages).
    pub invoice: Option<InvoiceView>,
    /// The fleet view (pages without a customer).
    pub fleet: Option<(&'a Customers, &'a Fleet)>,
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

/// A local date and time in `tz`, to the minute, with the zone's
/// abbreviation: `2026-11-03 10:05 CET`.
fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// The period as people say it, in the zone: `2026-11-01 to 2026-11-30`
/// for whole local days (the end is exclusive, so the last day shown is
/// the one before it), else local times to the minute.
pub fn span(p: &Period) -> String {
    let tz = p.tz;
    let (s, e) = (p.start.with_timezone(&tz), p.end.with_timezone(&tz));
    let midnight = |t: &chrono::DateTime<Tz>| t.format("%H:%M:%S%.f").to_string() == "00:00:00";
    if midnight(&s) && midnight(&e) {
        let last = (p.end - chrono::Duration::nanoseconds(1)).with_timezone(&tz);
        let (a, b) = (s.format("%Y-%m-%d"), last.format("%Y-%m-%d"));
        if a.to_string() == b.to_string() {
            a.to_string()
        } else {
            format!("{a} to {b}")
        }
    } else {
        format!(
            "{} to {}",
            s.format("%Y-%m-%d %H:%M"),
            e.format("%Y-%m-%d %H:%M")
        )
    }
}

/// A missing value: shown as missing, never as 0.
fn missing(why: &str) -> String {
    format!(
        "<span class=\"missing\" title=\"{}\">&mdash;</span>",
        esc(why)
    )
}

fn money4(n: i64) -> String {
    format_nanos_places(n, 4)
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| fixed(x, 1) + " %")
        .unwrap_or_else(|| missing("not measured in this period"))
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
    if let Some(w) = &d.who {
        h.push_str("<p class=\"badges\" id=\"registry\">");
        if w.registered {
            let _ = write!(
                h,
                "<span class=\"badge\" id=\"tier\">tier {}</span>\
<span class=\"badge status-{st}\" id=\"status\">{st}{since}</span>",
                w.tier.as_deref().map_or_else(|| "none".to_string(), esc),
                st = esc(w.status.as_deref().unwrap_or("no status")),
                since = w
                    .status_since
                    .map(|t| format!(" since {}", esc(&local_date(t, d.tz))))
                    .unwrap_or_default()
            );
        } else {
            h.push_str(
                "<span class=\"badge status-unregistered\" id=\"status\">not registered</span>",
            );
        }
        h.push_str("</p>");
    }
    h.push_str("<nav class=\"units\" aria-label=\"period length\">");
    let date = local_date(p.start, d.tz);
    for u in [Unit::Day, Unit::Week, Unit::Month] {
        let cls = if u == sel.unit && p.kind != "custom" {
            " class=\"on\""
        } else {
            ""
        };
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
        esc(&if p.kind == "custom" {
            span(p)
        } else {
            p.label.clone()
        })
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
        "<p class=\"meta\" id=\"span\">{} ({}); updated {}, refreshes every minute. \
Costs in USD (exact sums shown to 4 decimals), GB = 10<sup>9</sup> B, MB = 10<sup>6</sup> B.</p></header><main>",
        esc(&span(p)),
        esc(&tz_label(p.tz, p.start)),
        esc(&d.now.with_timezone(&d.tz).format("%Y-%m-%d %H:%M:%S %Z").to_string())
    );
    match &sel.customer {
        Some(id) => {
            let c = d.summary.customers.iter().find(|c| &c.customer_id == id);
            customer_sections(&mut h, d, c);
        }
        None => {
            if let Some((c, f)) = d.fleet {
                fleet_view(&mut h, d, c, f);
            }
        }
    }
    let api = {
        let mut q = if p.kind == "custom" {
            format!(
                "api/v1/summary?since={}&until={}",
                encode(&time::format_rfc3339(&p.start)),
                encode(&time::format_rfc3339(&p.end))
            )
        } else {
            format!("api/v1/summary?period={}&date={}", sel.unit.as_str(), date)
        };
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

fn opt_num(v: Option<i64>, f: impl Fn(i64) -> String, why: &str) -> String {
    v.map(f).unwrap_or_else(|| missing(why))
}

fn mb(bytes: i64) -> String {
    fixed(bytes as f64 / 1e6, 1) + " MB"
}

fn gb(bytes: i64) -> String {
    fixed(bytes as f64 / 1e9, 1) + " GB"
}

/// One row of the fleet's customer table.
fn customer_row(h: &mut String, d: &PageData, r: &CustomerRow) {
    let date = local_date(d.sel.period.start, d.tz);
    let total = r.customer_id.is_none();
    let name = match &r.customer_id {
        Some(id) => format!(
            "<a href=\"{}\">{}</a>{}",
            href(d.sel.unit, Some(&date), Some(id), false),
            esc(id),
            if r.registered {
                ""
            } else {
                " <small>(not registered)</small>"
            }
        ),
        None => "Total".into(),
    };
    let share = if r.included_tokens > 0 {
        format!(
            "<br><small>of {} ({} %)</small>",
            thousands(r.included_tokens.into()),
            fixed(r.tokens as f64 / r.included_tokens as f64 * 100.0, 1)
        )
    } else {
        String::new()
    };
    let status = r.status.as_deref().unwrap_or(if total { "" } else { "-" });
    let no_samples = "no samples in this period";
    let _ = write!(
        h,
        "<tr{cls}><td>{name}</td><td>{tier}<br><span class=\"status-{st}\">{st}</span></td>\
<td class=\"n\">{tokens}{share}</td><td class=\"n\">{cost}</td><td class=\"n\">{cpu}</td>\
<td class=\"n\">{mem}</td><td class=\"n\">{disk}</td><td class=\"n\">{nin}<br>{nout}</td></tr>",
        cls = if total { " class=\"total\"" } else { "" },
        tier = esc(r.tier.as_deref().unwrap_or("")),
        st = esc(status),
        tokens = thousands(r.tokens.into()),
        cost = esc(&money4(crate::money::parse_nanos(&r.cost_usd).unwrap_or(0))),
        cpu = if total && r.avg_cpu_percent.is_none() {
            missing(no_samples)
        } else {
            pct(r.avg_cpu_percent)
        },
        mem = if total {
            missing("memory has no fleet total")
        } else {
            pct(r.avg_memory_percent)
        },
        disk = opt_num(r.max_disk_bytes, gb, no_samples),
        nin = opt_num(r.net_in_bytes, |b| mb(b) + " in", no_samples),
        nout = opt_num(r.net_out_bytes, |b| mb(b) + " out", no_samples),
    );
}

/// The operator's fleet view (dashboards without `--customer`).
fn fleet_view(h: &mut String, d: &PageData, c: &Customers, f: &Fleet) {
    h.push_str("<section id=\"customers\"><h2>Customers</h2>");
    if c.customers.is_empty() {
        h.push_str(&svg::empty("No customers and no usage in this period."));
    } else {
        h.push_str(
            "<div class=\"scroll\"><table><thead><tr><th>Customer</th><th>Tier, status</th>\
<th class=\"n\">Tokens of allowance</th><th class=\"n\">Cost USD</th><th class=\"n\">CPU</th>\
<th class=\"n\">Memory</th><th class=\"n\">Disk (max)</th><th class=\"n\">Network</th></tr></thead><tbody>",
        );
        for r in &c.customers {
            customer_row(h, d, r);
        }
        customer_row(h, d, &c.total);
        h.push_str("</tbody></table></div>");
    }
    h.push_str("</section>");

    let stale = f.stale();
    let _ = write!(
        h,
        "<section id=\"vms\"><h2>VMs{}</h2>",
        if stale > 0 {
            format!(" <span class=\"badge status-stale\">{stale} stale</span>")
        } else {
            String::new()
        }
    );
    if f.vms.is_empty() {
        h.push_str(&svg::empty("No VM has reported yet."));
    } else {
        h.push_str(
            "<div class=\"scroll\"><table><thead><tr><th>VM</th><th>Customer</th><th>Last sample</th>\
<th class=\"n\">Age</th><th class=\"n\">CPU</th><th class=\"n\">Memory</th><th>State</th></tr></thead><tbody>",
        );
        for v in &f.vms {
            let (last, ago, cpu, mem) = match &v.last_sample {
                Some(s) => (
                    esc(&local_time(s.ts, d.tz)),
                    esc(&age(s.age_seconds)),
                    pct(s.cpu_percent),
                    pct(s.memory_percent),
                ),
                None => (
                    missing("no sample ever"),
                    missing("no sample ever"),
                    missing("no sample ever"),
                    missing("no sample ever"),
                ),
            };
            let state = match v.state {
                State::Ok => "ok".to_string(),
                State::Stale => format!(
                    "stale <small>(no sample for over {})</small>",
                    esc(&age(v.stale_after_seconds))
                ),
                State::NoSamples => "no samples".to_string(),
            };
            let _ = write!(
                h,
                "<tr class=\"vm state-{}\" data-vm=\"{}\"><td>{}</td><td>{}</td><td>{last}</td>\
<td class=\"n\">{ago}</td><td class=\"n\">{cpu}</td><td class=\"n\">{mem}</td><td>{state}</td></tr>",
                v.state.as_str(),
                esc(&v.vm_id),
                esc(&v.vm_id),
                v.customer_id.as_deref().map_or_else(|| missing("unknown"), esc),
            );
        }
        h.push_str("</tbody></table></div>");
    }
    h.push_str("</section>");
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
    h.push_str(&svg::hbars(
        "API cost by model, USD",
        &items,
        "No API usage in this period.",
    ));
    if !c.api.is_empty() {
        // Provider and model share a cell that may wrap, so the table
        // fits an 800 px window without scrolling sideways.
        h.push_str(
            "<table class=\"models\"><thead><tr><th>Provider / model</th><th class=\"n\">Requests</th>\
<th class=\"n\">Tokens in</th><th class=\"n\">Tokens out</th><th class=\"n\">Cache read</th>\
<th class=\"n\">Cache write</th><th class=\"n\">Total tokens</th><th class=\"n\">Cost USD</th></tr></thead><tbody>",
        );
        let row = |h: &mut String, name: &str, u: &crate::store::report::ApiAgg, total: bool| {
            let _ = write!(
                h,
                "<tr{}><td class=\"name\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}{}</td></tr>",
                if total { " class=\"total\"" } else { "" },
                name,
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
            let name = format!(
                "<span class=\"provider\">{}</span>/<wbr><span class=\"model\">{}</span>",
                esc(&m.provider),
                esc(&m.model)
            );
            row(h, &name, &m.usage, false);
        }
        row(h, "total", &c.api_total, true);
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
            "",
            "No API cost in this period."
        )
    );

    // CPU and memory over time, then the totals.
    let r = &c.resource;
    h.push_str("<section id=\"resources\"><h2>CPU and memory</h2>");
    if r.samples == 0 && r.vms == 0 {
        h.push_str(&svg::empty("No resource samples in this period."));
    } else {
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
        h.push_str(&svg::lines(
            &format!("CPU and memory per {unit_word}, percent"),
            &labels,
            &[
                svg::Line {
                    name: "CPU %",
                    class: "cpu",
                    values: cpu,
                },
                svg::Line {
                    name: "memory %",
                    class: "mem",
                    values: mem,
                },
            ],
            Some(100.0),
            "%",
            "No CPU or memory figure in this period.",
        ));
        // Network and coverage come from sampling intervals: without one
        // (a single first sample) they are unknown, not zero.
        let intervals = r.coverage.is_some_and(|c| c > 0.0);
        let net = |b: f64| {
            if intervals {
                fixed(b / 1e6, 1) + " MB"
            } else {
                missing("no complete sampling interval in this period")
            }
        };
        let _ = write!(
            h,
            "<dl class=\"totals\"><div><dt>Average CPU</dt><dd>{}</dd></div>\
<div><dt>Average memory</dt><dd>{}</dd></div>\
<div><dt>Disk used (max)</dt><dd>{}</dd></div>\
<div><dt>Network in</dt><dd>{}</dd></div>\
<div><dt>Network out</dt><dd>{}</dd></div>\
<div><dt>Coverage</dt><dd>{} <small>({} VM{}, {} samples)</small></dd></div></dl>",
            pct(r.avg_cpu_percent),
            pct(r.avg_memory_percent),
            opt_num(r.max_disk_bytes, gb, "not measured in this period"),
            net(r.net_in_bytes),
            net(r.net_out_bytes),
            r.coverage
                .map(|v| fixed(v * 100.0, 1) + " %")
                .unwrap_or_else(|| missing("no complete sampling interval in this period")),
            r.vms,
            if r.vms == 1 { "" } else { "s" },
            r.samples
        );
    }
    h.push_str("</section>");

    // Activity by type.
    h.push_str("<section id=\"activity\"><h2>Activity by type</h2>");
    if c.activity.is_empty() {
        h.push_str(&svg::empty("No activity in this period."));
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

    if let Some(inv) = &d.invoice {
        invoice_section(h, inv);
    }
}

fn invoice_section(h: &mut String, inv: &InvoiceView) {
    let (title, state) = match inv.state {
        InvoiceState::Final => ("Invoice", "final"),
        InvoiceState::Projected => ("Invoice preview", "projected"),
        InvoiceState::Future => ("Invoice", "not started"),
    };
    let _ = write!(
        h,
        "<section id=\"invoice\" data-month=\"{m}\" data-state=\"{s}\"><h2>{title} {m} <small>({s}, {span})</small></h2>",
        m = esc(&inv.month.label),
        s = state,
        span = esc(&span(&inv.month))
    );
    let p = match &inv.preview {
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
    // Minor units follow each currency's ISO 4217 exponent (JPY has none),
    // as the invoice lines sent to Stripe do; the config already refused a
    // currency it cannot scale, so the fallback is never used for one.
    let exp = |c: &str| minor_exponent(c).unwrap_or(2);
    let (bx, ox) = (exp(&p.currency), exp(&p.overage_currency));
    let fm = |m: i64| format_minor_exp(m, bx);
    let fo = |m: i64| format_minor_exp(m, ox);
    h.push_str("<table><tbody>");
    for l in p.lines.iter().filter(|l| l.line == "base") {
        let _ = write!(
            h,
            "<tr><td>Base fee: {}</td><td class=\"n\">{cur} {}</td></tr>",
            esc(&l.description),
            fm(l.amount_minor)
        );
    }
    if !p.lines.iter().any(|l| l.line == "base") {
        let _ = write!(
            h,
            "<tr id=\"no-base\"><td>Base fee: none <small>({})</small></td><td class=\"n\">{cur} {}</td></tr>",
            esc(&inv.no_base_reason),
            fm(0)
        );
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
        "<tr><td>Overage{}</td><td class=\"n\">{ocur} {}</td></tr>",
        if inv.state == InvoiceState::Projected {
            " so far"
        } else {
            ""
        },
        fo(p.overage_minor)
    );
    if inv.state == InvoiceState::Final && p.overage_currency == p.currency {
        let _ = write!(
            h,
            "<tr class=\"total\"><td>Total</td><td class=\"n\">{cur} {}</td></tr>",
            fm(p.base_minor + p.overage_minor)
        );
    }
    if inv.state == InvoiceState::Projected {
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
                fo(o)
            );
            if p.overage_currency == p.currency {
                let _ = write!(
                    h,
                    "<tr class=\"total\"><td>Projected total</td><td class=\"n\">{cur} {}</td></tr>",
                    fm(p.base_minor + o)
                );
            }
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
