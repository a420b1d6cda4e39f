//! The price table: loading, model matching and exact cost.
//!
//! This module owns everything between "a model name and its token counts"
//! and "a cost in nano-USD". It does no I/O besides reading price files and
//! is pure otherwise, so it is unit-tested in isolation.
//!
//! **Format.** Both the built-in table (`prices.json`, compiled in) and
//! `--prices FILE` use LiteLLM's `model_prices_and_context_window.json`
//! shape as it is: one object keyed by model name, USD **per token**
//! (`input_cost_per_token`, `output_cost_per_token`,
//! `cache_read_input_token_cost`, `cache_creation_input_token_cost`,
//! `cache_creation_input_token_cost_above_1hr`,
//! `output_cost_per_reasoning_token`, and the long-context tiers
//! `<field>_above_<N>k_tokens`). Numbers are read from their JSON *text*
//! (`3e-06`, `0.000003`) straight into [`Decimal`], never through a binary
//! float, so a price is exactly what the file says. `sample_spec` and keys
//! starting with `_` are documentation; entries without both per-token
//! input and output prices (image, audio, embedding models) are skipped.
//!
//! **Merging.** Files override the built-in table key by key and add new
//! keys; nothing is ever removed, because LiteLLM deletes retired models and
//! old logs must still price (research note tokens.md section 3.1).
//!
//! **Matching** ([`PriceTable::lookup`]): the model as written, then without
//! a provider prefix (`anthropic/`, `models/`, ...), then without a date
//! suffix (`-20250929`, `-2024-07-18`, `@20250929`). Nothing fuzzier: a
//! "contains" or prefix match prices `gpt-5.4` as `gpt-5` or `o3-pro` as
//! `o3`, which is exactly the class of bug users of other tools reported.
//!
//! **Cost** ([`Price::cost_nanos`]): the exact decimal sum of tokens times
//! per-token rates, rounded half-up to the nano-dollar only if it has more
//! digits. A cache rate missing from an entry falls back to the input rate
//! (LiteLLM's own rule: never free, never a guessed discount); an explicit
//! `0` is a real price. Long-context tiers apply to the **whole request**
//! once its prompt (uncached input + cache reads + cache writes) passes the
//! threshold, as LiteLLM's calculator and the providers' pages do.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The built-in table, in LiteLLM format.
pub const BUILTIN_JSON: &str = include_str!("prices.json");

/// Name of the built-in table, written in `price_table` of lines it priced.
/// It is the date of the LiteLLM snapshot the prices were read from.
pub const BUILTIN_NAME: &str = "mb-builtin-2026-11-20";

/// Provider prefixes stripped by the second matching step. Gateways with
/// their own prices (`openrouter/`, `bedrock/`, `azure/`) are deliberately
/// not here: their price can differ from the first-party list price.
const PREFIXES: &[&str] = &[
    "anthropic/",
    "openai/",
    "google/",
    "gemini/",
    "models/",
    "vertex_ai/",
    "claude/",
    "codex/",
];

/// Per-token rates of one price tier, in USD per token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// Uncached input.
    pub input: Option<Decimal>,
    /// Output (reasoning included unless `reasoning` is set).
    pub output: Option<Decimal>,
    /// Prompt-cache reads.
    pub cache_read: Option<Decimal>,
    /// Prompt-cache writes (5-minute TTL for Anthropic).
    pub cache_write: Option<Decimal>,
    /// Prompt-cache writes with a 1-hour TTL (Anthropic).
    pub cache_write_1h: Option<Decimal>,
    /// Reasoning tokens, when priced apart from output.
    pub reasoning: Option<Decimal>,
    /// Image input tokens (`input_cost_per_image_token`): the input rate of
    /// an image model that has no text input rate.
    pub input_image: Option<Decimal>,
    /// Image output tokens (`output_cost_per_image_token`): the output rate
    /// of an image-generation model (`gpt-image-*`), whose output is images.
    pub output_image: Option<Decimal>,
}

impl Rates {
    /// Each rate of `over` where it has one, else this one's.
    fn overlaid(&self, over: &Rates) -> Rates {
        let pick = |o: Option<Decimal>, b: Option<Decimal>| o.or(b);
        Rates {
            input: pick(over.input, self.input),
            output: pick(over.output, self.output),
            cache_read: pick(over.cache_read, self.cache_read),
            cache_write: pick(over.cache_write, self.cache_write),
            cache_write_1h: pick(over.cache_write_1h, self.cache_write_1h),
            reasoning: pick(over.reasoning, self.reasoning),
            input_image: pick(over.input_image, self.input_image),
            output_image: pick(over.output_image, self.output_image),
        }
    }

    fn is_empty(&self) -> bool {
        *self == Rates::default()
    }
}

/// The rates of one service tier (`_priority`, `_flex`, `_batches`
/// fields): its base rates and long-context tiers. A rate the tier lacks is
/// the default tier's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TierRates {
    /// Rates below every long-context threshold.
    pub base: Rates,
    /// Long-context tiers of this service tier, ascending.
    pub tiers: Vec<(u64, Rates)>,
}

/// The service tiers LiteLLM prices apart, by field suffix.
pub const SERVICE_TIERS: &[&str] = &["priority", "flex", "batches"];

/// The LiteLLM service-tier name for a tier a record reports (`priority`,
/// `flex`, `batch`), or `None` for the default rate (`default`, `auto`,
/// `standard`, `scale`, anything else).
pub fn service_tier_name(reported: &str) -> Option<&'static str> {
    match reported.trim().to_ascii_lowercase().as_str() {
        "priority" => Some("priority"),
        "flex" => Some("flex"),
        "batch" | "batches" => Some("batches"),
        _ => None,
    }
}

/// One price-table entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// The table key (`claude-sonnet-4-5-20250929`).
    pub key: String,
    /// Base rates; `input` and `output` are always set.
    pub base: Rates,
    /// Long-context tiers: (threshold in prompt tokens, rates), ascending.
    /// A rate missing from a tier is the base rate.
    pub tiers: Vec<(u64, Rates)>,
    /// Service-tier rates by LiteLLM suffix (`priority`, `flex`, `batches`).
    pub service: BTreeMap<String, TierRates>,
    /// `litellm_provider`, informational.
    pub provider: Option<String>,
    /// `deprecation_date`, informational.
    pub deprecation_date: Option<String>,
    /// The table this entry came from (`price_table` of priced lines).
    pub table: String,
}

/// Token counts of one request, normalised (no bucket overlaps another).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Cache reads.
    pub cache_read: u64,
    /// Cache writes, all TTLs (includes `cache_write_1h`).
    pub cache_write: u64,
    /// The part of `cache_write` with a 1-hour TTL, when the source says.
    pub cache_write_1h: u64,
    /// Reasoning tokens (a part of `output`).
    pub reasoning: u64,
}

impl Tokens {
    /// True when every bucket is zero (failed or aborted requests).
    pub fn is_zero(&self) -> bool {
        self.input == 0 && self.output == 0 && self.cache_read == 0 && self.cache_write == 0
    }

    /// The prompt size that selects a long-context tier.
    pub fn prompt(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }
}

impl Price {
    /// The rates that apply to a request with `prompt` prompt tokens at
    /// service tier `service` (a LiteLLM suffix, see [`service_tier_name`]):
    /// the highest long-context tier whose threshold it passes (strictly),
    /// else the base; for a service tier the entry prices, that tier's rate
    /// of the same threshold first, then the default tier's. Returns whether
    /// the service tier's rates were used.
    fn rates_for(&self, prompt: u64, service: Option<&str>) -> (Rates, bool) {
        let above = |tiers: &[(u64, Rates)]| {
            tiers
                .iter()
                .rev()
                .find(|(n, _)| prompt > *n)
                .map(|(_, r)| r.clone())
        };
        let mut r = self.base.clone();
        if let Some(t) = above(&self.tiers) {
            r = r.overlaid(&t);
        }
        let Some(st) = service.and_then(|s| self.service.get(s)) else {
            return (r, false);
        };
        // Below the thresholds the tier's base wins over the default base;
        // above one, the tier's long-context rate, else the default one.
        let passed = self.tiers.iter().any(|(n, _)| prompt > *n)
            || st.tiers.iter().any(|(n, _)| prompt > *n);
        if !passed {
            r = r.overlaid(&st.base);
        }
        if let Some(t) = above(&st.tiers) {
            r = r.overlaid(&t);
        }
        (r, true)
    }

    /// The exact cost in USD as a decimal (unrounded), at the default tier.
    pub fn cost(&self, t: &Tokens) -> Decimal {
        self.cost_at(t, None).0
    }

    /// The exact cost at service tier `service`, and whether that tier's
    /// rates were used (false: the entry has none, the default applied).
    pub fn cost_at(&self, t: &Tokens, service: Option<&str>) -> (Decimal, bool) {
        let (r, used) = self.rates_for(t.prompt(), service);
        // An image model (gpt-image-*) has image-token rates in place of
        // text ones: its output is images, its input mostly text.
        let input = r.input.or(r.input_image).unwrap_or_default();
        let output = r.output.or(r.output_image).unwrap_or_default();
        // Missing cache rates resolve to the input rate (LiteLLM's rule).
        let cache_read = r.cache_read.unwrap_or(input);
        let cache_write = r.cache_write.unwrap_or(input);
        let cache_write_1h = r.cache_write_1h.unwrap_or(cache_write);
        let (plain_out, reasoning_rate) = match r.reasoning {
            Some(rr) => (t.output.saturating_sub(t.reasoning), Some(rr)),
            None => (t.output, None),
        };
        let short_writes = t.cache_write.saturating_sub(t.cache_write_1h);
        let long_writes = t.cache_write.min(t.cache_write_1h);
        let d = Decimal::from;
        let mut sum = d(t.input) * input
            + d(plain_out) * output
            + d(t.cache_read) * cache_read
            + d(short_writes) * cache_write
            + d(long_writes) * cache_write_1h;
        if let Some(rr) = reasoning_rate {
            sum += d(t.reasoning.min(t.output)) * rr;
        }
        (sum, used)
    }

    /// The cost in nano-USD, rounded half-up only if it has more than nine
    /// fraction digits. `None` if it does not fit an i64 (over 9.2 billion
    /// dollars: a corrupt record, reported by the caller).
    pub fn cost_nanos(&self, t: &Tokens) -> Option<i64> {
        self.cost_nanos_at(t, None).0
    }

    /// [`Price::cost_nanos`] at a service tier, with whether its rates were
    /// used.
    pub fn cost_nanos_at(&self, t: &Tokens, service: Option<&str>) -> (Option<i64>, bool) {
        let (cost, used) = self.cost_at(t, service);
        let nanos = cost * Decimal::from(1_000_000_000u64);
        let n = nanos
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            .to_i64();
        (n, used)
    }

    /// The `price_key` written on a line priced at service tier `service`
    /// when its rates were used: `KEY#TIER` (`gpt-5.4#priority`), so the
    /// line shows which tier's rate applied; the plain key otherwise.
    pub fn key_for(&self, service: Option<&str>, used: bool) -> String {
        match service {
            Some(s) if used => format!("{}#{s}", self.key),
            _ => self.key.clone(),
        }
    }
}

/// The effective price table: built-in entries overridden by `--prices`.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: BTreeMap<String, Price>,
}

/// Parse a JSON number (or a string holding one) from its raw text into an
/// exact decimal, accepting LiteLLM's scientific notation (`3e-06`).
fn raw_decimal(raw: &RawValue) -> std::result::Result<Decimal, String> {
    let text = raw.get().trim();
    let text = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner,
        None => text,
    };
    let d = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        text.parse::<Decimal>()
    }
    .map_err(|_| format!("{text} is not a decimal number"))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("{text} is negative"));
    }
    Ok(d.normalize())
}

/// Split `input_cost_per_token_above_200k_tokens` into the base field and
/// the threshold in tokens.
fn split_tier(field: &str) -> Option<(&str, u64)> {
    let (base, rest) = field.rsplit_once("_above_")?;
    let n = rest.strip_suffix("k_tokens")?;
    let n: u64 = n.parse().ok()?;
    Some((base, n.checked_mul(1000)?))
}

/// Split a service-tier suffix off a field name:
/// `input_cost_per_token_above_272k_tokens_priority` ->
/// (`input_cost_per_token_above_272k_tokens`, Some("priority")).
fn split_service(field: &str) -> (&str, Option<&'static str>) {
    for t in SERVICE_TIERS {
        if let Some(base) = field.strip_suffix(t).and_then(|f| f.strip_suffix('_')) {
            return (base, Some(t));
        }
    }
    (field, None)
}

/// True for the LiteLLM rate fields mb prices with (after removing a
/// service-tier and a long-context suffix).
fn is_priced_field(f: &str) -> bool {
    matches!(
        f,
        "input_cost_per_token"
            | "output_cost_per_token"
            | "cache_read_input_token_cost"
            | "cache_creation_input_token_cost"
            | "cache_creation_input_token_cost_above_1hr"
            | "output_cost_per_reasoning_token"
            | "input_cost_per_image_token"
            | "output_cost_per_image_token"
    )
}

/// Set the rate named by a LiteLLM field; false if the field is not a rate
/// we price with.
fn set_rate(r: &mut Rates, field: &str, v: Decimal) -> bool {
    let slot = match field {
        "input_cost_per_token" => &mut r.input,
        "output_cost_per_token" => &mut r.output,
        "cache_read_input_token_cost" => &mut r.cache_read,
        "cache_creation_input_token_cost" => &mut r.cache_write,
        "cache_creation_input_token_cost_above_1hr" => &mut r.cache_write_1h,
        "output_cost_per_reasoning_token" => &mut r.reasoning,
        "input_cost_per_image_token" => &mut r.input_image,
        "output_cost_per_image_token" => &mut r.output_image,
        _ => return false,
    };
    *slot = Some(v);
    true
}

impl PriceTable {
    /// The built-in table.
    pub fn builtin() -> Result<PriceTable> {
        let mut t = PriceTable::default();
        t.merge_json(BUILTIN_JSON, BUILTIN_NAME, "built-in prices.json")?;
        Ok(t)
    }

    /// Read a LiteLLM-format file and merge it over the table. Returns the
    /// table name written in `price_table` (`FILE@<12 hex of its sha256>`).
    pub fn merge_file(&mut self, path: &Path) -> Result<String> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let base: String = base.chars().take(160).collect();
        let name = format!("{base}@{hex}");
        self.merge_json(&text, &name, &path.display().to_string())?;
        Ok(name)
    }

    /// Merge a LiteLLM-format document named `table` (for `price_table`);
    /// `origin` names it in error messages.
    pub fn merge_json(&mut self, text: &str, table: &str, origin: &str) -> Result<(usize, usize)> {
        let bad = |msg: String| Error::Invalid(format!("{origin}: {msg}"));
        let doc: BTreeMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "not a LiteLLM price file (a JSON object keyed by model name): {e}"
            ))
        })?;
        let (mut taken, mut skipped) = (0, 0);
        for (key, raw) in doc {
            if key == "sample_spec" || key.starts_with('_') {
                continue;
            }
            let fields: BTreeMap<String, &RawValue> = match serde_json::from_str(raw.get()) {
                Ok(f) => f,
                Err(_) => {
                    skipped += 1;
                    continue;
                }
            };
            let mut price = Price {
                key: key.clone(),
                base: Rates::default(),
                tiers: Vec::new(),
                provider: None,
                deprecation_date: None,
                table: table.to_string(),
                service: BTreeMap::new(),
            };
            let mut tiers: BTreeMap<u64, Rates> = BTreeMap::new();
            let mut service: BTreeMap<&str, (Rates, BTreeMap<u64, Rates>)> = BTreeMap::new();
            for (field, v) in &fields {
                match field.as_str() {
                    "litellm_provider" => {
                        price.provider = serde_json::from_str::<String>(v.get()).ok();
                        continue;
                    }
                    "deprecation_date" => {
                        price.deprecation_date = serde_json::from_str::<String>(v.get()).ok();
                        continue;
                    }
                    _ => {}
                }
                let is_rate = field.contains("_cost");
                if !is_rate || v.get() == "null" {
                    continue;
                }
                let (rest, st) = split_service(field);
                let (name, threshold) = match split_tier(rest) {
                    Some((b, n)) => (b, Some(n)),
                    None => (rest, None),
                };
                if !is_priced_field(name) {
                    continue;
                }
                let d = raw_decimal(v).map_err(|e| bad(format!("{key}.{field}: {e}")))?;
                let slot = match st {
                    Some(st) => {
                        let (b, t) = service.entry(st).or_default();
                        match threshold {
                            Some(n) => t.entry(n).or_default(),
                            None => b,
                        }
                    }
                    None => match threshold {
                        Some(n) => tiers.entry(n).or_default(),
                        None => &mut price.base,
                    },
                };
                set_rate(slot, name, d);
            }
            let has_in = price.base.input.is_some() || price.base.input_image.is_some();
            let has_out = price.base.output.is_some() || price.base.output_image.is_some();
            if !has_in || !has_out {
                skipped += 1;
                continue;
            }
            price.service = service
                .into_iter()
                .map(|(k, (b, t))| {
                    (
                        k.to_string(),
                        TierRates {
                            base: b,
                            tiers: t.into_iter().filter(|(_, r)| !r.is_empty()).collect(),
                        },
                    )
                })
                .collect();
            price.tiers = tiers.into_iter().collect();
            self.entries.insert(key, price);
            taken += 1;
        }
        Ok((taken, skipped))
    }

    /// All entries, sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = &Price> {
        self.entries.values()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Find the entry for `model` (see the module doc for the rules).
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        candidates(model)
            .into_iter()
            .find_map(|c| self.entries.get(c.as_str()))
    }
}

/// The names tried for `model`, in order: as written, without a provider
/// prefix, without a date suffix, and without both.
pub fn candidates(model: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![model.to_string()];
    let mut push = |s: String| {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    };
    let mut bare = model;
    while let Some(p) = PREFIXES.iter().find(|p| bare.starts_with(*p)) {
        bare = &bare[p.len()..];
    }
    push(bare.to_string());
    if let Some(d) = strip_date(model) {
        push(d.to_string());
    }
    if let Some(d) = strip_date(bare) {
        push(d.to_string());
    }
    out
}

/// `name` without a trailing date: `-YYYYMMDD`, `-YYYY-MM-DD` or
/// `@YYYYMMDD`. The date must look like one (20xx, month 01-12, day
/// 01-31), so version numbers such as `-0613`... are left alone.
pub fn strip_date(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let valid = |y: &[u8], m: &[u8], d: &[u8]| {
        let num = |s: &[u8]| s.iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
        y.starts_with(b"20") && (1..=12).contains(&num(m)) && (1..=31).contains(&num(d))
    };
    // -YYYY-MM-DD
    if b.len() > 11 {
        let s = &b[b.len() - 11..];
        if s[0] == b'-'
            && s[5] == b'-'
            && s[8] == b'-'
            && digits(&s[1..5])
            && digits(&s[6..8])
            && digits(&s[9..11])
            && valid(&s[1..5], &s[6..8], &s[9..11])
        {
            return Some(&name[..name.len() - 11]);
        }
    }
    // -YYYYMMDD or @YYYYMMDD
    if b.len() > 9 {
        let s = &b[b.len() - 9..];
        if (s[0] == b'-' || s[0] == b'@') && digits(&s[1..]) && valid(&s[1..5], &s[5..7], &s[7..9])
        {
            return Some(&name[..name.len() - 9]);
        }
    }
    None
}

/// A memo of lookups by model name: the hot loop prices millions of lines
/// with a handful of distinct models.
#[derive(Debug, Default)]
pub struct LookupCache {
    memo: HashMap<String, Option<Price>>,
}

impl LookupCache {
    /// `table.lookup(model)`, memoised.
    pub fn get<'a>(&'a mut self, table: &PriceTable, model: &str) -> Option<&'a Price> {
        if !self.memo.contains_key(model) {
            let p = table.lookup(model).cloned();
            self.memo.insert(model.to_string(), p);
        }
        self.memo.get(model).and_then(Option::as_ref)
    }
}

/// Format a per-token USD rate as USD per million tokens (`0.000003` -> `3`).
pub fn per_million(d: Decimal) -> String {
    (d * Decimal::from(1_000_000u64)).normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::builtin().unwrap()
    }

    fn tok(input: u64, output: u64, cr: u64, cw: u64) -> Tokens {
        Tokens {
            input,
            output,
            cache_read: cr,
            cache_write: cw,
            ..Tokens::default()
        }
    }

    #[test]
    fn builtin_loads_and_is_exact() {
        let t = table();
        assert!(t.len() >= 35, "{}", t.len());
        let p = t.lookup("claude-sonnet-4-5-20250929").unwrap();
        assert_eq!(p.base.input, Some("0.000003".parse().unwrap()));
        assert_eq!(p.table, BUILTIN_NAME);
    }

    #[test]
    fn matching_rules() {
        let t = table();
        let key = |m: &str| t.lookup(m).map(|p| p.key.clone());
        assert_eq!(key("gpt-4o").as_deref(), Some("gpt-4o"));
        assert_eq!(
            key("openai/gpt-4o-mini-2024-07-18").as_deref(),
            Some("gpt-4o-mini")
        );
        assert_eq!(
            key("gpt-4o-mini-2024-07-18").as_deref(),
            Some("gpt-4o-mini")
        );
        // An exact dated key wins over stripping (a different, older price).
        assert_eq!(
            key("gpt-4o-2024-05-13").as_deref(),
            Some("gpt-4o-2024-05-13")
        );
        assert_eq!(
            key("anthropic/claude-haiku-4-5-20251001").as_deref(),
            Some("claude-haiku-4-5-20251001")
        );
        assert_eq!(
            key("claude-haiku-4-5@20251001").as_deref(),
            Some("claude-haiku-4-5")
        );
        assert_eq!(
            key("models/gemini-2.5-pro").as_deref(),
            Some("gemini-2.5-pro")
        );
        // Never across versions.
        assert_eq!(key("gpt-5.3"), None);
        assert_eq!(key("claude-opus-4-8"), None);
        assert_eq!(key("gpt-4o-mini-tts"), None);
        assert_eq!(key("openrouter/openai/gpt-4o"), None);
        assert_eq!(strip_date("gpt-4-0613"), None);
        assert_eq!(strip_date("x-20251399"), None);
    }

    #[test]
    fn anthropic_cache_cost() {
        // claude-sonnet-4-5: 1843 in * 3e-6 + 912 out * 15e-6 + 48210 cr * 0.3e-6
        // + 2051 cw * 3.75e-6 = 0.005529 + 0.01368 + 0.014463 + 0.00769125
        // = 0.04136325 USD = 41_363_250 nano-USD.
        let p = table()
            .lookup("claude-sonnet-4-5-20250929")
            .cloned()
            .unwrap();
        assert_eq!(p.cost_nanos(&tok(1843, 912, 48210, 2051)), Some(41_363_250));
    }

    #[test]
    fn long_context_tier_is_whole_request() {
        // gemini-2.5-pro, prompt 150000 + 60000 cached = 210000 > 200k:
        // 150000 * 2.5e-6 + 60000 * 0.25e-6 + 1000 * 15e-6
        // = 0.375 + 0.015 + 0.015 = 0.405 USD.
        let p = table().lookup("gemini-2.5-pro").cloned().unwrap();
        assert_eq!(
            p.cost_nanos(&tok(150_000, 1000, 60_000, 0)),
            Some(405_000_000)
        );
        // Exactly 200000 is not above: 200000 * 1.25e-6 + 1000 * 10e-6 = 0.26.
        assert_eq!(p.cost_nanos(&tok(200_000, 1000, 0, 0)), Some(260_000_000));
    }

    #[test]
    fn rounding_half_up_only_below_nano() {
        // gpt-4o-mini cache read $0.075/MTok = 75 nano-USD per token: exact.
        let p = table().lookup("gpt-4o-mini").cloned().unwrap();
        assert_eq!(p.cost_nanos(&tok(0, 0, 7, 0)), Some(525));
        // The stale gemini/ cache-read rate $0.3125/MTok = 312.5 nano per
        // token: 1 token -> 312.5 -> 313 (half-up), 2 tokens -> 625 exactly.
        let mut t = PriceTable::default();
        t.merge_json(
            r#"{"m":{"input_cost_per_token":3.125e-7,"output_cost_per_token":0}}"#,
            "x",
            "x",
        )
        .unwrap();
        let m = t.lookup("m").unwrap();
        assert_eq!(m.cost_nanos(&tok(1, 0, 0, 0)), Some(313));
        assert_eq!(m.cost_nanos(&tok(2, 0, 0, 0)), Some(625));
        assert_eq!(m.cost_nanos(&tok(3, 0, 0, 0)), Some(938)); // 937.5 -> 938
    }

    #[test]
    fn litellm_override_and_fallbacks() {
        let mut t = table();
        let json = r#"{"sample_spec":{"input_cost_per_token":0},
          "gpt-4o":{"input_cost_per_token":5e-06,"output_cost_per_token":"1.5E-5","litellm_provider":"openai"},
          "my-model":{"input_cost_per_token":1e-06,"output_cost_per_token":2e-06,
                      "input_cost_per_token_above_128k_tokens":2e-06},
          "dall-e-3":{"output_cost_per_image":0.04},
          "broken":"x"}"#;
        assert_eq!(t.merge_json(json, "f@1", "f").unwrap(), (2, 2));
        let p = t.lookup("gpt-4o").unwrap();
        assert_eq!(p.table, "f@1");
        // No cache rate: cache reads cost the input rate. 10 * 5e-6 = 0.00005.
        assert_eq!(p.cost_nanos(&tok(0, 0, 10, 0)), Some(50_000));
        let m = t.lookup("my-model").unwrap();
        assert_eq!(
            m.tiers,
            vec![(
                128_000,
                Rates {
                    input: Some("0.000002".parse().unwrap()),
                    ..Rates::default()
                }
            )]
        );
        // Retired built-in entries survive a merge.
        assert!(t.lookup("claude-3-5-sonnet-20241022").is_some());
        assert!(t.merge_json("[1]", "x", "x").is_err());
        assert!(t
            .merge_json(
                r#"{"m":{"input_cost_per_token":-1,"output_cost_per_token":1}}"#,
                "x",
                "x"
            )
            .is_err());
    }
}
