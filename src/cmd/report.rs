//! mb-report: usage summaries, series, invoices, Stripe meter events and
//! the stored events, as text for people and CSV/JSON for programs.
//!
//! Argument handling only: the numbers come from [`crate::report`] and are
//! drawn by [`crate::report::render`] (one module per format).

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
use crate::output::{escape_text, TextStyle};
use crate::report::invoice::{self, FxRate, Invoice};
use crate::report::period;
use crate::report::render::{self, Format};
use crate::report::{self, glance, meter, standing, Period, Query, Unit};
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
--tz zone (IANA, default the config's timezone, else UTC); weeks are ISO weeks. Dates and \
times are typed as people write them: 2026-11-10 is local midnight, 2026-11-10T08:30 local \
time, and an RFC 3339 time with a zone is exact. Text output shows local dates and times; \
CSV and JSON keep UTC. GB = 10^9 bytes, MB = 10^6 bytes. API costs are exact sums in USD, \
shown to 4 decimals (half away from zero); invoice amounts are rounded once per line, \
half-up, to cents. CSV columns and JSON fields are only ever added, never renamed \
(docs/mb-report.md lists them). Text fits the terminal (COLUMNS, else its width, else 80) and \
is coloured only on a terminal without NO_COLOR. With --as-of (an ingest time cutoff) the same database gives \
byte-identical output even after late events arrive, and \"Generated At\" is the cutoff.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Cmd>,

    #[command(flatten)]
    pub common: Common,

    #[command(flatten)]
    pub view: ViewArgs,

    #[command(flatten)]
    pub range: RangeArgs,

    #[command(flatten)]
    pub summary: SummaryOpts,
}

/// Options of the summary only.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SummaryOpts {
    /// One line per VM: samples, last sample, CPU, memory, disk, network, coverage, gaps, counter resets and reboots, with the customer's total (disks summed across VMs); VMs the registry does not list for the customer are marked
    #[arg(long)]
    pub by_vm: bool,
}

/// Options every subcommand takes, before or after its name.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// SQLite database file [default: per mb.toml, else /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise]
    #[arg(long, env = "MB_DB", value_name = "PATH", global = true)]
    pub db: Option<PathBuf>,

    /// Configuration file
    #[arg(long, env = "MB_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Only this customer (a registered one, or one with usage)
    #[arg(long, value_name = "ID", global = true)]
    pub customer: Option<String>,

    /// IANA time zone of periods and dates [default: config timezone, else UTC]
    #[arg(long, value_name = "ZONE", global = true)]
    pub tz: Option<String>,

    /// Ingest-time cutoff: ignore events stored after it (a date, local time or RFC 3339)
    #[arg(long, value_name = "T", global = true)]
    pub as_of: Option<String>,
}

/// The output format and VM filter of the views that have them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ViewArgs {
    /// Only this VM
    #[arg(long, value_name = "ID")]
    pub vm: Option<String>,

    #[command(flatten)]
    pub format: FormatArgs,
}

/// `--csv` / `--json`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FormatArgs {
    /// CSV instead of a text table
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,

    /// JSON instead of a text table (exact numbers, null for missing; fields in docs/mb-report.md)
    #[arg(long)]
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

    /// Start of a custom range (a date, local time or RFC 3339); until --until, else until now
    #[arg(long, value_name = "T", conflicts_with_all = ["period", "month"])]
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
    Summary {
        #[command(flatten)]
        range: RangeArgs,
        #[command(flatten)]
        view: ViewArgs,
        #[command(flatten)]
        opts: SummaryOpts,
    },
    /// One tidy table: a row per bucket x customer x metric
    Series {
        #[command(flatten)]
        range: RangeArgs,
        #[command(flatten)]
        view: ViewArgs,
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
        /// Invoice usage from a VM the registry lists for another customer than the one its
        /// events claim (left out of the invoice and listed as warnings by default)
        #[arg(long)]
        allow_vm_mismatch: bool,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Stripe meter-event CSV (identifier,timestamp,event_name,payload_stripe_customer_id,payload_value): billable tokens per customer and day; days Stripe would refuse (not ended yet, older than 35 days) are left out with a warning and exit 1; --json for one JSON object
    StripeMeter {
        /// The month: YYYY-MM or last
        #[arg(long, value_name = "MONTH")]
        month: String,
        /// The Stripe meter's event name
        #[arg(long, value_name = "NAME")]
        event_name: String,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Fleet freshness: every VM's last sample, api and activity event and ingest run, stale marks (exit 1 when a VM is stale), and the latest ingest runs
    Vms {
        /// Start of the window searched for api and activity events (RFC 3339 or date) [default: 31 days before --until]
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Measure ages at this time, ignoring later samples and events [default: now]
        #[arg(long, value_name = "T")]
        until: Option<String>,
        /// A VM is stale after this long without a sample: seconds, or with s, m, h or d (15m) [default: two of its sampling intervals]
        #[arg(long, value_name = "DURATION")]
        stale_after: Option<String>,
        /// How many of the latest ingest runs to list
        #[arg(long, value_name = "N", default_value_t = report::fleet::DEFAULT_RUNS)]
        runs: usize,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// The stored events as mb-events(5) JSON lines, to pull into another database
    Events {
        /// Only events at or after this time (a date, local time or RFC 3339)
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only events before this time
        #[arg(long, value_name = "T")]
        until: Option<String>,
        /// Only this kind (repeatable)
        #[arg(long, value_enum)]
        kind: Vec<KindArg>,
        /// Only this VM
        #[arg(long, value_name = "ID")]
        vm: Option<String>,
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

/// The summary as one JSON object (the dashboard API serves the same).
pub use crate::report::render::json::summary_value as summary_json;

const EXAMPLES: &str = "\
EXAMPLES:
    # This month's usage of every customer, for people
    mb-report

    # Last month for one customer in Prague time, as the sectioned CSV
    mb-report --month last --customer acme --tz Europe/Prague --csv

    # The ISO week containing a date, as JSON
    mb-report --period week --date 2026-11-03 --json

    # Since 08:00 this morning, Prague time, until now
    mb-report --since 2026-11-10T08:00 --tz Europe/Prague

    # Daily cost and CPU for a plot
    mb-report series --by day --metric cost_usd --metric cpu_percent --csv

    # Last month's invoice lines for the Stripe upload job; --as-of makes a
    # re-run reproduce the same CSV, so the upload's ledger sees no change
    mb-report invoice --month last --usd-eur 0.92 --usd-eur-source ECB \\
        --usd-eur-date 2026-11-30 \\
        --as-of 2026-12-01T03:00:00Z --csv | stripe-upload

    # Stripe meter events instead (Stripe prices the tokens)
    mb-report stripe-meter --month last --event-name llm_tokens \\
        --as-of 2026-12-01T03:00:00Z | stripe-upload

    # Pull a VM's events into a central database
    ssh vm1 mb-report events --since 2026-11-01 | mb-ingest --db central.db";

/// What a run does, decided (and its period validated) before the
/// database is opened.
enum Plan {
    /// The period, and whether per VM.
    Summary(Period, bool),
    Series(Period, Unit, Vec<String>),
    Other(Cmd),
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

/// The format asked for by the options before and after the subcommand.
fn format_of(a: &FormatArgs, b: &FormatArgs) -> Result<Format> {
    let csv = a.csv || b.csv;
    let json = a.json || b.json;
    if csv && json {
        return Err(Error::Usage("--csv and --json exclude each other".into()));
    }
    Ok(if csv {
        Format::Csv
    } else if json {
        Format::Json
    } else {
        Format::Text
    })
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
    let now = time::now();
    let as_of = match &c.as_of {
        Some(s) => Some(period::parse_point("--as-of", s, tz)?),
        None => None,
    };
    let r = &args.range;
    if args.command.is_some()
        && (r.period.is_some() || r.date.is_some() || r.since.is_some() || r.month.is_some())
    {
        return Err(Error::Usage(
            "put the period options after the subcommand (mb-report invoice --month ...)".into(),
        ));
    }
    let top = &args.view;
    // The VM filter and format given before a subcommand apply to it when
    // it has them; otherwise they are refused, never silently ignored.
    let (vm, format) = match &args.command {
        None => (
            top.vm.clone(),
            format_of(&top.format, &FormatArgs::default())?,
        ),
        Some(Cmd::Summary { view, .. }) | Some(Cmd::Series { view, .. }) => (
            view.vm.clone().or_else(|| top.vm.clone()),
            format_of(&top.format, &view.format)?,
        ),
        Some(Cmd::Invoice { format, .. }) => {
            if top.vm.is_some() {
                return Err(Error::Usage(
                    "invoice is per customer; --vm does not apply".into(),
                ));
            }
            (None, format_of(&top.format, format)?)
        }
        Some(Cmd::StripeMeter { format, .. }) => {
            if top.vm.is_some() {
                return Err(Error::Usage(
                    "stripe-meter is per customer; --vm does not apply".into(),
                ));
            }
            (None, format_of(&top.format, format)?)
        }
        Some(Cmd::Vms { format, .. }) => {
            if top.vm.is_some() {
                return Err(Error::Usage(
                    "vms lists every VM; --vm does not apply".into(),
                ));
            }
            (None, format_of(&top.format, format)?)
        }
        Some(Cmd::Events { vm, .. }) => {
            if top.format.csv || top.format.json {
                return Err(Error::Usage(
                    "events writes mb-events(5) JSON lines; --csv and --json do not apply".into(),
                ));
            }
            (vm.clone().or_else(|| top.vm.clone()), Format::Json)
        }
    };
    for (flag, v) in [("--customer", &c.customer), ("--vm", &vm)] {
        if let Some(v) = v {
            if !is_ident(v) {
                return Err(Error::Usage(format!("{flag} {v:?} {IDENT_RULE}")));
            }
        }
    }
    // Validate the period before touching the database.
    let db = cfg.db_path(c.db.as_deref());
    let plan = match args.command {
        None => Plan::Summary(resolve_range(&args.range, tz, now)?, args.summary.by_vm),
        Some(Cmd::Summary { range, opts, .. }) => Plan::Summary(
            resolve_range(&range, tz, now)?,
            opts.by_vm || args.summary.by_vm,
        ),
        Some(_) if args.summary.by_vm => return Err(Error::Usage(
            "--by-vm is a view of the summary (mb-report --by-vm, or mb-report summary --by-vm)"
                .into(),
        )),
        Some(Cmd::Series {
            range, by, metrics, ..
        }) => Plan::Series(resolve_range(&range, tz, now)?, by, metrics),
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
        vm,
    };
    // One snapshot for the whole report (rolled back when it ends).
    let _snapshot = ctx.store.begin_read()?;
    let cmd = match plan {
        Plan::Summary(p, by_vm) => {
            check_customer(&ctx)?;
            return summary(&ctx, p, by_vm, out);
        }
        Plan::Series(p, by, metrics) => {
            check_customer(&ctx)?;
            return series(&ctx, p, by, &metrics, out);
        }
        Plan::Other(cmd) => cmd,
    };
    match cmd {
        Cmd::Summary { .. } | Cmd::Series { .. } => {
            unreachable!("invariant: summary and series are planned above")
        }
        Cmd::Invoice {
            month,
            usd_eur,
            usd_eur_source,
            usd_eur_date,
            allow_unregistered,
            allow_unpriced,
            allow_vm_mismatch,
            format: _,
        } => {
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
            check_customer(&ctx)?;
            let opts = invoice::Options {
                period,
                fx,
                allow_unregistered,
                allow_unpriced,
                allow_vm_mismatch,
                customer: ctx.customer.clone(),
                as_of: ctx.as_of,
            };
            let inv = invoice::invoice(&ctx.store, &ctx.cfg, &opts)?;
            for w in &inv.warnings {
                cli::warn(escape_text(w));
            }
            render_invoice(&ctx, &inv, out)?;
            Ok(Outcome::partial_if(!inv.warnings.is_empty()))
        }
        Cmd::StripeMeter {
            month, event_name, ..
        } => {
            let period = period::parse_month(&month, now, tz)?;
            check_customer(&ctx)?;
            stripe_meter(&ctx, &period, &event_name, out)
        }
        Cmd::Vms {
            since,
            until,
            stale_after,
            runs,
            ..
        } => {
            check_customer(&ctx)?;
            vms(&ctx, since, until, stale_after, runs, out)
        }
        Cmd::Events {
            since, until, kind, ..
        } => {
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

fn vms(
    ctx: &Ctx,
    since: Option<String>,
    until: Option<String>,
    stale_after: Option<String>,
    runs: usize,
    out: &mut dyn Write,
) -> Result<Outcome> {
    if ctx.as_of.is_some() {
        // Freshness is about what has arrived; an ingest-time cutoff would
        // be silently ignored by the fleet query, so refuse it.
        return Err(Error::Usage(
            "--as-of does not apply to vms; use --until T to measure ages at an earlier time"
                .into(),
        ));
    }
    let mut o = report::fleet::Options::at(ctx.now);
    o.customer.clone_from(&ctx.customer);
    o.runs = runs;
    if let Some(u) = until {
        o.until = period::parse_point("--until", &u, ctx.tz)?;
        o.bounded = true;
    }
    o.since = match since {
        Some(s) => period::parse_point("--since", &s, ctx.tz)?,
        None => o.until - chrono::Duration::days(report::fleet::LOOKBACK_DAYS),
    };
    if o.since >= o.until {
        return Err(Error::Usage("--since must be before --until".into()));
    }
    if let Some(s) = stale_after {
        o.stale_after = Some(report::fleet::parse_duration(&s).ok_or_else(|| {
            Error::Usage(format!(
                "--stale-after {s:?}: expected seconds, or a number with s, m, h or d (15m)"
            ))
        })?);
    }
    let f = report::fleet::fleet(&ctx.store, &o)?;
    match ctx.format {
        Format::Json => render::json::vms(&f, out)?,
        Format::Csv => render::csv::vms(&f, out)?,
        Format::Text => render::text::vms(&f, ctx.tz, &TextStyle::for_stdout(), out)?,
    }
    let stale: Vec<&str> = f
        .vms
        .iter()
        .filter(|v| v.state == report::fleet::State::Stale)
        .map(|v| v.vm_id.as_str())
        .collect();
    if !stale.is_empty() {
        // Name a few; a fleet that stopped as a whole is one line, not 1,000.
        let more = stale.len().saturating_sub(10);
        cli::warn(format!(
            "{} VM{} stale: {}{}",
            stale.len(),
            if stale.len() == 1 { " is" } else { "s are" },
            stale[..stale.len() - more].join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    Ok(Outcome::partial_if(!stale.is_empty()))
}

/// A `--customer` that is neither registered nor found in any usage is a
/// typo, not a new customer: refuse it (exit 2) with the nearest name.
fn check_customer(ctx: &Ctx) -> Result<()> {
    let Some(id) = &ctx.customer else {
        return Ok(());
    };
    if ctx.store.customer_exists(id)? || ctx.store.has_usage(id)? {
        return Ok(());
    }
    // A typo: find the nearest name among everyone known, over all of time
    // (halved: the store rounds the bounds to whole hours).
    let everything = crate::store::report::Scope {
        start_ns: i64::MIN / 2,
        end_ns: i64::MAX / 2,
        customer: None,
        vm: None,
        as_of: None,
    };
    let mut known = ctx.store.customers_with_usage(&everything)?;
    known.extend(
        ctx.store
            .customers(ctx.now)?
            .into_iter()
            .map(|c| c.customer_id),
    );
    known.sort();
    known.dedup();
    let hint = match standing::did_you_mean(id, &known) {
        Some(m) => format!("; did you mean {m}?"),
        None if known.is_empty() => "; the database has no customers and no usage yet".into(),
        None => "; see mb-customer list".into(),
    };
    Err(Error::Invalid(format!(
        "no customer and no usage named {id}{hint}"
    )))
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
    if let Some(s) = &r.since {
        let start = period::parse_point("--since", s, tz)?;
        let end = match &r.until {
            Some(u) => period::parse_point("--until", u, tz)?,
            // Until now: the whole second, so reruns in one second match.
            None => time::whole_seconds(now),
        };
        return Period::custom(start, end, tz);
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

fn summary(ctx: &Ctx, period: Period, by_vm: bool, out: &mut dyn Write) -> Result<Outcome> {
    let q = query(ctx, period);
    let s = report::summary(&ctx.store, &q)?;
    let mut suspect = false;
    for (c, p, m, n) in s.unpriced() {
        cli::warn(format!(
            "{c}: {n} requests of {}/{} have no price; their cost is not included (add the model to a price table)",
            escape_text(&p),
            escape_text(&m)
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
    for st in &s.standing {
        for u in &st.inactive {
            cli::warn(format!(
                "{}: usage recorded while {} ({} to {}): {} requests, {} activity events, {} resource samples",
                st.customer_id,
                u.status,
                render::text::local_z(&u.start, s.period.tz),
                render::text::local_z(&u.end, s.period.tz),
                u.api.requests,
                u.activity_events,
                u.resource_samples
            ));
            suspect = true;
        }
    }
    for c in &s.customers {
        if !c.resource.unregistered_vms.is_empty() {
            cli::warn(format!(
                "{}: usage from VMs the registry does not list for it: {} (mb-customer set {} --add-vm VM)",
                c.customer_id,
                c.resource.unregistered_vms.join(", "),
                c.customer_id
            ));
            suspect = true;
        }
    }
    if by_vm {
        match ctx.format {
            Format::Json => render::json::by_vm(&s, out)?,
            Format::Csv => render::csv::by_vm(&s, out)?,
            Format::Text => render::text::by_vm(&s, ctx.tz, &TextStyle::for_stdout(), out)?,
        }
        return Ok(Outcome::partial_if(suspect));
    }
    match ctx.format {
        Format::Json => render::json::summary(&s, out)?,
        Format::Csv => render::csv::summary(&s, out)?,
        Format::Text => {
            // Daily cost and CPU at a glance, on terminals only.
            let glance = if std::io::stdout().is_terminal() && s.period.kind != "day" {
                Some(glance::daily(&ctx.store, &q, &s)?)
            } else {
                None
            };
            let style = TextStyle::for_stdout();
            render::text::summary(&s, glance.as_deref(), &style, out)?
        }
    }
    Ok(Outcome::partial_if(suspect))
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
        Format::Json => render::json::series(&rows, out)?,
        Format::Csv => render::csv::series(&rows, out)?,
        Format::Text => render::text::series(&rows, ctx.tz, out)?,
    }
    Ok(Outcome::Success)
}

fn render_invoice(ctx: &Ctx, inv: &Invoice, out: &mut dyn Write) -> Result<()> {
    let billing = &ctx.cfg.billing;
    match ctx.format {
        Format::Csv => render::csv::invoice(inv, out),
        Format::Json => render::json::invoice(inv, billing, ctx.as_of, out),
        Format::Text => render::text::invoice(inv, billing, &TextStyle::for_stdout(), out),
    }
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
    let q = query(ctx, period.clone());
    let m = meter::meter(&ctx.store, &q, period, event_name, at, ctx.now)?;
    match ctx.format {
        Format::Json => render::json::stripe_meter(&m, period, ctx.as_of, out)?,
        // The CSV is the meter-event format itself, also without --csv.
        Format::Csv | Format::Text => render::csv::stripe_meter(&m, out)?,
    }
    for c in &m.missing {
        cli::warn(format!(
            "{c}: no Stripe customer id, its usage is left out (mb-customer set {c} --stripe-customer cus_...)"
        ));
    }
    for (day, why) in &m.refused {
        cli::warn(format!("{day} left out: it {why}"));
    }
    Ok(Outcome::partial_if(
        !m.missing.is_empty() || !m.refused.is_empty(),
    ))
}
