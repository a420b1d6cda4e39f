//! Text views for people: aligned tables, thousands separators, numbers
//! rounded for reading (the exact values are in CSV and JSON).

use std::io::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{money4, pct};
use crate::config::Billing;
use crate::error::Result;
use crate::output::{
    escape_text as esc, fixed, thousands, wrap, write_table, write_table_fit, Align, TextStyle,
};
use crate::report::fleet::{human_age, Fleet, State};
use crate::report::glance::Glance;
use crate::report::invoice::Invoice;
use crate::report::period::tz_label;
use crate::report::{Period, SeriesRow, Summary};
use crate::time;

const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn sparkline(values: &[f64]) -> String {
    let max = values.iter().cloned().fold(0.0f64, f64::max);
    values
        .iter()
        .map(|v| {
            if max <= 0.0 {
                SPARKS[0]
            } else {
                SPARKS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// A local date and time in `tz`, minutes unless the seconds matter:
/// `2026-11-10 08:30`, `2026-11-10 08:30:15`.
pub fn local(t: &DateTime<Utc>, tz: Tz) -> String {
    let l = t.with_timezone(&tz);
    if t.timestamp_subsec_nanos() == 0 && t.timestamp() % 60 == 0 {
        l.format("%Y-%m-%d %H:%M").to_string()
    } else if t.timestamp_subsec_nanos() == 0 {
        l.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        l.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
    }
}

/// [`local`] with the zone's abbreviation: `2026-12-02 13:00 CET`.
pub fn local_z(t: &DateTime<Utc>, tz: Tz) -> String {
    format!("{} {}", local(t, tz), t.with_timezone(&tz).format("%Z"))
}

/// How a period reads in a header: a calendar period by its label and its
/// first and last local day (`month 2026-11: 2026-11-01 to 2026-11-30`), a
/// custom range by its local start and (exclusive) end, once; then the
/// zone. The UTC instants follow on a line of their own when the zone is
/// not UTC.
pub fn period_lines(p: &Period) -> (String, Option<String>) {
    let zone = tz_label(p.tz, p.start);
    let what = match p.kind.as_str() {
        "day" => format!("day {}", p.label),
        "week" | "month" => {
            let first = p.start.with_timezone(&p.tz).date_naive();
            let last = (p.end - chrono::Duration::nanoseconds(1))
                .with_timezone(&p.tz)
                .date_naive();
            format!("{} {}: {first} to {last}", p.kind, p.label)
        }
        _ => format!("{} to {}", local(&p.start, p.tz), local(&p.end, p.tz)),
    };
    let utc = (p.tz != chrono_tz::UTC).then(|| {
        format!(
            "UTC {} to {}",
            time::format_rfc3339(&p.start),
            time::format_rfc3339(&p.end)
        )
    });
    (format!("{what}, {zone}"), utc)
}

/// A no-break space: [`write_wrapped`] does not break a line there (it
/// keeps "network in 3.0 MB" together) and prints it as a space.
const NB: char = '\u{a0}';

/// Write `text` word-wrapped to the style's width, continuation lines
/// indented by `indent` more than the first line's `lead`.
fn write_wrapped(
    out: &mut dyn Write,
    style: &TextStyle,
    lead: &str,
    text: &str,
    indent: usize,
) -> Result<()> {
    let lw = lead.chars().count();
    for l in wrap(text, style.width.saturating_sub(lw), indent) {
        writeln!(out, "{lead}{}", l.replace(NB, " "))?;
    }
    Ok(())
}

/// `text` with its spaces made no-break, to wrap as one word.
fn keep(text: &str) -> String {
    text.replace(' ', &NB.to_string())
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!(
        "{} {}",
        thousands(n.into()),
        if n == 1 { one } else { many }
    )
}

/// The usage summary, with each customer's tier, status and usage while
/// inactive; `glance` holds the daily sparklines to draw (the
/// caller decides when they are worth it: terminals, periods over a day).
pub fn summary(
    s: &Summary,
    glance: Option<&[Glance]>,
    style: &TextStyle,
    out: &mut dyn Write,
) -> Result<()> {
    let p = &s.period;
    let tz = p.tz;
    let standing = &s.standing;
    let (what, utc) = period_lines(p);
    writeln!(out, "{}", style.bold(&format!("Usage {what}")))?;
    if let Some(u) = utc {
        writeln!(out, "{u}")?;
    }
    writeln!(
        out,
        "Generated {}; {}.",
        local_z(&s.generated_at, tz),
        match s.as_of {
            Some(t) => format!("events ingested up to {}", local_z(&t, tz)),
            None => "all ingested events".to_string(),
        }
    )?;
    writeln!(
        out,
        "Costs: USD, exact sums shown to 4 decimals. GB = 10^9 B, MB = 10^6 B."
    )?;
    if s.customers.is_empty() {
        writeln!(out, "\nNo usage in this period.")?;
        return Ok(());
    }
    for c in &s.customers {
        writeln!(out)?;
        let st = standing.iter().find(|x| x.customer_id == c.customer_id);
        let mut head = style.bold(&format!("Customer {}", c.customer_id));
        if !c.registered {
            head.push(' ');
            head.push_str(&style.warn("(not registered)"));
        } else if let Some(st) = st {
            let status = st.status.as_deref().unwrap_or("-");
            let status = if status == "active" {
                status.to_string()
            } else {
                style.warn(status)
            };
            head.push_str(&format!(
                "  tier {}, {status}",
                esc(st.tier.as_deref().unwrap_or("-"))
            ));
        }
        if !c.price_tables.is_empty() {
            head.push_str(&format!("  [prices: {}]", esc(&c.price_tables.join(", "))));
        }
        writeln!(out, "{head}")?;
        if let Some(st) = st {
            if !st.changes.is_empty() {
                let list: Vec<String> = st
                    .changes
                    .iter()
                    .map(|ch| {
                        format!(
                            "{} {} from {}",
                            ch.field,
                            esc(&ch.value),
                            local(&ch.effective, tz)
                        )
                    })
                    .collect();
                write_wrapped(
                    out,
                    style,
                    "  ",
                    &format!("Changes in the period: {}", list.join("; ")),
                    4,
                )?;
            }
            for u in &st.inactive {
                let a = &u.api;
                let text = [
                    keep(&format!("! Usage while {},", u.status)),
                    keep(&format!(
                        "{} to {}:",
                        local(&u.start, tz),
                        local(&u.end, tz)
                    )),
                    keep(&format!("{},", plural(a.requests, "request", "requests"))),
                    keep(&format!("{},", plural(a.total_tokens(), "token", "tokens"))),
                    keep(&format!("USD {};", money4(a.cost_nusd))),
                    keep(&format!(
                        "{};",
                        plural(u.activity_events, "activity event", "activity events")
                    )),
                    keep(&plural(
                        u.resource_samples as i64,
                        "resource sample",
                        "resource samples",
                    )),
                ]
                .join(" ");
                for l in wrap(&text, style.width.saturating_sub(2), 4) {
                    writeln!(out, "  {}", style.warn(&l.replace(NB, " ")))?;
                }
            }
        }
        if let Some(g) = glance.and_then(|g| g.iter().find(|g| g.customer_id == c.customer_id)) {
            let (cost, cpu) = (sparkline(&g.cost_usd), sparkline(&g.cpu_percent));
            let one = format!("  daily cost {cost}  cpu {cpu}");
            if one.chars().count() <= style.width {
                writeln!(out, "{one}")?;
            } else {
                // A 31-day month does not fit 80 columns on one line.
                writeln!(out, "  daily cost {cost}\n  daily cpu  {cpu}")?;
            }
        }
        if !c.api.is_empty() {
            let mut rows: Vec<Vec<String>> = c
                .api
                .iter()
                .map(|m| {
                    let u = &m.usage;
                    vec![
                        esc(&m.provider).into_owned(),
                        esc(&m.model).into_owned(),
                        thousands(u.requests.into()),
                        thousands(u.tokens_in.into()),
                        thousands(u.tokens_out.into()),
                        thousands(u.cache_read_tokens.into()),
                        thousands(u.cache_write_tokens.into()),
                        thousands(u.total_tokens().into()),
                        money4(u.cost_nusd) + if u.unpriced_requests > 0 { " *" } else { "" },
                    ]
                })
                .collect();
            let t = &c.api_total;
            rows.push(vec![
                "total".into(),
                String::new(),
                thousands(t.requests.into()),
                thousands(t.tokens_in.into()),
                thousands(t.tokens_out.into()),
                thousands(t.cache_read_tokens.into()),
                thousands(t.cache_write_tokens.into()),
                thousands(t.total_tokens().into()),
                money4(t.cost_nusd) + if t.unpriced_requests > 0 { " *" } else { "" },
            ]);
            // Too wide for the terminal: the totals first, the token
            // breakdown in a second table.
            write_table_fit(
                out,
                "  ",
                style.width,
                &[
                    "PROVIDER",
                    "MODEL",
                    "REQUESTS",
                    "TOKENS IN",
                    "TOKENS OUT",
                    "CACHE READ",
                    "CACHE WRITE",
                    "TOTAL TOKENS",
                    "COST USD",
                ],
                &[
                    Align::Left,
                    Align::Left,
                    Align::Right,
                    Align::Right,
                    Align::Right,
                    Align::Right,
                    Align::Right,
                    Align::Right,
                    Align::Right,
                ],
                &rows,
                2,
                &[&[2, 7, 8], &[3, 4, 5, 6]],
            )?;
            if t.unpriced_requests > 0 {
                writeln!(
                    out,
                    "  * {} requests have no price and no cost",
                    thousands(t.unpriced_requests.into())
                )?;
            }
        }
        let r = &c.resource;
        if r.vms > 0 {
            // Network is missing, not zero, without a sample interval.
            let net = |b: f64| {
                if super::has_network(r) {
                    fixed(b / 1e6, 1)
                } else {
                    "-".to_string()
                }
            };
            let text = [
                keep(&format!(
                    "Resources: cpu {} %,",
                    or_dash(pct(r.avg_cpu_percent))
                )),
                keep(&format!("memory {} %,", or_dash(pct(r.avg_memory_percent)))),
                keep(&format!(
                    "disk {} GB,",
                    or_dash(
                        r.max_disk_bytes
                            .map(|b| fixed(b as f64 / 1e9, 1))
                            .unwrap_or_default()
                    )
                )),
                keep(&format!("network in {} MB,", net(r.net_in_bytes))),
                keep(&format!("out {} MB;", net(r.net_out_bytes))),
                keep(&format!(
                    "coverage {} %",
                    or_dash(r.coverage.map(|v| fixed(v * 100.0, 1)).unwrap_or_default())
                )),
                keep(&format!(
                    "({} VM{}, {} sample{})",
                    r.vms,
                    if r.vms == 1 { "" } else { "s" },
                    r.samples,
                    if r.samples == 1 { "" } else { "s" }
                )),
            ]
            .join(" ");
            write_wrapped(out, style, "  ", &text, 4)?;
            if !r.unregistered_vms.is_empty() {
                writeln!(
                    out,
                    "  ! usage from VMs not registered to {}: {}",
                    c.customer_id,
                    r.unregistered_vms.join(", ")
                )?;
            }
            skipped_note(r.cpu_skipped_intervals, out)?;
        }
        if !c.activity.is_empty() {
            let rows: Vec<Vec<String>> = c
                .activity
                .iter()
                .map(|a| {
                    vec![
                        esc(&a.activity_type).into_owned(),
                        thousands(a.count.into()),
                        fixed(a.duration_seconds, 1),
                    ]
                })
                .collect();
            write_table_fit(
                out,
                "  ",
                style.width,
                &["ACTIVITY", "COUNT", "DURATION S"],
                &[Align::Left, Align::Right, Align::Right],
                &rows,
                1,
                &[],
            )?;
        }
    }
    Ok(())
}

/// The tidy series, buckets in local time of `tz`.
pub fn series(rows: &[SeriesRow], tz: Tz, out: &mut dyn Write) -> Result<()> {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.bucket_start
                    .with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M")
                    .to_string(),
                r.customer_id.clone(),
                r.metric.to_string(),
                r.value.clone(),
            ]
        })
        .collect();
    write_table(
        out,
        &["BUCKET", "CUSTOMER", "METRIC", "VALUE"],
        &[Align::Left, Align::Left, Align::Left, Align::Right],
        &table,
    )
}

/// The invoice lines and their total. When the table is wider than the
/// terminal, each line's description (its arithmetic) moves under the
/// line, wrapped.
pub fn invoice(
    inv: &Invoice,
    billing: &Billing,
    style: &TextStyle,
    out: &mut dyn Write,
) -> Result<()> {
    let p = &inv.period;
    let (what, utc) = period_lines(p);
    let mut head = format!(
        "Invoice {what}; amounts in {}, rounded once per line half-up to the minor unit; {}",
        billing.currency,
        match &inv.fx {
            Some(f) => format!(
                "USD costs converted at {} {}/USD ({}, {})",
                f.rate.normalize(),
                billing.currency,
                esc(&f.source),
                esc(&f.date)
            ),
            None => "no USD costs to convert".into(),
        }
    );
    if let Some(u) = utc {
        head.push_str(&format!("; {u}"));
    }
    let lines = wrap(&head, style.width, 4);
    for (n, l) in lines.iter().enumerate() {
        if n == 0 {
            writeln!(out, "{}", style.bold(l))?;
        } else {
            writeln!(out, "{l}")?;
        }
    }
    let amount_head = format!("AMOUNT {}", billing.currency);
    let total: i64 = inv.lines.iter().map(|l| l.amount_minor).sum();
    // Validated when the config was loaded; 2 is only a fallback.
    let exp = crate::money::minor_exponent(&billing.currency).unwrap_or(2);
    let mut rows: Vec<Vec<String>> = Vec::new();
    for l in &inv.lines {
        rows.push(vec![
            esc(&l.customer_id).into_owned(),
            esc(&l.line).into_owned(),
            esc(&l.description).into_owned(),
            crate::money::format_minor_exp(l.amount_minor, exp),
        ]);
    }
    rows.push(vec![
        "total".into(),
        String::new(),
        String::new(),
        crate::money::format_minor_exp(total, exp),
    ]);
    writeln!(out)?;
    let headers = ["CUSTOMER", "LINE", "DESCRIPTION", amount_head.as_str()];
    let aligns = [Align::Left, Align::Left, Align::Left, Align::Right];
    if crate::output::table_width(&headers, &rows) <= style.width {
        return write_table(out, &headers, &aligns, &rows);
    }
    // Narrow: CUSTOMER, LINE, AMOUNT, the description under each line.
    let short: Vec<Vec<String>> = rows
        .iter()
        .map(|r| vec![r[0].clone(), r[1].clone(), r[3].clone()])
        .collect();
    let mut buf = Vec::new();
    write_table(
        &mut buf,
        &["CUSTOMER", "LINE", amount_head.as_str()],
        &[Align::Left, Align::Left, Align::Right],
        &short,
    )?;
    let text = String::from_utf8_lossy(&buf);
    for (n, l) in text.lines().enumerate() {
        writeln!(out, "{l}")?;
        if n >= 1 && !rows[n - 1][2].is_empty() {
            write_wrapped(out, style, "    ", &rows[n - 1][2], 2)?;
        }
    }
    Ok(())
}

/// Fleet freshness (`mb-report vms`): one line per VM, then the latest
/// ingest runs. Times are local to `tz`, to the minute.
pub fn vms(f: &Fleet, tz: Tz, style: &TextStyle, out: &mut dyn Write) -> Result<()> {
    let local = |t: &chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
    };
    writeln!(
        out,
        "Fleet at {} ({}); api and activity events since {}.",
        local(&f.until),
        tz_label(tz, f.until),
        local(&f.since)
    )?;
    if f.vms.is_empty() {
        writeln!(out, "\nNo VM is registered or has reported.")?;
    } else {
        let rows: Vec<Vec<String>> = f
            .vms
            .iter()
            .map(|v| {
                let s = v.last_sample.as_ref();
                vec![
                    esc(&v.vm_id).into_owned(),
                    esc(v.customer_id.as_deref().unwrap_or("-")).into_owned(),
                    s.map_or_else(|| "-".into(), |s| local(&s.ts)),
                    s.map_or_else(|| "-".into(), |s| human_age(s.age_seconds)),
                    v.api.last.as_ref().map_or_else(|| "-".into(), local),
                    v.activity.last.as_ref().map_or_else(|| "-".into(), local),
                    s.map_or_else(|| "-".into(), |s| format!("run {}", s.run_id)),
                    match v.state {
                        State::Ok => "ok".into(),
                        State::Stale if s.is_none() => "STALE (never sampled)".into(),
                        State::Stale => {
                            format!("STALE (> {})", human_age(v.stale_after_seconds))
                        }
                        State::NoSamples => "no samples".into(),
                    },
                ]
            })
            .collect();
        writeln!(out)?;
        // Too wide for the terminal: freshness first, the other events in
        // a second table.
        write_table_fit(
            out,
            "  ",
            style.width,
            &[
                "VM",
                "CUSTOMER",
                "LAST SAMPLE",
                "AGE",
                "LAST API",
                "LAST ACTIVITY",
                "STORED BY",
                "STATE",
            ],
            &[
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Right,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
            ],
            &rows,
            1,
            &[&[1, 2, 3, 7], &[4, 5, 6]],
        )?;
        let stale = f.stale();
        writeln!(
            out,
            "\n{stale} of {} VM{} stale.",
            f.vms.len(),
            if f.vms.len() == 1 { "" } else { "s" }
        )?;
    }
    if !f.ingest_runs.is_empty() {
        writeln!(out, "\nLatest ingest runs:")?;
        let rows: Vec<Vec<String>> = f
            .ingest_runs
            .iter()
            .map(|r| {
                let t =
                    |s: &str| time::parse_rfc3339(s).map_or_else(|| s.to_string(), |t| local(&t));
                vec![
                    r.run_id.to_string(),
                    t(&r.started_at),
                    r.finished_at.as_deref().map_or_else(|| "-".into(), t),
                    r.status.clone(),
                    thousands(r.read.into()),
                    thousands(r.inserted.into()),
                    thousands(r.duplicates.into()),
                    thousands(r.conflicts.into()),
                    thousands(r.rejected.into()),
                    esc(&r.source).into_owned(),
                ]
            })
            .collect();
        write_table_fit(
            out,
            "  ",
            style.width,
            &[
                "RUN",
                "STARTED",
                "FINISHED",
                "STATUS",
                "READ",
                "INSERTED",
                "DUPLICATES",
                "CONFLICTS",
                "REJECTED",
                "SOURCE",
            ],
            &[
                Align::Right,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Left,
            ],
            &rows,
            1,
            &[&[1, 2, 3, 9], &[4, 5, 6, 7, 8]],
        )?;
    }
    Ok(())
}

/// The per-VM breakdown: one table per customer, a total line (disks
/// summed across VMs) and a mark on VMs the registry does not list for the
/// customer. Times are local to `tz`.
pub fn by_vm(s: &Summary, tz: Tz, style: &TextStyle, out: &mut dyn Write) -> Result<()> {
    let p = &s.period;
    writeln!(
        out,
        "Usage per VM {} {}: {} to {} ({}). GB = 10^9 B, MB = 10^6 B; last sample in {}.",
        p.kind,
        p.label,
        time::format_rfc3339(&p.start),
        time::format_rfc3339(&p.end),
        tz_label(p.tz, p.start),
        tz.name()
    )?;
    let with_vms: Vec<_> = s.customers.iter().filter(|c| c.resource.vms > 0).collect();
    if with_vms.is_empty() {
        writeln!(out, "\nNo resource samples in this period.")?;
        return Ok(());
    }
    let dash = |v: Option<String>| or_dash(v.unwrap_or_default());
    let mb = |b: Option<i64>| b.map(|b| fixed(b as f64 / 1e6, 1));
    for c in with_vms {
        writeln!(out, "\nCustomer {}", c.customer_id)?;
        let r = &c.resource;
        let mut rows: Vec<Vec<String>> = r
            .by_vm
            .iter()
            .map(|v| {
                vec![
                    if r.unregistered_vms.contains(&v.vm_id) {
                        format!("{} !", v.vm_id)
                    } else {
                        v.vm_id.clone()
                    },
                    thousands(v.samples.into()),
                    dash(v.last_sample_ns.map(|t| {
                        time::from_unix_nanos(t)
                            .with_timezone(&tz)
                            .format("%Y-%m-%d %H:%M")
                            .to_string()
                    })),
                    dash(v.avg_cpu_percent.map(|x| fixed(x, 1))),
                    dash(v.avg_memory_percent.map(|x| fixed(x, 1))),
                    dash(v.max_disk_bytes.map(|b| fixed(b as f64 / 1e9, 1))),
                    dash(mb(v.net_in_bytes)),
                    dash(mb(v.net_out_bytes)),
                    dash(v.coverage.map(|x| fixed(x * 100.0, 1))),
                    thousands(v.gaps.into()),
                    thousands(v.counter_resets.into()),
                    thousands(v.reboots.into()),
                ]
            })
            .collect();
        rows.push(vec![
            format!("total ({})", r.vms),
            thousands(r.samples.into()),
            String::new(),
            dash(r.avg_cpu_percent.map(|x| fixed(x, 1))),
            dash(r.avg_memory_percent.map(|x| fixed(x, 1))),
            dash(r.max_disk_bytes.map(|b| fixed(b as f64 / 1e9, 1))),
            fixed(r.net_in_bytes / 1e6, 1),
            fixed(r.net_out_bytes / 1e6, 1),
            dash(r.coverage.map(|x| fixed(x * 100.0, 1))),
            thousands(r.gaps.into()),
            thousands(r.counter_resets.into()),
            thousands(r.reboots.into()),
        ]);
        let mut aligns = vec![Align::Left, Align::Right, Align::Left];
        aligns.extend([Align::Right; 9]);
        // Too wide for the terminal: usage first, the counters' events in
        // a second table.
        write_table_fit(
            out,
            "  ",
            style.width,
            &[
                "VM",
                "SAMPLES",
                "LAST SAMPLE",
                "CPU %",
                "MEM %",
                "DISK GB",
                "IN MB",
                "OUT MB",
                "COVER %",
                "GAPS",
                "RESETS",
                "REBOOTS",
            ],
            &aligns,
            &rows,
            1,
            &[&[1, 2, 3, 4, 5, 6, 7, 8], &[9, 10, 11]],
        )?;
        if !r.unregistered_vms.is_empty() {
            writeln!(
                out,
                "  ! not registered to {}: {} (mb-customer set {} --add-vm VM)",
                c.customer_id,
                r.unregistered_vms.join(", "),
                c.customer_id
            )?;
        }
        skipped_note(r.cpu_skipped_intervals, out)?;
    }
    Ok(())
}

/// The note under a resource line when flagged intervals were left out of
/// the CPU average.
fn skipped_note(n: u64, out: &mut dyn Write) -> Result<()> {
    if n > 0 {
        writeln!(
            out,
            "  * {} interval{} left out of CPU: mb-sample flagged the ticks wrong",
            thousands(n.into()),
            if n == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}
