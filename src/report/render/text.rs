//! Text views for people: aligned tables, thousands separators, numbers
//! rounded for reading (the exact values are in CSV and JSON).

use std::io::Write;

use chrono_tz::Tz;

use super::{money4, pct};
use crate::config::Billing;
use crate::error::Result;
use crate::output::{fixed, thousands, write_table, Align};
use crate::report::glance::Glance;
use crate::report::invoice::Invoice;
use crate::report::period::tz_label;
use crate::report::{SeriesRow, Summary};
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

/// Write a table indented by two spaces.
fn indented_table(
    out: &mut dyn Write,
    headers: &[&str],
    aligns: &[Align],
    rows: &[Vec<String>],
) -> Result<()> {
    let mut buf = Vec::new();
    write_table(&mut buf, headers, aligns, rows)?;
    for l in String::from_utf8_lossy(&buf).lines() {
        writeln!(out, "  {l}")?;
    }
    Ok(())
}

/// The usage summary. `glance` holds the daily sparklines to draw (the
/// caller decides when they are worth it: terminals, periods over a day).
pub fn summary(s: &Summary, glance: Option<&[Glance]>, out: &mut dyn Write) -> Result<()> {
    let p = &s.period;
    writeln!(
        out,
        "Usage {} {}: {} to {} ({})",
        p.kind,
        p.label,
        time::format_rfc3339(&p.start),
        time::format_rfc3339(&p.end),
        tz_label(p.tz, p.start)
    )?;
    writeln!(
        out,
        "Generated {}; {}. Costs: USD, exact sums shown to 4 decimals. GB = 10^9 B, MB = 10^6 B.",
        time::format_rfc3339(&s.generated_at),
        match s.as_of {
            Some(t) => format!("events ingested up to {}", time::format_rfc3339(&t)),
            None => "all ingested events".to_string(),
        }
    )?;
    if s.customers.is_empty() {
        writeln!(out, "\nNo usage in this period.")?;
        return Ok(());
    }
    for c in &s.customers {
        writeln!(out)?;
        let mut head = format!("Customer {}", c.customer_id);
        if !c.registered {
            head.push_str(" (not registered)");
        }
        if !c.price_tables.is_empty() {
            head.push_str(&format!("  [prices: {}]", c.price_tables.join(", ")));
        }
        writeln!(out, "{head}")?;
        if let Some(g) = glance.and_then(|g| g.iter().find(|g| g.customer_id == c.customer_id)) {
            writeln!(
                out,
                "  daily cost {}  cpu {}",
                sparkline(&g.cost_usd),
                sparkline(&g.cpu_percent)
            )?;
        }
        if !c.api.is_empty() {
            let mut rows: Vec<Vec<String>> = c
                .api
                .iter()
                .map(|m| {
                    let u = &m.usage;
                    vec![
                        m.provider.clone(),
                        m.model.clone(),
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
            indented_table(
                out,
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
            writeln!(
                out,
                "  Resources: cpu {} %, memory {} %, disk {} GB, network in {} MB, out {} MB; coverage {} % ({} VMs, {} samples)",
                or_dash(pct(r.avg_cpu_percent)),
                or_dash(pct(r.avg_memory_percent)),
                or_dash(r.max_disk_bytes.map(|b| fixed(b as f64 / 1e9, 1)).unwrap_or_default()),
                fixed(r.net_in_bytes / 1e6, 1),
                fixed(r.net_out_bytes / 1e6, 1),
                or_dash(r.coverage.map(|v| fixed(v * 100.0, 1)).unwrap_or_default()),
                r.vms,
                r.samples
            )?;
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
                        a.activity_type.clone(),
                        thousands(a.count.into()),
                        fixed(a.duration_seconds, 1),
                    ]
                })
                .collect();
            indented_table(
                out,
                &["ACTIVITY", "COUNT", "DURATION S"],
                &[Align::Left, Align::Right, Align::Right],
                &rows,
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

/// The invoice lines and their total.
pub fn invoice(inv: &Invoice, billing: &Billing, out: &mut dyn Write) -> Result<()> {
    let p = &inv.period;
    writeln!(
        out,
        "Invoice {}: {} to {} ({}); amounts in {}, rounded once per line half-up to the minor unit; {}",
        p.label,
        time::format_rfc3339(&p.start),
        time::format_rfc3339(&p.end),
        tz_label(p.tz, p.start),
        billing.currency,
        match &inv.fx {
            Some(f) => format!(
                "USD costs converted at {} {}/USD ({}, {})",
                f.rate.normalize(),
                billing.currency,
                f.source,
                f.date
            ),
            None => "no USD costs to convert".into(),
        }
    )?;
    // Validated when the config was loaded; 2 is only a fallback.
    let exp = crate::money::minor_exponent(&billing.currency).unwrap_or(2);
    let mut rows: Vec<Vec<String>> = Vec::new();
    for l in &inv.lines {
        rows.push(vec![
            l.customer_id.clone(),
            l.line.clone(),
            l.description.clone(),
            crate::money::format_minor_exp(l.amount_minor, exp),
        ]);
    }
    let total: i64 = inv.lines.iter().map(|l| l.amount_minor).sum();
    rows.push(vec![
        "total".into(),
        String::new(),
        String::new(),
        crate::money::format_minor_exp(total, exp),
    ]);
    writeln!(out)?;
    write_table(
        out,
        &[
            "CUSTOMER",
            "LINE",
            "DESCRIPTION",
            &format!("AMOUNT {}", billing.currency),
        ],
        &[Align::Left, Align::Left, Align::Left, Align::Right],
        &rows,
    )
}

/// The per-VM breakdown: one table per customer, a total line (disks
/// summed across VMs) and a mark on VMs the registry does not list for the
/// customer. Times are local to `tz`.
pub fn vms(s: &Summary, tz: Tz, out: &mut dyn Write) -> Result<()> {
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
        indented_table(
            out,
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
            "  * {} interval{} left out of CPU: the sampler flagged the ticks (cpu_counter_backwards, cpu_total_mismatch)",
            thousands(n.into()),
            if n == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}
