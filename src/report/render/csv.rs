//! CSV views: the sectioned summary layout admins' spreadsheets know
//! (extended only by appending columns), the tidy series, the invoice lines
//! and the Stripe meter events. Text cells go through [`csv_text`] against
//! formula injection; numbers are written as they are.

use std::io::Write;

use super::{csv_err, money4, pct};
use crate::error::Result;
use crate::output::{csv_text, fixed};
use crate::report::fleet::Fleet;
use crate::report::invoice::{Invoice, CSV_HEADER};
use crate::report::meter::Meter;
use crate::report::{SeriesRow, Summary};
use crate::store::report::ApiAgg;
use crate::time;

/// A CSV writer that can also write the blank lines between sections (the
/// csv crate writes an empty record as `""`).
struct Sections<'a> {
    out: &'a mut dyn Write,
}

impl Sections<'_> {
    fn write_record<I, T>(&mut self, rec: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut w = ::csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        w.write_record(rec).map_err(csv_err)?;
        let bytes = w
            .into_inner()
            .map_err(|e| csv_err(::csv::Error::from(std::io::Error::other(e.to_string()))))?;
        self.out.write_all(&bytes)?;
        Ok(())
    }

    fn blank(&mut self) -> Result<()> {
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// The summary in the sectioned layout (DESIGN.md appendix), one block per
/// customer separated by a blank line. Columns are only ever appended:
/// the header block gained the period, zone, cutoff, price tables, units,
/// then tier, status and the usage recorded while suspended or cancelled;
/// API Usage gained "Requests".
pub fn summary(s: &Summary, out: &mut dyn Write) -> Result<()> {
    let standing = &s.standing;
    let mut w = Sections { out };
    let gen = time::format_rfc3339(&s.generated_at);
    let as_of = s
        .as_of
        .map(|t| time::format_rfc3339(&t))
        .unwrap_or_default();
    for (i, c) in s.customers.iter().enumerate() {
        if i > 0 {
            w.blank()?;
        }
        w.write_record([
            "Report Type",
            "Generated At",
            "Customer ID",
            "Period",
            "Period Start",
            "Period End",
            "Time Zone",
            "As Of",
            "Price Tables",
            "Units",
            "Tier",
            "Status",
            "Inactive Requests",
            "Inactive Tokens",
            "Inactive Cost USD",
            "Inactive Activity Events",
            "Inactive Resource Samples",
        ])?;
        let st = standing.iter().find(|x| x.customer_id == c.customer_id);
        let mut inactive = ApiAgg::default();
        let (mut events, mut samples) = (0i64, 0u64);
        for u in st.map(|x| x.inactive.as_slice()).unwrap_or_default() {
            inactive.add(&u.api, 1);
            events += u.activity_events;
            samples += u.resource_samples;
        }
        w.write_record([
            "usage_report".to_string(),
            gen.clone(),
            csv_text(&c.customer_id),
            s.period.kind.clone(),
            time::format_rfc3339(&s.period.start),
            time::format_rfc3339(&s.period.end),
            s.period.tz.name().to_string(),
            as_of.clone(),
            csv_text(&c.price_tables.join(" ")),
            "USD exact sums shown to 4 decimals; GB=10^9 B; MB=10^6 B".to_string(),
            csv_text(st.and_then(|x| x.tier.as_deref()).unwrap_or_default()),
            csv_text(st.and_then(|x| x.status.as_deref()).unwrap_or_default()),
            inactive.requests.to_string(),
            inactive.total_tokens().to_string(),
            money4(inactive.cost_nusd),
            events.to_string(),
            samples.to_string(),
        ])?;
        w.blank()?;
        w.write_record(["API Usage"])?;
        w.write_record([
            "Provider",
            "Model",
            "Tokens In",
            "Tokens Out",
            "Total Tokens",
            "Cost USD",
            "Cache Read Tokens",
            "Cache Write Tokens",
            "Requests",
        ])?;
        for m in &c.api {
            let u = &m.usage;
            w.write_record([
                csv_text(&m.provider),
                csv_text(&m.model),
                u.tokens_in.to_string(),
                u.tokens_out.to_string(),
                u.total_tokens().to_string(),
                money4(u.cost_nusd),
                u.cache_read_tokens.to_string(),
                u.cache_write_tokens.to_string(),
                u.requests.to_string(),
            ])?;
        }
        w.blank()?;
        w.write_record([
            "Total API Cost USD".to_string(),
            money4(c.api_total.cost_nusd),
        ])?;
        w.blank()?;
        w.write_record(["Resource Usage"])?;
        w.write_record(["Metric", "Value"])?;
        let r = &c.resource;
        // Missing (empty), not 0.0, when no sample interval fell in the
        // period, as for CPU.
        let net = |b: f64| {
            if super::has_network(r) {
                fixed(b / 1e6, 1)
            } else {
                String::new()
            }
        };
        for (k, v) in [
            ("avg_cpu_percent", pct(r.avg_cpu_percent)),
            ("avg_memory_percent", pct(r.avg_memory_percent)),
            (
                "max_disk_gb",
                r.max_disk_bytes
                    .map(|b| fixed(b as f64 / 1e9, 1))
                    .unwrap_or_default(),
            ),
            ("total_network_in_mb", net(r.net_in_bytes)),
            ("total_network_out_mb", net(r.net_out_bytes)),
        ] {
            w.write_record([k.to_string(), v])?;
        }
        w.blank()?;
        w.write_record(["Activity"])?;
        w.write_record(["Activity Type", "Count", "Total Duration (seconds)"])?;
        for a in &c.activity {
            w.write_record([
                csv_text(&a.activity_type),
                a.count.to_string(),
                fixed(a.duration_seconds, 1),
            ])?;
        }
    }
    w.flush()
}

/// The tidy series: one row per bucket x customer x metric.
pub fn series(rows: &[SeriesRow], out: &mut dyn Write) -> Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record([
        "bucket_start",
        "bucket_end",
        "customer_id",
        "metric",
        "value",
    ])
    .map_err(csv_err)?;
    for r in rows {
        w.write_record([
            time::format_rfc3339(&r.bucket_start),
            time::format_rfc3339(&r.bucket_end),
            csv_text(&r.customer_id),
            r.metric.to_string(),
            r.value.clone(),
        ])
        .map_err(csv_err)?;
    }
    w.flush()?;
    Ok(())
}

/// The invoice lines, columns as [`CSV_HEADER`].
pub fn invoice(inv: &Invoice, out: &mut dyn Write) -> Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER).map_err(csv_err)?;
    for l in &inv.lines {
        w.write_record([
            csv_text(&l.customer_id),
            csv_text(&l.stripe_customer_id),
            l.period_start.clone(),
            l.period_end.clone(),
            l.line.clone(),
            csv_text(&l.description),
            l.quantity.clone(),
            l.unit.clone(),
            l.currency.clone(),
            l.amount_minor.to_string(),
            l.amount_unrounded.clone(),
            l.tokens.clone(),
            l.cost_usd.clone(),
            l.markup.clone(),
            l.fx_rate.clone(),
            csv_text(&l.idempotency_key),
            csv_text(&l.fx_source),
            csv_text(&l.fx_date),
        ])
        .map_err(csv_err)?;
    }
    w.flush()?;
    Ok(())
}

/// Stripe meter events, in the columns of Stripe's meter-event import.
pub fn stripe_meter(m: &Meter, out: &mut dyn Write) -> Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record([
        "identifier",
        "timestamp",
        "event_name",
        "payload_stripe_customer_id",
        "payload_value",
    ])
    .map_err(csv_err)?;
    for e in &m.events {
        w.write_record([
            e.identifier.clone(),
            e.timestamp.to_string(),
            csv_text(&e.event_name),
            csv_text(&e.stripe_customer_id),
            e.value.to_string(),
        ])
        .map_err(csv_err)?;
    }
    w.flush()?;
    Ok(())
}

/// Fleet freshness, one row per VM (the ingest runs are in the JSON and
/// text views). Times are RFC 3339 UTC; missing values are empty cells.
pub fn vms(f: &Fleet, out: &mut dyn Write) -> Result<()> {
    let mut w = ::csv::Writer::from_writer(&mut *out);
    w.write_record([
        "vm_id",
        "customer_id",
        "registered_to",
        "last_sample",
        "age_seconds",
        "interval_seconds",
        "cpu_percent",
        "memory_percent",
        "disk_used_bytes",
        "last_sample_run_id",
        "last_api",
        "api_events",
        "last_activity",
        "activity_events",
        "stale_after_seconds",
        "state",
    ])
    .map_err(csv_err)?;
    let t =
        |t: Option<&chrono::DateTime<chrono::Utc>>| t.map(time::format_rfc3339).unwrap_or_default();
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for v in &f.vms {
        let s = v.last_sample.as_ref();
        w.write_record([
            csv_text(&v.vm_id),
            csv_text(v.customer_id.as_deref().unwrap_or("")),
            csv_text(&v.registered_to.join(" ")),
            t(s.map(|s| &s.ts)),
            s.map(|s| s.age_seconds.to_string()).unwrap_or_default(),
            num(s.and_then(|s| s.interval_seconds)),
            num(s.and_then(|s| s.cpu_percent)),
            num(s.and_then(|s| s.memory_percent)),
            s.and_then(|s| s.disk_used_bytes)
                .map(|b| b.to_string())
                .unwrap_or_default(),
            s.map(|s| s.run_id.to_string()).unwrap_or_default(),
            t(v.api.last.as_ref()),
            v.api.count.to_string(),
            t(v.activity.last.as_ref()),
            v.activity.count.to_string(),
            v.stale_after_seconds.to_string(),
            v.state.as_str().to_string(),
        ])
        .map_err(csv_err)?;
    }
    w.flush()?;
    Ok(())
}

/// The per-VM breakdown: one row per customer and VM, exact values (bytes,
/// ticks, UTC times), empty where there is no value.
pub fn by_vm(s: &Summary, out: &mut dyn Write) -> Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record([
        "customer_id",
        "vm_id",
        "registered",
        "samples",
        "last_sample",
        "avg_cpu_percent",
        "avg_memory_percent",
        "max_disk_bytes",
        "net_in_bytes",
        "net_out_bytes",
        "coverage_percent",
        "busy_ticks",
        "total_ticks",
        "cpu_skipped_intervals",
        "gaps",
        "counter_resets",
        "reboots",
    ])
    .map_err(csv_err)?;
    let opt = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    for c in &s.customers {
        for v in &c.resource.by_vm {
            w.write_record([
                csv_text(&c.customer_id),
                csv_text(&v.vm_id),
                v.registered.to_string(),
                v.samples.to_string(),
                v.last_sample_ns
                    .map(|t| time::format_rfc3339(&time::from_unix_nanos(t)))
                    .unwrap_or_default(),
                pct(v.avg_cpu_percent),
                pct(v.avg_memory_percent),
                opt(v.max_disk_bytes),
                opt(v.net_in_bytes),
                opt(v.net_out_bytes),
                v.coverage.map(|x| fixed(x * 100.0, 1)).unwrap_or_default(),
                v.busy_ticks.to_string(),
                v.total_ticks.to_string(),
                v.cpu_skipped_intervals.to_string(),
                v.gaps.to_string(),
                v.counter_resets.to_string(),
                v.reboots.to_string(),
            ])
            .map_err(csv_err)?;
        }
    }
    w.flush()?;
    Ok(())
}
