//! JSON views: one object (or array) per run, for programs. Field names
//! are only ever added, never renamed, so consumers keep working. Numbers
//! are exact: counts, tokens and minor units as JSON integers, money as
//! exact decimal strings (USD and nano-USD), bytes and ticks unrounded
//! beside the rounded MB and percent fields of the first version, and a
//! missing value is `null`, never 0. The fields are documented in
//! docs/mb-report.md.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::Billing;
use crate::error::Result;
use crate::money::format_nanos;
use crate::report::invoice::Invoice;
use crate::report::meter::Meter;
use crate::report::render::has_network;
use crate::report::resource::VmUsage;
use crate::report::standing::Standing;
use crate::report::Period;
use crate::report::{CustomerSummary, SeriesRow, Summary};
use crate::store::report::ApiAgg;
use crate::time;

/// Write `v` and a newline.
fn emit(v: &impl serde::Serialize, out: &mut dyn Write) -> Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

fn api(u: &ApiAgg) -> Value {
    json!({
        "requests": u.requests,
        "failed_requests": u.failed_requests,
        "unpriced_requests": u.unpriced_requests,
        "tokens_in": u.tokens_in,
        "tokens_out": u.tokens_out,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "total_tokens": u.total_tokens(),
        "cost_usd": format_nanos(u.cost_nusd),
        "cost_nusd": u.cost_nusd.to_string(),
    })
}

/// The summary as one JSON object (shared with the dashboard API).
pub fn summary_value(s: &Summary) -> Value {
    let standing = Some(s.standing.as_slice());
    let customers: Vec<Value> = s
        .customers
        .iter()
        .map(|c| {
            let mut v = customer(c);
            if let Some(st) =
                standing.and_then(|x| x.iter().find(|x| x.customer_id == c.customer_id))
            {
                add_standing(&mut v, st);
            }
            v
        })
        .collect();
    json!({
        "report_type": "usage_report",
        "generated_at": time::format_rfc3339(&s.generated_at),
        "as_of": s.as_of.map(|t| time::format_rfc3339(&t)),
        "period": s.period,
        "units": {"cost": "USD, exact decimal string", "bytes": "B", "gb": "10^9 B", "mb": "10^6 B"},
        "customers": customers,
    })
}

fn add_standing(v: &mut Value, st: &Standing) {
    v["tier"] = st.tier.clone().into();
    v["status"] = st.status.clone().into();
    v["status_at"] = time::format_rfc3339(&st.at).into();
    v["changes"] = st
        .changes
        .iter()
        .map(|c| {
            json!({
                "field": c.field,
                "value": c.value,
                "effective": time::format_rfc3339(&c.effective),
            })
        })
        .collect();
    v["inactive_usage"] = st
        .inactive
        .iter()
        .map(|u| {
            json!({
                "status": u.status,
                "start": time::format_rfc3339(&u.start),
                "end": time::format_rfc3339(&u.end),
                "api": api(&u.api),
                "activity_events": u.activity_events,
                "resource_samples": u.resource_samples,
            })
        })
        .collect();
}

fn customer(c: &CustomerSummary) -> Value {
    let r = &c.resource;
    let net = has_network(r);
    let ticks = r.total_ticks > 0.0;
    json!({
        "customer_id": c.customer_id,
        "registered": c.registered,
        "price_tables": c.price_tables,
        "api": c.api.iter().map(|m| {
            let mut v = api(&m.usage);
            v["provider"] = m.provider.clone().into();
            v["model"] = m.model.clone().into();
            v
        }).collect::<Vec<_>>(),
        "api_total": api(&c.api_total),
        "resource": {
            "vms": r.vms,
            "samples": r.samples,
            "avg_cpu_percent": r.avg_cpu_percent.map(|v| (v * 10.0).round() / 10.0),
            "avg_memory_percent": r.avg_memory_percent.map(|v| (v * 10.0).round() / 10.0),
            "max_disk_gb": r.max_disk_bytes.map(|b| (b as f64 / 1e8).round() / 10.0),
            "max_disk_bytes": r.max_disk_bytes,
            "total_network_in_mb": net.then(|| (r.net_in_bytes / 1e5).round() / 10.0),
            "total_network_out_mb": net.then(|| (r.net_out_bytes / 1e5).round() / 10.0),
            "coverage_percent": r.coverage.map(|v| (v * 1000.0).round() / 10.0),
            "avg_cpu_percent_exact": r.avg_cpu_percent,
            "avg_memory_percent_exact": r.avg_memory_percent,
            "cpu_busy_ticks": ticks.then_some(r.busy_ticks as i64),
            "cpu_total_ticks": ticks.then_some(r.total_ticks as i64),
            "net_in_bytes": net.then_some(r.net_in_bytes as i64),
            "net_out_bytes": net.then_some(r.net_out_bytes as i64),
            "coverage": r.coverage,
            "cpu_skipped_intervals": r.cpu_skipped_intervals,
            "gaps": r.gaps,
            "counter_resets": r.counter_resets,
            "reboots": r.reboots,
            "unregistered_vms": r.unregistered_vms,
            "by_vm": r.by_vm.iter().map(vm).collect::<Vec<_>>(),
        },
        "activity": c.activity,
    })
}

/// One VM's line: exact sums, `null` where there is no value.
fn vm(v: &VmUsage) -> Value {
    json!({
        "vm_id": v.vm_id,
        "registered": v.registered,
        "samples": v.samples,
        "last_sample": v.last_sample_ns.map(|t| time::format_rfc3339(&time::from_unix_nanos(t))),
        "avg_cpu_percent": v.avg_cpu_percent,
        "avg_memory_percent": v.avg_memory_percent,
        "max_disk_bytes": v.max_disk_bytes,
        "net_in_bytes": v.net_in_bytes,
        "net_out_bytes": v.net_out_bytes,
        "coverage": v.coverage,
        "busy_ticks": v.busy_ticks,
        "total_ticks": v.total_ticks,
        "cpu_skipped_intervals": v.cpu_skipped_intervals,
        "gaps": v.gaps,
        "counter_resets": v.counter_resets,
        "reboots": v.reboots,
    })
}

/// The per-VM breakdown: per customer, its VMs and the total (disks
/// summed across VMs).
pub fn by_vm(s: &Summary, out: &mut dyn Write) -> Result<()> {
    let customers: Vec<Value> = s
        .customers
        .iter()
        .filter(|c| c.resource.vms > 0)
        .map(|c| {
            let r = &c.resource;
            json!({
                "customer_id": c.customer_id,
                "registered": c.registered,
                "vms": r.by_vm.iter().map(vm).collect::<Vec<_>>(),
                "unregistered_vms": r.unregistered_vms,
                "total": {
                    "vms": r.vms,
                    "samples": r.samples,
                    "avg_cpu_percent": r.avg_cpu_percent,
                    "avg_memory_percent": r.avg_memory_percent,
                    "disk_bytes": r.max_disk_bytes,
                    "net_in_bytes": r.net_in_bytes as i64,
                    "net_out_bytes": r.net_out_bytes as i64,
                    "coverage": r.coverage,
                    "cpu_skipped_intervals": r.cpu_skipped_intervals,
                    "gaps": r.gaps,
                    "counter_resets": r.counter_resets,
                    "reboots": r.reboots,
                },
            })
        })
        .collect();
    emit(
        &json!({
            "report_type": "vm_usage",
            "generated_at": time::format_rfc3339(&s.generated_at),
            "as_of": s.as_of.map(|t| time::format_rfc3339(&t)),
            "period": s.period,
            "units": {"bytes": "B", "ticks": "USER_HZ", "coverage": "fraction of the period"},
            "customers": customers,
        }),
        out,
    )
}

/// The summary.
pub fn summary(s: &Summary, out: &mut dyn Write) -> Result<()> {
    emit(&summary_value(s), out)
}

/// The tidy series as an array of rows.
pub fn series(rows: &[SeriesRow], out: &mut dyn Write) -> Result<()> {
    emit(&rows, out)
}

/// The invoice: its terms and lines.
pub fn invoice(
    inv: &Invoice,
    billing: &Billing,
    as_of: Option<DateTime<Utc>>,
    out: &mut dyn Write,
) -> Result<()> {
    let v = json!({
        "report_type": "invoice",
        "generated_at": time::format_rfc3339(&inv.generated_at),
        "as_of": as_of.map(|t| time::format_rfc3339(&t)),
        "period": inv.period,
        "currency": billing.currency,
        "rounding": "once per line, half away from zero, to minor units",
        "included_tokens": billing.included_tokens,
        "markup_percent": billing.markup_percent.normalize().to_string(),
        "fx": inv.fx,
        "lines": inv.lines,
        "total_minor": inv.lines.iter().map(|l| l.amount_minor).sum::<i64>(),
    });
    emit(&v, out)
}

/// Fleet freshness as one object: `{since, until, stale_after_seconds,
/// vms: [...], ingest_runs: [...]}` (the dashboard's `/api/v1/vms` too).
pub fn vms(f: &crate::report::fleet::Fleet, out: &mut dyn Write) -> Result<()> {
    emit(f, out)
}

/// The Stripe meter events with what was left out and why (the same events
/// as the CSV, for programs).
pub fn stripe_meter(
    m: &Meter,
    period: &Period,
    as_of: Option<DateTime<Utc>>,
    out: &mut dyn Write,
) -> Result<()> {
    let v = json!({
        "report_type": "stripe_meter",
        "as_of": as_of.map(|t| time::format_rfc3339(&t)),
        "period": period,
        "events": m.events,
        "left_out": m.refused.iter().map(|(d, why)| json!({"day": d.to_string(), "reason": why})).collect::<Vec<_>>(),
        "missing_stripe_customer_id": m.missing,
    });
    emit(&v, out)
}
