//! `/metrics`: the figures of the dashboard in the Prometheus text
//! exposition format (version 0.0.4), for Prometheus and Grafana.
//!
//! Month-to-date usage is exported as **gauges**, not counters: the value
//! is the state of the month in the database (what the invoice says so
//! far), it drops to 0 when a month starts in the configured zone, and an
//! alert such as `mb_customer_cost_usd > 100` or a Grafana stat panel needs
//! no regex on a month label. A counter would make `rate()` treat every
//! month start as a process restart. The month being reported is the
//! `month` label of `mb_month_info`. Ingest line counts never decrease and
//! are counters (`mb_ingest_lines_total`).
//!
//! Scoping is the API's: on a `--customer` dashboard only that customer's
//! series appear, and the ingest series (which describe every customer's
//! data) are left out. Label values are escaped as the format requires
//! (backslash, double quote, newline); everything else is passed through,
//! so a model name is exported exactly as stored.

use std::fmt::Write;

use crate::money::format_nanos;
use crate::report::fleet::{Fleet, State};
use crate::report::{Period, Summary};
use crate::store::fleet::{LastEvent, RunTotals};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything `/metrics` exports.
pub struct Input<'a> {
    /// The current month.
    pub month: &'a Period,
    /// Its summary (per customer).
    pub summary: &'a Summary,
    /// Included tokens per registered customer and month.
    pub included_tokens: u64,
    /// Month-to-date api usage per (customer, VM).
    pub by_vm: &'a std::collections::BTreeMap<(String, String), LastEvent>,
    /// Freshness of the VMs at now.
    pub fleet: &'a Fleet,
    /// Ingest run totals per status; `None` on a scoped dashboard.
    pub runs: Option<&'a std::collections::BTreeMap<String, RunTotals>>,
    /// Unix time (seconds) of the latest finished run per status.
    pub last_run: &'a [(String, f64)],
}

/// Escape a label value: `\` -> `\\`, `"` -> `\"`, newline -> `\n`.
pub fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

fn seconds(t: &chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
}

/// Render the exposition.
pub fn render(i: &Input) -> String {
    let mut o = Out(String::with_capacity(8 * 1024));
    o.family(
        "mb_month_info",
        "gauge",
        "The month the month-to-date gauges cover, in the configured zone (value 1).",
    );
    o.sample(
        "mb_month_info",
        &[("month", &i.month.label), ("tz", i.month.tz.name())],
        1,
    );
    o.family(
        "mb_month_start_timestamp_seconds",
        "gauge",
        "Start of the month the month-to-date gauges cover.",
    );
    o.sample(
        "mb_month_start_timestamp_seconds",
        &[],
        seconds(&i.month.start),
    );

    let cs = &i.summary.customers;
    o.family(
        "mb_customer_requests",
        "gauge",
        "API requests this month so far, per customer.",
    );
    for c in cs {
        o.sample(
            "mb_customer_requests",
            &[("customer", &c.customer_id)],
            c.api_total.requests,
        );
    }
    o.family(
        "mb_customer_tokens",
        "gauge",
        "Billable tokens (in + out + cache read + cache write) this month so far, per customer.",
    );
    for c in cs {
        o.sample(
            "mb_customer_tokens",
            &[("customer", &c.customer_id)],
            c.api_total.total_tokens(),
        );
    }
    o.family(
        "mb_customer_included_tokens",
        "gauge",
        "Tokens included per month (0 for a customer that is not registered).",
    );
    for c in cs {
        let inc = if c.registered { i.included_tokens } else { 0 };
        o.sample(
            "mb_customer_included_tokens",
            &[("customer", &c.customer_id)],
            inc,
        );
    }
    o.family(
        "mb_customer_cost_usd",
        "gauge",
        "API cost this month so far, USD (exact sum of priced requests).",
    );
    for c in cs {
        o.sample(
            "mb_customer_cost_usd",
            &[("customer", &c.customer_id)],
            format_nanos(c.api_total.cost_nusd),
        );
    }
    o.family(
        "mb_unpriced_requests",
        "gauge",
        "API requests this month without a price (their cost is missing from the totals).",
    );
    for (c, provider, model, n) in i.summary.unpriced() {
        o.sample(
            "mb_unpriced_requests",
            &[("customer", &c), ("provider", &provider), ("model", &model)],
            n,
        );
    }
    o.family(
        "mb_vm_tokens",
        "gauge",
        "Billable tokens this month so far, per customer and VM.",
    );
    for ((c, vm), e) in i.by_vm {
        o.sample("mb_vm_tokens", &[("customer", c), ("vm", vm)], e.tokens);
    }
    o.family(
        "mb_vm_cost_usd",
        "gauge",
        "API cost this month so far, USD, per customer and VM.",
    );
    for ((c, vm), e) in i.by_vm {
        o.sample(
            "mb_vm_cost_usd",
            &[("customer", c), ("vm", vm)],
            format_nanos(e.cost_nusd),
        );
    }

    let sampled: Vec<_> = i
        .fleet
        .vms
        .iter()
        .filter_map(|v| v.last_sample.as_ref().map(|s| (v, s)))
        .collect();
    let cust = |v: &crate::report::fleet::Vm| v.customer_id.clone().unwrap_or_default();
    o.family(
        "mb_vm_last_sample_timestamp_seconds",
        "gauge",
        "End of the VM's last resource sample.",
    );
    for (v, s) in &sampled {
        o.sample(
            "mb_vm_last_sample_timestamp_seconds",
            &[("customer", &cust(v)), ("vm", &v.vm_id)],
            seconds(&s.ts),
        );
    }
    o.family(
        "mb_vm_last_sample_age_seconds",
        "gauge",
        "Seconds since the VM's last resource sample, at the time of the scrape.",
    );
    for (v, s) in &sampled {
        o.sample(
            "mb_vm_last_sample_age_seconds",
            &[("customer", &cust(v)), ("vm", &v.vm_id)],
            s.age_seconds,
        );
    }
    o.family(
        "mb_vm_stale",
        "gauge",
        "1 when the VM sent no sample for longer than its threshold (two sampling intervals), \
         or is registered and never sent one.",
    );
    for v in i.fleet.vms.iter().filter(|v| v.state != State::NoSamples) {
        o.sample(
            "mb_vm_stale",
            &[("customer", &cust(v)), ("vm", &v.vm_id)],
            u8::from(v.state == State::Stale),
        );
    }
    o.family(
        "mb_vm_cpu_percent",
        "gauge",
        "CPU % of the VM's last sampling interval.",
    );
    for (v, s) in &sampled {
        if let Some(x) = s.cpu_percent {
            o.sample(
                "mb_vm_cpu_percent",
                &[("customer", &cust(v)), ("vm", &v.vm_id)],
                x,
            );
        }
    }
    o.family(
        "mb_vm_memory_percent",
        "gauge",
        "Memory % at the VM's last sample.",
    );
    for (v, s) in &sampled {
        if let Some(x) = s.memory_percent {
            o.sample(
                "mb_vm_memory_percent",
                &[("customer", &cust(v)), ("vm", &v.vm_id)],
                x,
            );
        }
    }

    if let Some(runs) = i.runs {
        o.family(
            "mb_ingest_runs",
            "gauge",
            "mb-ingest runs recorded in the database, per status (running, ok, partial, failed, abandoned).",
        );
        for st in ["running", "ok", "partial", "failed", "abandoned"] {
            let n = runs.get(st).map_or(0, |r| r.runs);
            o.sample("mb_ingest_runs", &[("status", st)], n);
        }
        o.family(
            "mb_ingest_lines_total",
            "counter",
            "Input lines of every mb-ingest run, by result (read, inserted, duplicate, conflict, \
             rejected).",
        );
        let mut t = RunTotals::default();
        for r in runs.values() {
            t.read += r.read;
            t.inserted += r.inserted;
            t.duplicates += r.duplicates;
            t.conflicts += r.conflicts;
            t.rejected += r.rejected;
        }
        for (k, v) in [
            ("read", t.read),
            ("inserted", t.inserted),
            ("duplicate", t.duplicates),
            ("conflict", t.conflicts),
            ("rejected", t.rejected),
        ] {
            o.sample("mb_ingest_lines_total", &[("result", k)], v);
        }
        o.family(
            "mb_ingest_last_run_timestamp_seconds",
            "gauge",
            "When the latest mb-ingest run of each status finished.",
        );
        for (st, ts) in i.last_run {
            o.sample(
                "mb_ingest_last_run_timestamp_seconds",
                &[("status", st)],
                ts,
            );
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label("<script>"), "<script>");
    }
}
