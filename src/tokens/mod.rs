//! mb-tokens: LLM usage records in, priced `kind: "api"` lines out.
//!
//! This module owns the whole path from a CLIProxyAPI (or provider) usage
//! record to a line of mb-events(5) with an exact cost:
//!
//! - [`input`]: line splitting with byte offsets, format detection;
//! - [`queue`], [`snapshot`], [`reqlog`], [`provider`]: one reader per input
//!   format, each producing normalised [`usage::Record`]s;
//! - [`usage`]: the per-provider token semantics (subset or separate);
//! - [`prices`]: the dated price table, model matching, exact cost;
//! - [`state`]: the resume state of `--state`;
//! - [`pull`]: draining CLIProxyAPI's usage queue into a durable file.
//!
//! The [`Processor`] here ties them together: it prices each record, maps
//! it to a customer and VM, checks it against the contract (so every line
//! passes mb-ingest), and writes it. Bad input is reported as
//! `FILE:LINE: reason`, counted and skipped, never aborting the rest; an
//! unknown model is emitted unpriced (`priced: false`, `cost_usd: null`)
//! with one warning per model, so usage is never lost nor billed as 0.

pub mod client;
pub mod input;
pub mod prices;
pub mod provider;
pub mod pull;
pub mod queue;
pub mod reprice;
pub mod reqlog;
pub mod snapshot;
pub mod state;
pub mod usage;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::cli;
use crate::error::{Error, Result};
use crate::events::{self, Api, Body, Event, Header};
use client::ClientHasher;
use input::{Format, Line, LineReader};
use prices::{LookupCache, PriceTable};
use state::{Resume, State};
use usage::Record;

/// The `[tokens]` section of mb.toml.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Price files merged over the built-in table, in order (`--prices`
    /// adds more after these).
    #[serde(default)]
    pub prices: Vec<PathBuf>,
    /// The `--key-map` CSV, when one proxy serves several customers.
    pub key_map: Option<PathBuf>,
    /// The secret keying the `client` hash (`--client-key`).
    pub client_key: Option<PathBuf>,
}

/// Bad-line messages printed per run before only counting.
const MAX_REPORTED: u64 = 100;

/// `--key-map`: client key (or its hash) -> (customer_id, vm_id).
#[derive(Debug, Default)]
pub struct KeyMap {
    /// By keyed hash (what `client` holds now).
    by_hash: HashMap<String, (String, String)>,
    /// By the legacy plain-SHA-256 value, for maps written before the keyed
    /// hash (see [`client`]).
    by_legacy: HashMap<String, (String, String)>,
}

impl KeyMap {
    /// Read the CSV `client key or hash, customer_id, vm_id`. A first row
    /// whose second field is `customer_id` is a header. A field of 32 hex
    /// digits is a keyed hash (the `client` value, `mb-tokens client-hash`),
    /// one of 16 or 64 hex digits a legacy hash (the old 16-digit `client`
    /// value or a full sha256sum), anything else a key in clear, hashed on
    /// loading.
    pub fn load(path: &Path, hasher: &ClientHasher) -> Result<KeyMap> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .flexible(true)
            .from_path(path)
            .map_err(|e| Error::Usage(format!("--key-map {}: {e}", path.display())))?;
        let mut m = KeyMap::default();
        for (i, row) in rdr.records().enumerate() {
            let row =
                row.map_err(|e| Error::Usage(format!("--key-map {}: {e}", path.display())))?;
            let line = row.position().map(|p| p.line()).unwrap_or(i as u64 + 1);
            if i == 0 && row.get(1) == Some("customer_id") {
                continue;
            }
            let bad =
                |msg: String| Error::Usage(format!("--key-map {}:{line}: {msg}", path.display()));
            if row.len() != 3 {
                return Err(bad(format!(
                    "expected 3 fields (client key or hash, customer_id, vm_id), got {}",
                    row.len()
                )));
            }
            let (key, cust, vm) = (&row[0], &row[1], &row[2]);
            for (name, v) in [("customer_id", cust), ("vm_id", vm)] {
                if !events::is_ident(v) {
                    return Err(bad(format!("{name} {v:?} {}", events::IDENT_RULE)));
                }
            }
            if key.is_empty() {
                return Err(bad("empty client key".into()));
            }
            let is_hex = key.bytes().all(|b| b.is_ascii_hexdigit());
            let (map, hash) = if is_hex && key.len() == client::KEYED_LEN {
                (&mut m.by_hash, key.to_ascii_lowercase())
            } else if is_hex && (key.len() == 16 || key.len() == 64) {
                (&mut m.by_legacy, key[..16].to_ascii_lowercase())
            } else {
                (&mut m.by_hash, hasher.hash(key))
            };
            let target = (cust.to_string(), vm.to_string());
            if let Some(old) = map.insert(hash, target.clone()) {
                if old != target {
                    return Err(bad(
                        "this client is already mapped to another customer/VM".into()
                    ));
                }
            }
        }
        Ok(m)
    }

    /// The customer and VM for a client key, by its keyed hash `hash`,
    /// else by its legacy hash.
    pub fn get(&self, hash: &str, key: &str) -> Option<&(String, String)> {
        self.by_hash.get(hash).or_else(|| {
            if self.by_legacy.is_empty() {
                None
            } else {
                self.by_legacy.get(&client::legacy_hash(key))
            }
        })
    }
}

/// Everything a run needs besides its inputs.
pub struct Options {
    /// Force one format for every input instead of detecting.
    pub format: Option<Format>,
    /// The effective price table.
    pub table: PriceTable,
    /// `--customer`/`--vm` (or config): used when no key-map entry applies.
    pub default_target: Option<(String, String)>,
    /// `--key-map`.
    pub key_map: Option<KeyMap>,
    /// The clock (bounds timestamps like mb-ingest does).
    pub now: DateTime<Utc>,
    /// Keys the `client` hash.
    pub hasher: ClientHasher,
}

/// Counts of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Lines written.
    pub emitted: u64,
    /// Input records rejected (reported as FILE:LINE).
    pub bad: u64,
    /// Records with inconsistent counts (emitted, with a warning).
    pub suspect: u64,
    /// Lines emitted unpriced, per model.
    pub unpriced: BTreeMap<String, u64>,
    /// Lines emitted unpriced because upstream could not classify their
    /// tokens (counted in `suspect` too, through their note).
    pub unclassified: u64,
    /// Inputs skipped as carrying no billable usage, by kind
    /// (`count_tokens` request logs).
    pub skipped: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// True when the run should exit 1.
    pub fn partial(&self) -> bool {
        self.bad > 0 || self.suspect > 0 || !self.unpriced.is_empty()
    }
}

/// One input: a path, or standard input.
#[derive(Debug, Clone)]
pub enum Source {
    /// Standard input (`-` or no file).
    Stdin,
    /// A file.
    File(PathBuf),
}

/// Prices, maps and writes records; counts what it does.
pub struct Processor<'a> {
    opts: &'a Options,
    out: &'a mut dyn Write,
    cache: LookupCache,
    clients: HashMap<String, String>,
    /// Counts so far.
    pub stats: Stats,
    reported: u64,
    line: Vec<u8>,
    /// Request logs without upstream sections (commercial mode), reported once.
    no_upstream: u64,
}

impl<'a> Processor<'a> {
    /// A processor writing to `out`.
    pub fn new(opts: &'a Options, out: &'a mut dyn Write) -> Self {
        Processor {
            opts,
            out,
            cache: LookupCache::default(),
            clients: HashMap::new(),
            stats: Stats::default(),
            reported: 0,
            line: Vec::with_capacity(1024),
            no_upstream: 0,
        }
    }

    /// Report a bad input record as `NAME:LINE: reason` and count it.
    pub fn bad(&mut self, name: &str, line: u64, reason: &str) {
        self.stats.bad += 1;
        self.report(format!("{name}:{line}: {reason}"));
    }

    fn report(&mut self, msg: String) {
        self.reported += 1;
        if self.reported <= MAX_REPORTED {
            cli::warn(msg);
        } else if self.reported == MAX_REPORTED + 1 {
            cli::warn(format!(
                "more than {MAX_REPORTED} problems; only counting from now on"
            ));
        }
    }

    /// Price, map, check and write one record.
    pub fn emit(&mut self, name: &str, line: u64, rec: Record, note: Option<String>) -> Result<()> {
        if let Some(n) = note {
            self.stats.suspect += 1;
            self.report(format!("{name}:{line}: {n}"));
        }
        let client = rec.client_key.as_deref().map(|k| {
            if let Some(h) = self.clients.get(k) {
                return h.clone();
            }
            let h = self.opts.hasher.hash(k);
            self.clients.insert(k.to_string(), h.clone());
            h
        });
        let target = match (&self.opts.key_map, &client, rec.client_key.as_deref()) {
            (Some(km), Some(h), Some(k)) => km.get(h, k).or(self.opts.default_target.as_ref()),
            _ => self.opts.default_target.as_ref(),
        };
        let Some((customer_id, vm_id)) = target.cloned() else {
            let who = match &client {
                Some(h) => format!("client {h} is not in --key-map"),
                None => "the record names no client key".to_string(),
            };
            self.bad(
                name,
                line,
                &format!("{who}, and no --customer is set; record skipped"),
            );
            return Ok(());
        };
        // The tier upstream reports as applied (the response tier, else the
        // requested one), priced at its own rates where the entry has them.
        let service = rec
            .service_tier
            .as_deref()
            .and_then(prices::service_tier_name);
        let price = if rec.unclassified.is_some() {
            None
        } else {
            self.cache.get(&self.opts.table, &rec.model)
        };
        let (price_key, price_table, cost) = match price {
            Some(p) => {
                let (cost, used) = p.cost_nanos_at(&rec.tokens, service);
                (Some(p.key_for(service, used)), Some(p.table.clone()), cost)
            }
            None => (None, None, None),
        };
        let priced = if rec.unclassified.is_some() {
            self.stats.unclassified += 1;
            None
        } else if rec.tokens.is_zero() {
            // Nothing used costs exactly 0 whatever the price.
            Some(0)
        } else if price_key.is_some() {
            match cost {
                Some(c) => Some(c),
                None => {
                    self.bad(
                        name,
                        line,
                        "cost does not fit in 64 bits of nano-USD; corrupt counts?",
                    );
                    return Ok(());
                }
            }
        } else {
            let n = self.stats.unpriced.entry(rec.model.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                let msg = format!(
                    "{name}:{line}: no price for model {:?} (provider {}); its lines are written \
                     with priced false and cost_usd null: add it with --prices FILE (and \
                     `mb-tokens reprice` what is already stored)",
                    rec.model, rec.provider
                );
                self.report(msg);
            }
            None
        };
        let t = rec.tokens;
        let ev = Event {
            header: Header {
                id: rec.id,
                ts: rec.ts,
                customer_id,
                vm_id,
            },
            body: Body::Api(Api {
                provider: rec.provider,
                model: rec.model,
                price_key,
                tokens_in: t.input,
                tokens_out: t.output,
                cache_read_tokens: t.cache_read,
                cache_write_tokens: t.cache_write,
                reasoning_tokens: t.reasoning,
                cost_nusd: priced,
                priced: priced.is_some(),
                price_table: if priced.is_some() { price_table } else { None },
                request_id: rec.request_id,
                failed: rec.failed,
                auth_type: rec.auth_type.to_string(),
                client,
                service_tier: rec.service_tier,
                source_format: Some(rec.source_format.to_string()),
            }),
        };
        if let Err(why) = check(&ev, self.opts.now) {
            self.bad(name, line, &why);
            return Ok(());
        }
        // Serialise into a reused buffer, then one write: serde_json writes
        // many small pieces, each a dynamic call on `out` otherwise.
        self.line.clear();
        serde_json::to_writer(&mut self.line, &ev).map_err(io::Error::from)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.stats.emitted += 1;
        Ok(())
    }

    /// Read a line format (usage-queue or provider) from `r`, whose first
    /// byte is at `offset` (after `line` lines). With `tail`, a last line
    /// without a newline and a provider stream still open at the end are
    /// left for the next run. Returns the offset and line count reached.
    #[allow(clippy::too_many_arguments)]
    pub fn read_lines<R: BufRead>(
        &mut self,
        name: &str,
        r: R,
        format: Format,
        offset: u64,
        line: u64,
        tail: bool,
        fallback_ts: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        let mut lr = LineReader::new(r, offset, line);
        let mut prov = provider::Parser::new();
        let mut warned_ts = false;
        let mut done_upto = (offset, line);
        loop {
            let before = lr.offset;
            let kind = match lr.next_line() {
                Ok(Some(k)) => k,
                Ok(None) => break,
                Err(e) => return Err(Error::io(name, e)),
            };
            if kind == Line::Partial && tail {
                break;
            }
            let n = lr.line_no;
            if kind == Line::TooLong {
                self.bad(
                    name,
                    n,
                    &format!("line longer than {} bytes; skipped", input::MAX_LINE),
                );
            } else if lr.buf.iter().all(u8::is_ascii_whitespace) {
                // Blank lines are allowed anywhere.
            } else if format == Format::UsageQueue {
                match queue::parse(&lr.buf) {
                    Ok((rec, note)) => self.emit(name, n, rec, note)?,
                    Err(why) => self.bad(name, n, &why),
                }
            } else {
                let fed = prov.feed(&lr.buf, n, before);
                if let Some(e) = fed.error {
                    self.bad(name, n, &e);
                }
                for d in fed.done {
                    self.provider_done(name, d, fallback_ts, &mut warned_ts)?;
                }
            }
            if kind != Line::Partial {
                done_upto = prov.pending_start().unwrap_or((lr.offset, lr.line_no));
            }
        }
        if !tail {
            if let Some(d) = prov.finish() {
                self.provider_done(name, d, fallback_ts, &mut warned_ts)?;
            }
        }
        Ok(done_upto)
    }

    fn provider_done(
        &mut self,
        name: &str,
        d: provider::Done,
        fallback: DateTime<Utc>,
        warned: &mut bool,
    ) -> Result<()> {
        let Some(model) = d.model.clone() else {
            self.bad(name, d.line, "the response names no model");
            return Ok(());
        };
        let ts = match d.ts {
            Some(t) => t,
            None => {
                if !*warned {
                    *warned = true;
                    cli::warn(format!(
                        "{name}: responses carry no start time; using the file's modification time"
                    ));
                }
                fallback
            }
        };
        let provider = match d.family {
            usage::Family::Anthropic => "anthropic",
            usage::Family::OpenAi => "openai",
            usage::Family::Google => "google",
        };
        let rec = Record {
            id: usage::hash_id_from("provider", &d.digest),
            ts,
            request_id: None,
            provider: provider.to_string(),
            model,
            tokens: d.tokens,
            failed: d.failed,
            auth_type: "unknown",
            client_key: None,
            service_tier: d.service_tier,
            source_format: Format::Provider.as_str(),
            unclassified: None,
        };
        self.emit(name, d.line, rec, d.note)
    }
}

impl Processor<'_> {
    /// Read a whole-document format (usage-snapshot, request-log).
    pub fn read_whole(&mut self, name: &str, text: &str, format: Format) -> Result<()> {
        match format {
            Format::UsageSnapshot => match snapshot::parse(text) {
                Ok(snap) => {
                    if snap.ambiguous > 0 {
                        cli::warn(format!(
                            "{name}: {} Claude-model records name no executor (the legacy \
                             snapshot has no provider field); they are read with Anthropic's \
                             token rules, which is wrong if Antigravity or the Gemini CLI served \
                             them (cached tokens counted twice, thinking dropped): see \
                             docs/mb-tokens.md, \"Legacy snapshots\"",
                            snap.ambiguous
                        ));
                    }
                    for it in snap.items {
                        match it {
                            snapshot::Item::Ok(line, rec, note) => {
                                self.emit(name, line, *rec, note)?
                            }
                            snapshot::Item::Bad(line, why) => self.bad(name, line, &why),
                        }
                    }
                }
                Err(why) => self.bad(name, 1, &why),
            },
            Format::RequestLog => match reqlog::parse(text, name) {
                Ok(reqlog::Parsed::Records(recs)) => {
                    for (line, rec, note) in recs {
                        self.emit(name, line, rec, note)?;
                    }
                }
                Ok(reqlog::Parsed::Skip(kind)) => *self.stats.skipped.entry(kind).or_default() += 1,
                Ok(reqlog::Parsed::NoUpstream(line)) => {
                    self.stats.bad += 1;
                    self.no_upstream += 1;
                    if self.no_upstream == 1 {
                        self.report(format!(
                            "{name}:{line}: the request log has no upstream section (API REQUEST, \
                             API RESPONSE or API WEBSOCKET TIMELINE), as CLIProxyAPI writes them \
                             with `commercial-mode: true`: set commercial-mode: false in its \
                             config.yaml to read request logs, or read the usage queue \
                             (mb-tokens pull); further such files are only counted"
                        ));
                    }
                }
                Err((line, why)) => self.bad(name, line, &why),
            },
            // Line formats never come here; treat them as lines for safety.
            Format::UsageQueue | Format::Provider => {
                self.read_lines(name, text.as_bytes(), format, 0, 0, false, self.opts.now)?;
            }
        }
        Ok(())
    }

    /// Process one source, resuming from and updating `state` if given.
    pub fn process(&mut self, src: &Source, state: Option<&mut State>) -> Result<()> {
        let path = match src {
            Source::Stdin => {
                let stdin = io::stdin();
                let mut r = BufReader::with_capacity(256 * 1024, stdin.lock());
                let head = r.fill_buf().map_err(|e| Error::io("stdin", e))?.to_vec();
                let Some(format) = self.opts.format.or_else(|| input::detect(&head)) else {
                    self.bad("stdin", 1, "cannot tell the input format; use --format");
                    return Ok(());
                };
                if format.is_whole_file() {
                    let mut text = Vec::new();
                    r.read_to_end(&mut text)
                        .map_err(|e| Error::io("stdin", e))?;
                    return self.read_whole("stdin", &String::from_utf8_lossy(&text), format);
                }
                self.read_lines("stdin", r, format, 0, 0, false, self.opts.now)?;
                return Ok(());
            }
            Source::File(p) => p,
        };
        let name = path.display().to_string();
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let md = file.metadata().map_err(|e| Error::io(path, e))?;
        if md.is_dir() {
            return Err(Error::Usage(format!(
                "{name}: is a directory; pass the files (e.g. {name}/*.log)"
            )));
        }
        let head = state::read_head(&file, 64 * 1024).map_err(|e| Error::io(path, e))?;
        let Some(format) = self.opts.format.or_else(|| input::detect(&head)) else {
            self.bad(&name, 1, "cannot tell the input format; use --format");
            return Ok(());
        };
        let (mut offset, mut line) = (0, 0);
        if let Some(st) = state.as_deref() {
            match st.resume(&file).map_err(|e| Error::io(path, e))? {
                Resume::New => {}
                Resume::At(o, l) => (offset, line) = (o, l),
                Resume::Truncated(o) => cli::warn(format!(
                    "{name}: now {} bytes, smaller than the {o} already read: truncated; reading it from the start",
                    md.len()
                )),
            }
        }
        if format.is_whole_file() {
            // Documents are read whole; unchanged ones are skipped.
            if state.is_some() && offset == md.len() && offset > 0 {
                return Ok(());
            }
            let mut bytes = Vec::with_capacity(md.len() as usize);
            file.read_to_end(&mut bytes)
                .map_err(|e| Error::io(path, e))?;
            self.read_whole(&name, &String::from_utf8_lossy(&bytes), format)?;
            if let Some(st) = state {
                let now = self.opts.now;
                st.update(&name, &file, bytes.len() as u64, 0, now)
                    .map_err(|e| Error::io(path, e))?;
            }
            return Ok(());
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(path, e))?;
        let fallback_ts = md
            .modified()
            .ok()
            .map(DateTime::<Utc>::from)
            .unwrap_or(self.opts.now);
        let tail = state.is_some();
        let reader = BufReader::with_capacity(256 * 1024, &file);
        let (o, l) = self.read_lines(&name, reader, format, offset, line, tail, fallback_ts)?;
        if let Some(st) = state {
            st.update(&name, &file, o, l, self.opts.now)
                .map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }

    /// Print the end-of-run summary on stderr when something needs a look.
    pub fn summary(&self) {
        let s = &self.stats;
        if !s.partial() {
            return;
        }
        let mut msg = format!("{} lines written", s.emitted);
        for (kind, n) in &s.skipped {
            msg.push_str(&format!(", {n} {kind} skipped (no billable usage)"));
        }
        if s.bad > 0 {
            msg.push_str(&format!(", {} bad records skipped", s.bad));
        }
        if s.suspect > 0 {
            msg.push_str(&format!(", {} with inconsistent counts", s.suspect));
        }
        if s.unclassified > 0 {
            msg.push_str(&format!(
                ", {} unpriced with unclassified tokens",
                s.unclassified
            ));
        }
        if !s.unpriced.is_empty() {
            let list: Vec<String> = s
                .unpriced
                .iter()
                // Model names come from the proxy's log: escape them.
                .map(|(m, n)| format!("{} ({n})", crate::output::escape_text(m)))
                .collect();
            msg.push_str(&format!(", unpriced models: {}", list.join(", ")));
        }
        cli::warn(msg);
    }
}

/// Check a built event against the contract, as mb-ingest will: a line
/// mb-ingest would reject is reported here, at its source line, instead.
fn check(ev: &Event, now: DateTime<Utc>) -> std::result::Result<(), String> {
    let h = &ev.header;
    let n = h.id.chars().count();
    if n == 0 || n > events::MAX_ID_CHARS || h.id.chars().any(char::is_control) {
        return Err(format!(
            "id {:?} is not 1..={} printable characters",
            h.id,
            events::MAX_ID_CHARS
        ));
    }
    if h.ts > now + chrono::Duration::days(1) {
        return Err(format!(
            "timestamp {} is more than 1 day in the future (now {}); check the proxy's clock",
            crate::time::format_rfc3339(&h.ts),
            crate::time::format_rfc3339(&now)
        ));
    }
    if crate::time::to_unix_nanos(&h.ts).is_none() {
        return Err("timestamp outside the years 1678..2261".into());
    }
    let Body::Api(a) = &ev.body else {
        return Ok(());
    };
    let len = |s: &str, field: &str, max: usize| {
        let c = s.chars().count();
        if c > max {
            Err(format!("{field} is longer than {max} characters"))
        } else {
            Ok(())
        }
    };
    if a.provider.is_empty() {
        return Err("empty provider".into());
    }
    len(&a.provider, "provider", 64)?;
    len(&a.model, "model", 200)?;
    if let Some(r) = &a.request_id {
        len(r, "request_id", 200)?;
    }
    if let Some(t) = &a.service_tier {
        len(t, "service_tier", 64)?;
    }
    // The physical bounds of mb-events(5), which mb-ingest enforces.
    let max = events::bounds::MAX_TOKENS;
    for (v, f) in [
        (a.tokens_in, "tokens_in"),
        (a.tokens_out, "tokens_out"),
        (a.cache_read_tokens, "cache_read_tokens"),
        (a.cache_write_tokens, "cache_write_tokens"),
    ] {
        if v > max {
            return Err(format!(
                "{f} {v} is larger than {max}, the bound of mb-events(5); corrupt counts?"
            ));
        }
    }
    if a.cost_nusd
        .is_some_and(|c| c > events::bounds::MAX_COST_NUSD)
    {
        return Err(format!(
            "cost of one request above USD {}, the bound of mb-events(5); corrupt counts?",
            crate::money::format_nanos(events::bounds::MAX_COST_NUSD)
        ));
    }
    Ok(())
}

/// Run over `sources`, writing lines to `out`; with `state`, resume and
/// record progress (the caller saves it after flushing `out`).
pub fn run(
    opts: &Options,
    sources: &[Source],
    mut state: Option<&mut State>,
    out: &mut dyn Write,
) -> Result<Stats> {
    let mut p = Processor::new(opts, out);
    for src in sources {
        p.process(src, state.as_deref_mut())?;
    }
    p.summary();
    Ok(p.stats)
}
