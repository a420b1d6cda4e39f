//! mb-report: usage summaries, series, invoices, Stripe meter events and
//! the stored events, as text for people and CSV/JSON for programs.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand};
use rust_decimal::Decimal;

use crate::cli::{self, Outcome};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{is_ident, Kind, IDENT_RULE};
use crate::money::{format_nanos, format_nanos_places};
use crate::output::{csv_text, fixed, thousands, write_table, Align};
use crate::report::invoice::{self, FxRate, Invoice, CSV_HEADER};
use crate::report::period::{self, tz_label};
use crate::report::{self, CustomerSummary, Period, Query, Summary, Unit};
use crate::store::{Mode, Store};
use crate::time;

/// Usage reports and invoices from the mb store.
#[derive(Debug, Parser)]
#[command(
    name = "mb-report",
    version,
    about = "Usage reports and invoices from the mb store, as text, CSV and JSON",
    long_about = "Usage reports and invoices from the mb store, as text, CSV and JSON.\n\n\
Without a subcommand, prints the usage summary. Periods are half-open [start, end) in the \
--tz zone (IANA, default the config's timezone, else UTC); weeks are ISO weeks. GB = 10^9 \
bytes, MB = 10^6 bytes. API costs are exact sums in USD, shown to 4 decimals (half away from \
zero); invoice amounts are rounded once per line, half-up, to cents. With --as-of (an ingest \
time cutoff) the same database gives byte-identical output even after late events arrive, \
and \"Generated At\" is the cutoff.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Cmd>,

    #[command(flatten)]
    pub common: Common,

    #[command(flatten)]
    pub range: RangeArgs,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// SQLite database file [default: per mb.toml, else /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise]
    #[arg(long, env = "MB_DB", value_name = "PATH", global = true)]
    pub db: Option<PathBuf>,

    /// Configuration file
    #[arg(long, env = "MB_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Only this customer
    #[arg(long, value_name = "ID", global = true)]
    pub customer: Option<String>,

    /// Only this VM
    #[arg(long, value_name = "ID", global = true)]
    pub vm: Option<String>,

    /// IANA time zone of periods and dates [default: config timezone, else UTC]
    #[arg(long, value_name = "ZONE", global = true)]
    pub tz: Option<String>,

    /// Ingest-time cutoff: ignore events stored after it (RFC 3339)
    #[arg(long, value_name = "TIMESTAMP", global = true)]
    pub as_of: Option<String>,

    /// CSV instead of a text table
    #[arg(long, global = true, conflicts_with = "json")]
    pub csv: bool,

    /// JSON instead of a text table
    #[arg(long, global = true)]
    pub json: bool,
}

/// Which period a report covers.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RangeArgs {
    /// The period containing --date (default: now)
    #[arg(long, value_enum, value_name = "UNIT")]
    pub period: Option<Unit>,

    /// A date or time inside the period [default: now]
    #[arg(long, value_name = "DATE", requires = "period")]
    pub date: Option<String>,

    /// Start of a custom range (RFC 3339 or date), with --until
    #[arg(long, value_name = "T", requires = "until", conflicts_with_all = ["period", "month"])]
    pub since: Option<String>,

    /// End (exclusive) of a custom range
    #[arg(long, value_name = "T", requires = "since")]
    pub until: Option<String>,

    /// A calendar month: YYYY-MM, last or current
    #[arg(long, value_name = "MONTH", conflicts_with = "period")]
    pub month: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Usage per customer: API by model, resources, activity (the default)
    Summary(RangeArgs),
    /// One tidy table: a row per bucket x customer x metric
    Series {
        #[command(flatten)]
        range: RangeArgs,
        /// Bucket size
        #[arg(long, value_enum, default_value = "day")]
        by: Unit,
        /// Metrics to include (repeatable) [default: all]
        #[arg(long = "metric", value_parser = clap::builder::PossibleValuesParser::new(report::METRICS))]
        metrics: Vec<String>,
    },
    /// The month's invoice lines: prorated base fee and LLM overage
    Invoice {
        /// The month: YYYY-MM or last
        #[arg(long, value_name = "MONTH")]
        month: String,
        /// USD -> invoice currency rate [default: billing.usd_eur in mb.toml]
        #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
        usd_eur: Option<String>,
        /// Where --usd-eur comes from, printed on the line
        #[arg(
            long,
            value_name = "TEXT",
            requires = "usd_eur",
            default_value = "command line"
        )]
        usd_eur_source: String,
        /// The date of --usd-eur, printed on the line [default: the period's last day]
        #[arg(long, value_name = "DATE", requires = "usd_eur")]
        usd_eur_date: Option<String>,
        /// Invoice the registered customers even if others have usage (listed as warnings)
        #[arg(long)]
        allow_unregistered: bool,
        /// Invoice priced usage even if some usage has no price (listed as warnings)
        #[arg(long)]
        allow_unpriced: bool,
    },
    /// Stripe meter-event CSV (identifier,timestamp,event_name,payload_stripe_customer_id,payload_value): billable tokens per customer and day
    StripeMeter {
        /// The month: YYYY-MM or last
        #[arg(long, value_name = "MONTH")]
        month: String,
        /// The Stripe meter's event name
        #[arg(long, value_name = "NAME")]
        event_name: String,
    },
    /// The stored events as mb-events(5) lines, to pull into another database
    Events {
        /// Only events at or after this time (RFC 3339 or date)
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only events before this time
        #[arg(long, value_name = "T")]
        until: Option<String>,
        /// Only this kind (repeatable)
        #[arg(long, value_enum)]
        kind: Vec<KindArg>,
    },
}

/// `--kind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    /// Resource samples
    Resource,
    /// API usage
    Api,
    /// Activity
    Activity,
}

const EXAMPLES: &str = "\
EXAMPLES:
    # This month's usage of every customer, for people
    mb-report

    # Last month for one customer in Prague time, as the sectioned CSV
    mb-report --month last --customer acme --tz Europe/Prague --csv

    # The ISO week containing a date, as JSON
    mb-report --period week --date 2026-11-03 --json

    # Daily cost and CPU for a plot
    mb-report series --by day --metric cost_usd --metric cpu_percent --csv

    # Last month's invoice lines for the Stripe upload job, reproducibly
    mb-report invoice --month last --usd-eur 0.92 --as-of 2026-12-01T03:00:00Z --csv | stripe-upload.sh

    # Stripe meter events instead (Stripe prices the tokens)
    mb-report stripe-meter --month last --event-name llm_tokens

    # Pull a VM's events into a central database
    ssh vm1 mb-report events --since 2026-11-01 | mb-ingest --db central.db";

/// What a run does, decided (and its period validated) before the
/// database is opened.
enum Plan {
    Summary(Period),
    Series(Period, Unit, Vec<String>),
    Other(Cmd),
}

enum Format {
    Text,
    Csv,
    Json,
}

struct Ctx {
    cfg: Config,
    store: Store,
    tz: Tz,
    now: DateTime<Utc>,
    as_of: Option<DateTime<Utc>>,
    format: Format,
    customer: Option<String>,
    vm: Option<String>,
}

/// Run mb-report.
pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let c = &args.common;
    let cfg = Config::load(c.config.as_deref())?;
    let tz = match &c.tz {
        Some(z) => time::parse_tz(z).ok_or_else(|| {
            Error::Usage(format!("--tz {z:?}: not an IANA zone like Europe/Prague"))
        })?,
        None => cfg.timezone,
    };
    for (flag, v) in [("--customer", &c.customer), ("--vm", &c.vm)] {
        if let Some(v) = v {
            if !is_ident(v) {
                return Err(Error::Usage(format!("{flag} {v:?} {IDENT_RULE}")));
            }
        }
    }
    let as_of = match &c.as_of {
        Some(s) => Some(time::parse_rfc3339(s).ok_or_else(|| {
            Error::Usage(format!(
                "--as-of {s:?}: not an RFC 3339 time like 2026-12-01T03:00:00Z"
            ))
        })?),
        None => None,
    };
    let format = if c.csv {
        Format::Csv
    } else if c.json {
        Format::Json
    } else {
        Format::Text
    };
    let now = time::now();
    let r = &args.range;
    if args.command.is_some()
        && (r.period.is_some() || r.date.is_some() || r.since.is_some() || r.month.is_some())
    {
        return Err(Error::Usage(
            "put the period options after the subcommand (mb-report invoice --month ...)".into(),
        ));
    }
    // Validate the period before touching the database.
    let db = cfg.db_path(c.db.as_deref());
    let plan = match args.command {
        None => Plan::Summary(resolve_range(&args.range, tz, now)?),
        Some(Cmd::Summary(r)) => Plan::Summary(resolve_range(&r, tz, now)?),
        Some(Cmd::Series { range, by, metrics }) => {
            Plan::Series(resolve_range(&range, tz, now)?, by, metrics)
        }
        Some(other) => Plan::Other(other),
    };
    let store = Store::open(&db, Mode::ReadOnly)?;
    let ctx = Ctx {
        cfg,
        store,
        tz,
        now,
        as_of,
        format,
        customer: c.customer.clone(),
        vm: c.vm.clone(),
    };
    let cmd = match plan {
        Plan::Summary(p) => return summary(&ctx, p, out),
        Plan::Series(p, by, metrics) => return series(&ctx, p, by, &metrics, out),
        Plan::Other(cmd) => cmd,
    };
    match cmd {
        Cmd::Summary(_) | Cmd::Series { .. } => {
            unreachable!("invariant: summary and series are planned above")
        }
        Cmd::Invoice {
            month,
            usd_eur,
            usd_eur_source,
            usd_eur_date,
            allow_unregistered,
            allow_unpriced,
        } => {
            if ctx.vm.is_some() {
                return Err(Error::Usage(
                    "invoice is per customer; --vm does not apply".into(),
                ));
            }
            let period = period::parse_month(&month, now, tz)?;
            let fx = match usd_eur {
                Some(r) => Some(FxRate {
                    rate: parse_rate(&r)?,
                    source: usd_eur_source,
                    date: usd_eur_date.unwrap_or_else(|| {
                        period
                            .days()
                            .last()
                            .map(|d| d.to_string())
                            .unwrap_or_default()
                    }),
                }),
                None => ctx.cfg.billing.usd_eur.map(|rate| FxRate {
                    rate,
                    source: ctx
                        .cfg
                        .billing
                        .usd_eur_source
                        .clone()
                        .unwrap_or_else(|| "mb.toml".into()),
                    date: ctx
                        .cfg
                        .billing
                        .usd_eur_date
                        .clone()
                        .unwrap_or_else(|| "undated".into()),
                }),
            };
            let opts = invoice::Options {
                period,
                fx,
                allow_unregistered,
                allow_unpriced,
                customer: ctx.customer.clone(),
                as_of: ctx.as_of,
            };
            let inv = invoice::invoice(&ctx.store, &ctx.cfg, &opts)?;
            for w in &inv.warnings {
                cli::warn(w);
            }
            render_invoice(&ctx, &inv, out)?;
            Ok(Outcome::partial_if(!inv.warnings.is_empty()))
        }
        Cmd::StripeMeter { month, event_name } => {
            let period = period::parse_month(&month, now, tz)?;
            stripe_meter(&ctx, &period, &event_name, out)
        }
        Cmd::Events { since, until, kind } => {
            let start = match since {
                Some(s) => period::parse_point("--since", &s, tz)?,
                None => DateTime::<Utc>::MIN_UTC,
            };
            let end = match until {
                Some(s) => period::parse_point("--until", &s, tz)?,
                None => DateTime::<Utc>::MAX_UTC,
            };
            let kinds: Vec<Kind> = if kind.is_empty() {
                Kind::ALL.to_vec()
            } else {
                Kind::ALL
                    .into_iter()
                    .filter(|k| {
                        kind.iter().any(|a| match a {
                            KindArg::Resource => *k == Kind::Resource,
                            KindArg::Api => *k == Kind::Api,
                            KindArg::Activity => *k == Kind::Activity,
                        })
                    })
                    .collect()
            };
            let as_of_text = ctx.as_of.map(|t| time::format_fixed_micros(&t));
            let scope = crate::store::report::Scope {
                start_ns: time::to_unix_nanos(&start).unwrap_or(i64::MIN),
                end_ns: time::to_unix_nanos(&end).unwrap_or(i64::MAX),
                customer: ctx.customer.as_deref(),
                vm: ctx.vm.as_deref(),
                as_of: as_of_text.as_deref(),
            };
            for k in kinds {
                ctx.store.for_each_event(k, &scope, &mut |ev| {
                    out.write_all(ev.to_json().as_bytes())?;
                    out.write_all(b"\n")?;
                    Ok(())
                })?;
            }
            Ok(Outcome::Success)
        }
    }
}

fn parse_rate(s: &str) -> Result<Decimal> {
    let d: Decimal = s
        .parse()
        .map_err(|_| Error::Usage(format!("--usd-eur {s:?}: not a decimal rate like 0.92")))?;
    if d <= Decimal::ZERO {
        return Err(Error::Usage(format!(
            "--usd-eur {s:?}: must be greater than 0"
        )));
    }
    Ok(d)
}

fn resolve_range(r: &RangeArgs, tz: Tz, now: DateTime<Utc>) -> Result<Period> {
    if let (Some(s), Some(u)) = (&r.since, &r.until) {
        return Period::custom(
            period::parse_point("--since", s, tz)?,
            period::parse_point("--until", u, tz)?,
            tz,
        );
    }
    if let Some(m) = &r.month {
        return period::parse_month(m, now, tz);
    }
    let at = match &r.date {
        Some(d) => period::parse_point("--date", d, tz)?,
        None => now,
    };
    let unit = r.period.unwrap_or(Unit::Month);
    if unit == Unit::Hour {
        return Err(Error::Usage("--period takes day, week or month".into()));
    }
    Period::containing(unit, at, tz)
}

fn query(ctx: &Ctx, period: Period) -> Query {
    Query {
        period,
        customer: ctx.customer.clone(),
        vm: ctx.vm.clone(),
        as_of: ctx.as_of,
    }
}

fn summary(ctx: &Ctx, period: Period, out: &mut dyn Write) -> Result<Outcome> {
    let q = query(ctx, period);
    let s = report::summary(&ctx.store, &q)?;
    let mut suspect = false;
    for (c, p, m, n) in s.unpriced() {
        cli::warn(format!(
            "{c}: {n} requests of {p}/{m} have no price; their cost is not included (add the model to a price table)"
        ));
        suspect = true;
    }
    for c in s.customers.iter().filter(|c| !c.registered) {
        cli::warn(format!(
            "{}: usage of a customer that is not registered (mb-customer add {} --tier ...)",
            c.customer_id, c.customer_id
        ));
        suspect = true;
    }
    match ctx.format {
        Format::Json => {
            serde_json::to_writer(&mut *out, &summary_json(&s)).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Format::Csv => summary_csv(&s, out)?,
        Format::Text => summary_text(ctx, &q, &s, out)?,
    }
    Ok(Outcome::partial_if(suspect))
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| fixed(x, 1)).unwrap_or_default()
}

fn money4(n: i64) -> String {
    format_nanos_places(n, 4)
}

fn csv_err(e: csv::Error) -> Error {
    Error::Stream(e.into())
}

fn summary_csv(s: &Summary, out: &mut dyn Write) -> Result<()> {
    // The sectioned layout admins' spreadsheets know (DESIGN.md appendix);
    // extended only by appending columns to the header block.
    let mut w = Sections { out };
    let gen = time::format_rfc3339(&s.generated_at);
    let as_of = s
        .as_of
        .map(|t| time::format_rfc3339(&t))
        .unwrap_or_default();
    for (i, c) in s.customers.iter().enumerate() {
        if i > 0 {
            blank(&mut w)?;
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
        ])
        .map_err(csv_err)?;
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
        ])
        .map_err(csv_err)?;
        blank(&mut w)?;
        w.write_record(["API Usage"]).map_err(csv_err)?;
        w.write_record([
            "Provider",
            "Model",
            "Tokens In",
            "Tokens Out",
            "Total Tokens",
            "Cost USD",
            "Cache Read Tokens",
            "Cache Write Tokens",
        ])
        .map_err(csv_err)?;
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
            ])
            .map_err(csv_err)?;
        }
        blank(&mut w)?;
        w.write_record([
            "Total API Cost USD".to_string(),
            money4(c.api_total.cost_nusd),
        ])
        .map_err(csv_err)?;
        blank(&mut w)?;
        w.write_record(["Resource Usage"]).map_err(csv_err)?;
        w.write_record(["Metric", "Value"]).map_err(csv_err)?;
        let r = &c.resource;
        for (k, v) in [
            ("avg_cpu_percent", pct(r.avg_cpu_percent)),
            ("avg_memory_percent", pct(r.avg_memory_percent)),
            (
                "max_disk_gb",
                r.max_disk_bytes
                    .map(|b| fixed(b as f64 / 1e9, 1))
                    .unwrap_or_default(),
            ),
            ("total_network_in_mb", fixed(r.net_in_bytes / 1e6, 1)),
            ("total_network_out_mb", fixed(r.net_out_bytes / 1e6, 1)),
        ] {
            w.write_record([k.to_string(), v]).map_err(csv_err)?;
        }
        blank(&mut w)?;
        w.write_record(["Activity"]).map_err(csv_err)?;
        w.write_record(["Activity Type", "Count", "Total Duration (seconds)"])
            .map_err(csv_err)?;
        for a in &c.activity {
            w.write_record([
                csv_text(&a.activity_type),
                a.count.to_string(),
                fixed(a.duration_seconds, 1),
            ])
            .map_err(csv_err)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// A CSV writer that can also write the blank lines between sections (the
/// csv crate writes an empty record as `""`).
struct Sections<'a> {
    out: &'a mut dyn Write,
}

impl Sections<'_> {
    fn write_record<I, T>(&mut self, rec: I) -> std::result::Result<(), csv::Error>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        w.write_record(rec)?;
        let bytes = w
            .into_inner()
            .map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))?;
        self.out.write_all(&bytes)?;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn blank(w: &mut Sections) -> Result<()> {
    w.out.write_all(b"\n")?;
    Ok(())
}

fn api_json(u: &crate::store::report::ApiAgg) -> serde_json::Value {
    serde_json::json!({
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
    })
}

/// The summary as one JSON object (shared with the dashboard API).
pub fn summary_json(s: &Summary) -> serde_json::Value {
    let customers: Vec<serde_json::Value> = s.customers.iter().map(customer_json).collect();
    serde_json::json!({
        "report_type": "usage_report",
        "generated_at": time::format_rfc3339(&s.generated_at),
        "as_of": s.as_of.map(|t| time::format_rfc3339(&t)),
        "period": s.period,
        "units": {"cost": "USD, exact decimal string", "bytes": "B", "gb": "10^9 B", "mb": "10^6 B"},
        "customers": customers,
    })
}

fn customer_json(c: &CustomerSummary) -> serde_json::Value {
    let r = &c.resource;
    serde_json::json!({
        "customer_id": c.customer_id,
        "registered": c.registered,
        "price_tables": c.price_tables,
        "api": c.api.iter().map(|m| {
            let mut v = api_json(&m.usage);
            v["provider"] = m.provider.clone().into();
            v["model"] = m.model.clone().into();
            v
        }).collect::<Vec<_>>(),
        "api_total": api_json(&c.api_total),
        "resource": {
            "vms": r.vms,
            "samples": r.samples,
            "avg_cpu_percent": r.avg_cpu_percent.map(|v| (v * 10.0).round() / 10.0),
            "avg_memory_percent": r.avg_memory_percent.map(|v| (v * 10.0).round() / 10.0),
            "max_disk_gb": r.max_disk_bytes.map(|b| (b as f64 / 1e8).round() / 10.0),
            "max_disk_bytes": r.max_disk_bytes,
            "total_network_in_mb": (r.net_in_bytes / 1e5).round() / 10.0,
            "total_network_out_mb": (r.net_out_bytes / 1e5).round() / 10.0,
            "coverage_percent": r.coverage.map(|v| (v * 1000.0).round() / 10.0),
        },
        "activity": c.activity,
    })
}

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

fn summary_text(ctx: &Ctx, q: &Query, s: &Summary, out: &mut dyn Write) -> Result<()> {
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
    let tty = std::io::stdout().is_terminal();
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
        if tty && p.kind != "day" {
            // Daily cost and CPU at a glance, on terminals only.
            let cq = Query {
                customer: Some(c.customer_id.clone()),
                ..q.clone()
            };
            let rows = report::series(
                &ctx.store,
                &cq,
                Unit::Day,
                &["cost_usd".into(), "cpu_percent".into()],
            )?;
            let days = p.buckets(Unit::Day)?;
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
            writeln!(
                out,
                "  daily cost {}  cpu {}",
                sparkline(&pick("cost_usd")),
                sparkline(&pick("cpu_percent"))
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
            let mut buf = Vec::new();
            write_table(
                &mut buf,
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
            for l in String::from_utf8_lossy(&buf).lines() {
                writeln!(out, "  {l}")?;
            }
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
                "  Resources: cpu {} %, memory {} %, disk max {} GB, network in {} MB, out {} MB; coverage {} % ({} VMs, {} samples)",
                or_dash(pct(r.avg_cpu_percent)),
                or_dash(pct(r.avg_memory_percent)),
                or_dash(r.max_disk_bytes.map(|b| fixed(b as f64 / 1e9, 1)).unwrap_or_default()),
                fixed(r.net_in_bytes / 1e6, 1),
                fixed(r.net_out_bytes / 1e6, 1),
                or_dash(r.coverage.map(|v| fixed(v * 100.0, 1)).unwrap_or_default()),
                r.vms,
                r.samples
            )?;
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
            let mut buf = Vec::new();
            write_table(
                &mut buf,
                &["ACTIVITY", "COUNT", "DURATION S"],
                &[Align::Left, Align::Right, Align::Right],
                &rows,
            )?;
            for l in String::from_utf8_lossy(&buf).lines() {
                writeln!(out, "  {l}")?;
            }
        }
    }
    Ok(())
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

fn series(
    ctx: &Ctx,
    period: Period,
    by: Unit,
    metrics: &[String],
    out: &mut dyn Write,
) -> Result<Outcome> {
    let q = query(ctx, period);
    let rows = report::series(&ctx.store, &q, by, metrics)?;
    match ctx.format {
        Format::Json => {
            serde_json::to_writer(&mut *out, &rows).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "bucket_start",
                "bucket_end",
                "customer_id",
                "metric",
                "value",
            ])
            .map_err(csv_err)?;
            for r in &rows {
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
        }
        Format::Text => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.bucket_start
                            .with_timezone(&ctx.tz)
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
            )?;
        }
    }
    Ok(Outcome::Success)
}

fn render_invoice(ctx: &Ctx, inv: &Invoice, out: &mut dyn Write) -> Result<()> {
    match ctx.format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
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
                ])
                .map_err(csv_err)?;
            }
            w.flush()?;
        }
        Format::Json => {
            let v = serde_json::json!({
                "report_type": "invoice",
                "generated_at": time::format_rfc3339(&inv.generated_at),
                "as_of": ctx.as_of.map(|t| time::format_rfc3339(&t)),
                "period": inv.period,
                "currency": ctx.cfg.billing.currency,
                "rounding": "once per line, half away from zero, to minor units",
                "included_tokens": ctx.cfg.billing.included_tokens,
                "markup_percent": ctx.cfg.billing.markup_percent.normalize().to_string(),
                "fx": inv.fx,
                "lines": inv.lines,
                "total_minor": inv.lines.iter().map(|l| l.amount_minor).sum::<i64>(),
            });
            serde_json::to_writer(&mut *out, &v).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Format::Text => {
            let p = &inv.period;
            writeln!(
                out,
                "Invoice {}: {} to {} ({}); {} {}, rounded once per line half-up to cents",
                p.label,
                time::format_rfc3339(&p.start),
                time::format_rfc3339(&p.end),
                tz_label(p.tz, p.start),
                ctx.cfg.billing.currency,
                match &inv.fx {
                    Some(f) =>
                        format!("USD rate {} ({}, {})", f.rate.normalize(), f.source, f.date),
                    None => "no USD conversion needed".into(),
                }
            )?;
            let mut rows: Vec<Vec<String>> = Vec::new();
            for l in &inv.lines {
                rows.push(vec![
                    l.customer_id.clone(),
                    l.line.clone(),
                    l.description.clone(),
                    crate::money::format_minor(l.amount_minor),
                ]);
            }
            let total: i64 = inv.lines.iter().map(|l| l.amount_minor).sum();
            rows.push(vec![
                "total".into(),
                String::new(),
                String::new(),
                crate::money::format_minor(total),
            ]);
            writeln!(out)?;
            write_table(
                out,
                &[
                    "CUSTOMER",
                    "LINE",
                    "DESCRIPTION",
                    &format!("AMOUNT {}", ctx.cfg.billing.currency),
                ],
                &[Align::Left, Align::Left, Align::Left, Align::Right],
                &rows,
            )?;
        }
    }
    Ok(())
}

fn stripe_meter(
    ctx: &Ctx,
    period: &Period,
    event_name: &str,
    out: &mut dyn Write,
) -> Result<Outcome> {
    if event_name.is_empty() || event_name.len() > 100 {
        return Err(Error::Usage(
            "--event-name must be 1..100 characters".into(),
        ));
    }
    let at = ctx.as_of.unwrap_or(ctx.now);
    let customers = ctx.store.customers(at)?;
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "identifier",
        "timestamp",
        "event_name",
        "payload_stripe_customer_id",
        "payload_value",
    ])
    .map_err(csv_err)?;
    let mut missing: Vec<String> = Vec::new();
    for day in period.buckets(Unit::Day)? {
        let q = query(ctx, day.clone());
        let as_of = q.as_of_text();
        let api = ctx
            .store
            .api_totals(&q.scope(&as_of, day.start_ns(), day.end_ns()))?;
        let mut per: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for (k, v) in &api {
            *per.entry(k.customer_id.as_str()).or_default() += v.total_tokens();
        }
        for (c, tokens) in per {
            if tokens == 0 {
                continue;
            }
            let stripe = customers
                .iter()
                .find(|x| x.customer_id == c)
                .and_then(|x| x.stripe_customer_id.clone());
            let Some(stripe) = stripe else {
                if !missing.iter().any(|m| m == c) {
                    missing.push(c.to_string());
                }
                continue;
            };
            // The last second of the day (inside it): Stripe takes Unix seconds,
            // e.g. 2026-11-02 -> 1793663999 (2026-11-02T23:59:59Z).
            let ts = (day.end - chrono::Duration::seconds(1)).timestamp();
            w.write_record([
                format!("mb-{}-{}-{event_name}", csv_text(c), day.label),
                ts.to_string(),
                csv_text(event_name),
                csv_text(&stripe),
                tokens.to_string(),
            ])
            .map_err(csv_err)?;
        }
    }
    w.flush()?;
    for m in &missing {
        cli::warn(format!(
            "{m}: no Stripe customer id, its usage is left out (mb-customer set {m} --stripe-customer cus_...)"
        ));
    }
    Ok(Outcome::partial_if(!missing.is_empty()))
}
