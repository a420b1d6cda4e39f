//! mb-tokens: priced `kind: "api"` lines from CLIProxyAPI and provider logs.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cli::{self, Outcome};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::{write_table, Align};
use crate::store::{Mode, Store};
use crate::tokens::client::{self, ClientHasher};
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

    #[command(flatten)]
    pub client_key: ClientKeyArgs,
}

/// Where the secret of the keyed `client` hash lives.
#[derive(Debug, clap::Args)]
pub struct ClientKeyArgs {
    /// Secret keying the `client` hash, created 0600 on first use [default: `client_key` in mb.toml, else <state_dir>/client.key: /var/lib/mb/client.key for root, $XDG_STATE_HOME/mb/client.key otherwise]
    #[arg(long, env = "MB_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,
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
    /// Price stored usage that was stored unpriced, now that the price table covers its model
    #[command(
        long_about = "Price stored usage that was stored unpriced, now that the price table covers its model.\n\n\
Reads every api row of the database with priced = false (since --since), prices those whose \
model the effective table (built-in plus --prices) now knows, with the rules mb-tokens uses for \
new lines, and in one transaction updates the rows and the api_rollup and records each change \
(row id, old and new cost and price key, price table) in reprice_log under one reprice_runs \
row. A priced row is never touched, so a second run changes nothing. Rows whose tokens upstream \
could not classify (source_format usage-queue-unclassified) are never priced.\n\n\
Prints what it priced, per customer, model and price key. Exit status: 0 when no unpriced row is \
left in the range, 1 when some still are (their models are listed on stderr), 2 on a usage or \
database error (nothing is changed).",
        after_long_help = REPRICE_EXAMPLES
    )]
    Reprice(RepriceArgs),
    /// Print the keyed `client` hash of proxy keys read from standard input, one per line (for --key-map)
    #[command(after_long_help = CLIENT_HASH_EXAMPLES)]
    ClientHash(ClientHashArgs),
}

/// `mb-tokens reprice`.
#[derive(Debug, clap::Args)]
pub struct RepriceArgs {
    #[command(flatten)]
    pub db: crate::cli::DbArgs,

    /// Prices merged over the built-in table (LiteLLM format); repeatable
    #[arg(long = "prices", value_name = "FILE")]
    pub prices: Vec<PathBuf>,

    /// Only rows whose event time is at or after T (RFC 3339, or a date: its start in UTC)
    #[arg(long, value_name = "T")]
    pub since: Option<String>,

    /// Show what would be priced; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `mb-tokens client-hash`.
#[derive(Debug, clap::Args)]
pub struct ClientHashArgs {
    #[command(flatten)]
    pub client_key: ClientKeyArgs,

    /// Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml]
    #[arg(long, env = "MB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
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

    /// With --once: failed attempts in a row before giving up (without --once the service retries every --interval for ever)
    #[arg(long, default_value_t = 3, value_name = "N", requires = "once")]
    pub retries: u32,
}

const EXAMPLES: &str = "\
EXAMPLES:
    # Hourly from cron: price what is new since the last run into a durable
    # spool file (the state advances only once the file is on disk), then
    # load the spool
    mb-tokens --state /var/lib/mb/tokens.state --spool /var/lib/mb/spool \\
        /var/log/cliproxy/usage.jsonl*
    mb-ingest --spool /var/lib/mb/spool

    # A pipe works for a look or a one-off load, but guarantees nothing with
    # --state: the state advances once mb-ingest has read the lines, even if
    # it then fails
    mb-tokens /var/log/cliproxy/usage.jsonl | mb-ingest

    # Keep the usage queue on disk (a systemd service next to the proxy)
    mb-tokens pull --key-file /etc/mb/cliproxy.key \\
        --out /var/log/cliproxy/usage.jsonl

    # One proxy, several customers: map client keys to customers and VMs
    mb-tokens --key-map /etc/mb/keys.csv --state tokens.state \\
        --spool /var/lib/mb/spool usage.jsonl

    # Old proxies: the legacy usage snapshot, and request-log files
    curl -s -H \"Authorization: Bearer $KEY\" \\
        http://127.0.0.1:8317/v0/management/usage \\
        | mb-tokens --customer acme --vm vm-1 | mb-ingest
    mb-tokens --customer acme logs/v1-*.log | mb-ingest

    # Override or add prices with LiteLLM's own file; check a model's price
    mb-tokens --prices model_prices_and_context_window.json usage.jsonl \\
        | mb-ingest
    mb-tokens prices | grep sonnet";

const PRICES_EXAMPLES: &str = "\
EXAMPLES:
    # Which models are priced, and at what
    mb-tokens prices

    # Export the table, edit it, and use it
    mb-tokens prices --json > prices.json
    mb-tokens --prices prices.json usage.jsonl | mb-ingest";

const REPRICE_EXAMPLES: &str = "\
EXAMPLES:
    # The invoice refused unpriced usage: add the price, look, then reprice
    mb-tokens reprice --prices /etc/mb/prices.json --dry-run
    mb-tokens reprice --prices /etc/mb/prices.json
    mb-report invoice --month 2026-11

    # What was repriced, and when
    sqlite3 /var/lib/mb/usage.db 'SELECT * FROM reprice_runs'";

const CLIENT_HASH_EXAMPLES: &str = "\
EXAMPLES:
    # The client value of a proxy key, for a --key-map row (the key stays
    # out of argv)
    printf '%s\\n' \"$PROXY_KEY\" | mb-tokens client-hash";

const PULL_EXAMPLES: &str = "\
EXAMPLES:
    # The documented way: a service next to the proxy, pulling every 10 s
    # (records stay queued only 60 s by default;
    # scripts/systemd/mb-tokens-pull.service)
    systemctl enable --now mb-tokens-pull.service

    # The same by hand, in the foreground
    mb-tokens pull --key-file /etc/mb/cliproxy.key \\
        --out /var/log/cliproxy/usage.jsonl

    # Drain what is queued now and stop (tests, catching up; not for cron:
    # a minute between runs is all the margin a 60 s retention leaves)
    mb-tokens pull --once --key-file /etc/mb/cliproxy.key \\
        --out /var/log/cliproxy/usage.jsonl";

/// Run mb-tokens.
pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    match args.command {
        Some(Command::Prices(p)) => prices(p, out),
        Some(Command::Pull(p)) => pull_cmd(p),
        Some(Command::Reprice(r)) => reprice(r, out),
        Some(Command::ClientHash(c)) => client_hash(c, out),
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
    let hasher = load_hasher(&cfg, &sec, &a.client_key)?;
    let key_map = match a.key_map.as_ref().or(sec.key_map.as_ref()) {
        Some(p) => Some(KeyMap::load(p, &hasher)?),
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
        // Waiting silently on a terminal looks like a hang: say what is read.
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            crate::cli::warn(
                "reading usage records from standard input (a terminal); end with Ctrl-D, \
                 or name the files: mb-tokens FILE...",
            );
        }
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
            if sources.iter().all(|s| matches!(s, Source::Stdin)) {
                return Err(Error::Usage(format!(
                    "--state {}: standard input has no file identity or offset to remember; \
                     name the log files (mb-tokens --state {} FILE...)",
                    p.display(),
                    p.display()
                )));
            }
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
        hasher,
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

/// The keyed `client` hasher: `--client-key`, else `client_key` in mb.toml,
/// else `<state_dir>/client.key`, created on first use.
fn load_hasher(cfg: &Config, sec: &TokensConfig, a: &ClientKeyArgs) -> Result<ClientHasher> {
    let path = a
        .client_key
        .clone()
        .or_else(|| sec.client_key.clone())
        .unwrap_or_else(|| client::default_path(&cfg.state_dir()));
    ClientHasher::load_or_create(&path)
}

fn client_hash(c: ClientHashArgs, out: &mut dyn Write) -> Result<Outcome> {
    let cfg = Config::load(c.config.as_deref())?;
    let sec: TokensConfig = cfg.section("tokens")?;
    let hasher = load_hasher(&cfg, &sec, &c.client_key)?;
    let mut n = 0u64;
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| Error::io("stdin", e))?;
        let key = line.strip_suffix('\r').unwrap_or(&line);
        if key.is_empty() {
            cli::warn(format!("stdin:{}: empty line skipped", i + 1));
            continue;
        }
        writeln!(out, "{}", hasher.hash(key))?;
        n += 1;
    }
    if n == 0 {
        return Err(Error::Usage(
            "no key on standard input; pipe the proxy keys in, one per line".into(),
        ));
    }
    Ok(Outcome::Success)
}

fn reprice(r: RepriceArgs, out: &mut dyn Write) -> Result<Outcome> {
    let (cfg, db) = r.db.resolve()?;
    let sec: TokensConfig = cfg.section("tokens")?;
    let mut table = PriceTable::builtin()?;
    let mut names = vec![crate::tokens::prices::BUILTIN_NAME.to_string()];
    for f in sec.prices.iter().chain(r.prices.iter()) {
        let name = table.merge_file(f).map_err(|e| match e {
            Error::Invalid(m) => Error::Usage(format!("--prices {m}")),
            other => other,
        })?;
        names.push(name);
    }
    let since_ns = match &r.since {
        None => None,
        Some(s) => {
            let t = crate::time::parse_instant_or_date(s, chrono_tz::UTC).ok_or_else(|| {
                Error::Usage(format!(
                    "--since {s:?}: expected RFC 3339 (2026-11-01T00:00:00Z) or a date (2026-11-01)"
                ))
            })?;
            Some(crate::time::to_unix_nanos(&t).ok_or_else(|| {
                Error::Usage(format!("--since {s:?}: outside the years 1678..2261"))
            })?)
        }
    };
    let mode = if r.dry_run {
        Mode::ReadOnly
    } else {
        Mode::ReadWrite
    };
    // Repricing needs stored usage: never create an empty database here.
    if !db.exists() {
        return Err(Error::Usage(format!(
            "{}: no database here; pass --db PATH (or set MB_DB)",
            db.display()
        )));
    }
    let store = Store::open(&db, mode)?;
    let now = crate::time::format_fixed_micros(&crate::time::now());
    let o = crate::tokens::reprice::run(&store, &table, &names, since_ns, r.dry_run, &now)?;
    print_reprice(&o, r.dry_run, out)?;
    for (m, n) in &o.still_unpriced {
        cli::warn(format!(
            "still unpriced: {} ({n} rows): add it with --prices FILE and run reprice again",
            crate::output::escape_text(m)
        ));
    }
    if o.unclassified > 0 {
        cli::warn(format!(
            "{} rows have tokens upstream could not classify (source_format {}); they stay \
             unpriced (bill them by hand, or with mb-report invoice --allow-unpriced)",
            o.unclassified,
            crate::tokens::usage::UNCLASSIFIED_QUEUE
        ));
    }
    for id in &o.overflow {
        cli::warn(format!(
            "row {id}: the cost does not fit in 64 bits of nano-USD; corrupt counts? left unpriced"
        ));
    }
    if o.committed.raced > 0 {
        cli::warn(format!(
            "{} rows were priced by another run meanwhile and left as they were",
            o.committed.raced
        ));
    }
    Ok(Outcome::partial_if(
        !o.still_unpriced.is_empty() || o.unclassified > 0 || !o.overflow.is_empty(),
    ))
}

fn print_reprice(
    o: &crate::tokens::reprice::Outcome,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<()> {
    use crate::money::format_nanos;
    let mut groups: std::collections::BTreeMap<(&str, &str, &str), (u64, i64)> = Default::default();
    for c in &o.changes {
        let g = groups
            .entry((&c.row.customer_id, &c.row.model, &c.price_key))
            .or_default();
        g.0 += 1;
        g.1 = g.1.saturating_add(c.cost_nusd);
    }
    let total: i64 = o
        .changes
        .iter()
        .map(|c| c.cost_nusd)
        .fold(0, i64::saturating_add);
    let head = if dry_run {
        format!(
            "# dry run: {} rows would be priced, USD {}; nothing changed",
            o.changes.len(),
            format_nanos(total)
        )
    } else if let Some(id) = o.committed.reprice_id {
        format!(
            "# {} rows priced, USD {} (reprice_runs.reprice_id {id})",
            o.committed.rows,
            format_nanos(o.committed.cost_nusd)
        )
    } else {
        "# nothing to price".to_string()
    };
    writeln!(out, "{head}")?;
    if groups.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|((c, m, k), (n, cost))| {
            vec![
                crate::output::escape_text(c).into_owned(),
                crate::output::escape_text(m).into_owned(),
                crate::output::escape_text(k).into_owned(),
                n.to_string(),
                format_nanos(*cost),
            ]
        })
        .collect();
    write_table(
        out,
        &["CUSTOMER", "MODEL", "PRICE_KEY", "ROWS", "COST_USD"],
        &[
            Align::Left,
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Right,
        ],
        &rows,
    )?;
    Ok(())
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
                rate(
                    format!("cache_creation_input_token_cost_above_1hr{suffix}"),
                    r.cache_write_1h,
                );
                rate(
                    format!("output_cost_per_reasoning_token{suffix}"),
                    r.reasoning,
                );
                rate(format!("input_cost_per_image_token{suffix}"), r.input_image);
                rate(
                    format!("output_cost_per_image_token{suffix}"),
                    r.output_image,
                );
            };
            put(&mut rate, &e.base, "");
            for (th, r) in &e.tiers {
                put(&mut rate, r, &format!("_above_{}k_tokens", th / 1000));
            }
            for (st, tr) in &e.service {
                put(&mut rate, &tr.base, &format!("_{st}"));
                for (th, r) in &tr.tiers {
                    put(&mut rate, r, &format!("_above_{}k_tokens_{st}", th / 1000));
                }
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
