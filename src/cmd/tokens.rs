//! mb-tokens: priced `kind: "api"` lines from CLIProxyAPI and provider logs.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cli::{self, Outcome};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::{write_table, Align};
use crate::tokens::input::Format;
use crate::tokens::prices::{per_million, PriceTable};
use crate::tokens::pull::{self, PullOptions, Url};
use crate::tokens::state::State;
use crate::tokens::{self, KeyMap, Options, Source, TokensConfig};

/// Turn LLM usage records into priced mb-events(5) lines.
#[derive(Debug, Parser)]
#[command(
    name = "mb-tokens",
    version,
    about = "Turn LLM usage records (CLIProxyAPI, provider logs) into priced usage lines",
    long_about = "Turn LLM usage records (CLIProxyAPI, provider logs) into priced usage lines.\n\n\
Reads CLIProxyAPI usage-queue JSONL (what `mb-tokens pull` saves), the legacy \
/v0/management/usage snapshot, request-log files, or raw Anthropic/OpenAI/Gemini responses \
(detected per file, or --format), and writes one `kind: \"api\"` line of mb-events(5) per \
request on stdout: tokens normalised (tokens_in is uncached input, tokens_out includes \
reasoning, cache reads and writes apart) and an exact cost from a dated price table. \
An unknown model is written with priced false and cost_usd null, warned about once, and \
makes the exit status 1: usage is never lost nor billed as 0. Ids are deterministic \
(cpa:<timestamp>:<request_id>, else a hash of the record), so re-reading is harmless: \
mb-ingest skips duplicates. Bad records are reported as FILE:LINE: reason and skipped.\n\n\
Model matching: exact, then without a provider prefix (anthropic/, openai/, gemini/, \
models/, ...), then without a date suffix (-20250929, -2024-07-18, @20250929); never across \
versions. Long-context tiers (*_above_200k_tokens) apply to the whole request once its \
prompt (input + cache reads + cache writes) passes the threshold. A missing cache rate \
falls back to the input rate.",
    after_long_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub read: ReadArgs,
}

/// The arguments of the default action (reading usage records).
#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// Input files; `-` or none means standard input
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Input format, instead of detecting it per file
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,

    /// Remember per file (device, inode, first bytes) the offset reached, and read only what is new
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    #[command(flatten)]
    pub prices: PriceArgs,

    /// Customer of the usage (when no --key-map entry applies)
    #[arg(long, env = "MB_CUSTOMER_ID", value_name = "ID")]
    pub customer: Option<String>,

    /// VM of the usage [default: the host name]
    #[arg(long, env = "MB_VM_ID", value_name = "ID")]
    pub vm: Option<String>,

    /// CSV of `client key or its hash,customer_id,vm_id`, for a proxy serving several customers
    #[arg(long, value_name = "FILE")]
    pub key_map: Option<PathBuf>,

    /// Write the lines as one complete file into DIR (temp file, fsync, rename) for `mb-ingest --spool DIR`, instead of stdout; --state is saved only once that file is durable
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
}

/// Price-table arguments shared by reading and `prices`.
#[derive(Debug, clap::Args)]
pub struct PriceArgs {
    /// Prices merged over the built-in table (LiteLLM model_prices_and_context_window.json format); repeatable
    #[arg(long = "prices", value_name = "FILE")]
    pub prices: Vec<PathBuf>,

    /// Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml]
    #[arg(long, env = "MB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the effective price table (built-in plus --prices), USD per million tokens
    #[command(after_long_help = PRICES_EXAMPLES)]
    Prices(PricesArgs),
    /// Drain CLIProxyAPI's usage queue into a JSONL file, durably (fsync before each next pull)
    #[command(after_long_help = PULL_EXAMPLES)]
    Pull(PullArgs),
}

/// `mb-tokens prices`.
#[derive(Debug, clap::Args)]
pub struct PricesArgs {
    /// Print the table as LiteLLM-format JSON (USD per token), readable by --prices
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub prices: PriceArgs,
}

/// `mb-tokens pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// CLIProxyAPI base URL (plain http, on the proxy host)
    #[arg(long, default_value = "http://127.0.0.1:8317", value_name = "URL")]
    pub url: String,

    /// File holding the management key (remote-management.secret-key); refused unless only its owner can read it (chmod 600)
    #[arg(long, value_name = "FILE")]
    pub key_file: PathBuf,

    /// JSONL file the raw records are appended to
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Records asked for per request
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub count: u32,

    /// Seconds between pulls once the queue is empty (keep it well under the queue retention, 60 s by default)
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    pub interval: f64,

    /// Connect and read timeout, seconds
    #[arg(long, default_value = "30", value_name = "SECONDS")]
    pub timeout: f64,

    /// Stop when the queue is empty (exit 1 after --retries failed attempts in a row)
    #[arg(long)]
    pub once: bool,

    /// With --once: failed attempts in a row before giving up
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retries: u32,
}

const EXAMPLES: &str = "\
EXAMPLES:
    # The hourly cron job: price what is new since the last run into a durable spool file
    # (the state advances only once the file is on disk), then load the spool
    0 * * * *  mb-tokens --state /var/lib/mb/tokens.state --spool /var/lib/mb/spool \\
                 /var/log/cliproxy/usage.jsonl*; mb-ingest --spool /var/lib/mb/spool

    # A pipe works for a look or a one-off load, but guarantees nothing with --state:
    # the state advances once mb-ingest has read the lines, even if it then fails
    mb-tokens /var/log/cliproxy/usage.jsonl | mb-ingest

    # Keep the usage queue on disk (a systemd service next to the proxy)
    mb-tokens pull --key-file /etc/mb/cliproxy.key --out /var/log/cliproxy/usage.jsonl

    # One proxy, several customers: map client keys to customers and VMs
    mb-tokens --key-map /etc/mb/keys.csv --state tokens.state --spool /var/lib/mb/spool usage.jsonl

    # Old proxies: the legacy usage snapshot, and request-log files
    curl -s -H \"Authorization: Bearer $KEY\" http://127.0.0.1:8317/v0/management/usage \\
      | mb-tokens --customer acme --vm vm-1 | mb-ingest
    mb-tokens --customer acme logs/v1-*.log | mb-ingest

    # Override or add prices with LiteLLM's own file, then check a model's price
    mb-tokens --prices model_prices_and_context_window.json usage.jsonl | mb-ingest
    mb-tokens prices | grep sonnet";

const PRICES_EXAMPLES: &str = "\
EXAMPLES:
    # Which models are priced, and at what
    mb-tokens prices

    # Export the table, edit it, and use it
    mb-tokens prices --json > prices.json
    mb-tokens --prices prices.json usage.jsonl | mb-ingest";

const PULL_EXAMPLES: &str = "\
EXAMPLES:
    # Run next to the proxy, forever (records stay in the queue 60 s by default)
    mb-tokens pull --key-file /etc/mb/cliproxy.key --out /var/log/cliproxy/usage.jsonl

    # Drain once from cron, every minute
    * * * * * mb-tokens pull --once --key-file /etc/mb/cliproxy.key --out /var/log/cliproxy/usage.jsonl";

/// Run mb-tokens.
pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    match args.command {
        Some(Command::Prices(p)) => prices(p, out),
        Some(Command::Pull(p)) => pull_cmd(p),
        None => read(args.read, out),
    }
}

fn load_table(p: &PriceArgs) -> Result<(Config, TokensConfig, PriceTable)> {
    let cfg = Config::load(p.config.as_deref())?;
    let sec: TokensConfig = cfg.section("tokens")?;
    let mut table = PriceTable::builtin()?;
    for f in sec.prices.iter().chain(p.prices.iter()) {
        table.merge_file(f).map_err(|e| match e {
            Error::Invalid(m) => Error::Usage(format!("--prices {m}")),
            other => other,
        })?;
    }
    Ok((cfg, sec, table))
}

fn read(a: ReadArgs, out: &mut dyn Write) -> Result<Outcome> {
    let (cfg, sec, table) = load_table(&a.prices)?;
    let key_map = match a.key_map.as_ref().or(sec.key_map.as_ref()) {
        Some(p) => Some(KeyMap::load(p)?),
        None => None,
    };
    let default_target = if key_map.is_some() && a.customer.is_none() && cfg.customer_id.is_none() {
        None
    } else {
        Some((
            cfg.customer(a.customer.as_deref())?,
            cfg.vm(a.vm.as_deref())?,
        ))
    };
    let sources: Vec<Source> = if a.files.is_empty() {
        vec![Source::Stdin]
    } else {
        a.files
            .iter()
            .map(|f| {
                if f.as_os_str() == "-" {
                    Source::Stdin
                } else {
                    Source::File(f.clone())
                }
            })
            .collect()
    };
    let mut state = match &a.state {
        Some(p) => {
            if sources.iter().any(|s| matches!(s, Source::Stdin)) {
                cli::warn("--state does not apply to standard input; it is read whole");
            }
            Some(State::open(p)?)
        }
        None => None,
    };
    let opts = Options {
        format: a.format,
        table,
        default_target,
        key_map,
        now: crate::time::now(),
    };
    // The state may only move past what is delivered: with --spool, a
    // durable file that mb-ingest --spool takes (nothing can be lost); on
    // stdout, what the reader has been handed (if mb-ingest then fails, the
    // lines are gone, which is why the cron form is the spool one).
    let stats = match &a.spool {
        Some(dir) => {
            let mut file = crate::spool::SpoolFile::create(dir, "tokens")?;
            let stats = tokens::run(&opts, &sources, state.as_mut(), &mut file)?;
            file.commit()?;
            stats
        }
        None => {
            let stats = tokens::run(&opts, &sources, state.as_mut(), out)?;
            out.flush()?;
            stats
        }
    };
    if let Some(st) = state.as_mut() {
        st.save(opts.now)?;
    }
    Ok(Outcome::partial_if(stats.partial()))
}

fn prices(p: PricesArgs, out: &mut dyn Write) -> Result<Outcome> {
    let (_, _, table) = load_table(&p.prices)?;
    if p.json {
        writeln!(out, "{{")?;
        let n = table.len();
        for (i, e) in table.entries().enumerate() {
            let mut fields: Vec<String> = Vec::new();
            let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
            if let Some(pv) = &e.provider {
                fields.push(format!("\"litellm_provider\": {}", q(pv)));
            }
            let mut rate = |name: String, v: Option<rust_decimal::Decimal>| {
                if let Some(v) = v {
                    fields.push(format!("{}: {}", q(&name), v.normalize()));
                }
            };
            let put = |rate: &mut dyn FnMut(String, Option<rust_decimal::Decimal>),
                       r: &tokens::prices::Rates,
                       suffix: &str| {
                rate(format!("input_cost_per_token{suffix}"), r.input);
                rate(format!("output_cost_per_token{suffix}"), r.output);
                rate(format!("cache_read_input_token_cost{suffix}"), r.cache_read);
                rate(
                    format!("cache_creation_input_token_cost{suffix}"),
                    r.cache_write,
                );
                if suffix.is_empty() {
                    rate(
                        "cache_creation_input_token_cost_above_1hr".into(),
                        r.cache_write_1h,
                    );
                }
                rate(
                    format!("output_cost_per_reasoning_token{suffix}"),
                    r.reasoning,
                );
            };
            put(&mut rate, &e.base, "");
            for (th, r) in &e.tiers {
                put(&mut rate, r, &format!("_above_{}k_tokens", th / 1000));
            }
            if let Some(d) = &e.deprecation_date {
                fields.push(format!("\"deprecation_date\": {}", q(d)));
            }
            fields.push(format!("\"mb_price_table\": {}", q(&e.table)));
            let comma = if i + 1 < n { "," } else { "" };
            writeln!(out, "  {}: {{{}}}{comma}", q(&e.key), fields.join(", "))?;
        }
        writeln!(out, "}}")?;
        return Ok(Outcome::Success);
    }
    let m = |d: Option<rust_decimal::Decimal>| d.map(per_million).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = table
        .entries()
        .map(|e| {
            let tiers: Vec<String> = e
                .tiers
                .iter()
                .map(|(th, r)| {
                    format!(
                        ">{}k: {}/{}",
                        th / 1000,
                        m(r.input.or(e.base.input)),
                        m(r.output.or(e.base.output))
                    )
                })
                .collect();
            vec![
                e.key.clone(),
                m(e.base.input),
                m(e.base.output),
                m(e.base.cache_read),
                m(e.base.cache_write),
                m(e.base.cache_write_1h),
                if tiers.is_empty() {
                    "-".into()
                } else {
                    tiers.join(" ")
                },
                e.table.clone(),
            ]
        })
        .collect();
    writeln!(out, "# USD per 1,000,000 tokens; '-' = not set (a missing cache rate is charged at the input rate)")?;
    write_table(
        out,
        &[
            "MODEL",
            "INPUT",
            "OUTPUT",
            "CACHE_READ",
            "CACHE_WRITE",
            "CACHE_WRITE_1H",
            "LONG_CONTEXT",
            "TABLE",
        ],
        &[
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Left,
            Align::Left,
        ],
        &rows,
    )?;
    Ok(Outcome::Success)
}

fn seconds(v: f64, flag: &str) -> Result<Duration> {
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return Err(Error::Usage(format!(
            "{flag} {v}: expected seconds between 0 and 86400"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

fn pull_cmd(p: PullArgs) -> Result<Outcome> {
    let url = Url::parse(&p.url).map_err(|e| Error::Usage(format!("--url {e}")))?;
    let text = crate::fsutil::read_secret(&p.key_file, "--key-file")?;
    let key = text.trim().to_string();
    if key.is_empty() || key.contains(['\r', '\n']) {
        return Err(Error::Usage(format!(
            "--key-file {}: expected the management key on one line",
            p.key_file.display()
        )));
    }
    if p.count == 0 {
        return Err(Error::Usage("--count must be at least 1".into()));
    }
    let o = PullOptions {
        url,
        key,
        out: p.out,
        count: p.count,
        interval: seconds(p.interval, "--interval")?,
        timeout: seconds(p.timeout, "--timeout")?.max(Duration::from_millis(100)),
        once: p.once,
        retries: p.retries,
    };
    let st = pull::run(&o)?;
    if st.failures > 0 {
        cli::warn(format!(
            "pull: {} records saved, {} failed attempts{}",
            st.saved,
            st.failures,
            if st.lost_bytes > 0 {
                format!(", {} bytes of cut records lost", st.lost_bytes)
            } else {
                String::new()
            }
        ));
    }
    Ok(Outcome::partial_if(st.failures > 0))
}
