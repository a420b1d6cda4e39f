//! The event contract: mb-events(5), JSON lines shared by every tool.
//!
//! This module owns the wire format of the three event kinds (DESIGN.md
//! section 3): producers (mb-sample, mb-tokens, mb-activity, mb-report
//! events) build an [`Event`] and serialise it with [`Event::to_json`];
//! mb-ingest parses and validates lines with [`parse_line`]. Having one type
//! for both sides is what keeps the tools from drifting apart.
//!
//! Wire rules: one compact JSON object per line; field names are snake_case
//! and carry their unit; fields are only ever added. Unknown fields are
//! ignored by readers (forward compatibility); a missing required field, a
//! wrong type or an out-of-range value rejects the line with a
//! [`FieldError`] naming the field. Nothing is silently repaired: the only
//! normalisation is converting a timestamp's offset to `Z`, which keeps the
//! instant.
//!
//! Field order on output is fixed (`v`, `kind`, `id`, `ts`, `customer_id`,
//! `vm_id`, then the kind's fields in the order of the structs below), and
//! optional values are written as `null`, never omitted, so every line of a
//! kind has the same shape.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::money;
use crate::time;

/// The contract version written in `v`.
pub const CONTRACT_VERSION: u64 = 1;

/// Longest accepted `id`, in characters.
pub const MAX_ID_CHARS: usize = 200;

/// Longest accepted line, in bytes. Real lines are under 2 KiB; a bigger one
/// is a wrong file (a binary, a pretty-printed document) fed by mistake.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Physical bounds of one event, far above anything real (mb-events(5),
/// BOUNDS). A line beyond them is rejected by mb-ingest, and producers
/// check their lines against the same numbers before writing them, so a
/// corrupt counter or a hostile line can neither fail a batch nor wrap a
/// total.
///
/// Why sums cannot overflow: every stored value is at most 2^60, so one row
/// never overflows SQLite's i64, and for api usage mb-ingest also caps each
/// customer's UTC hour (all models and ingest runs together) at
/// [`bounds::MAX_HOUR_TOKENS`] = 2^46 tokens and [`bounds::MAX_HOUR_NUSD`]
/// = 2^49 nano-USD, refusing a line that would pass them. Every api_rollup
/// row is a part of one customer-hour, so its sums fit; and any sum over
/// one customer of up to 2^14 = 16,384 hours (1.8 years: a month, a year,
/// an invoice) is at most 2^14 x 2^49 = 2^63 - 2^49 < i64::MAX nano-USD and
/// 2^60 tokens.
pub mod bounds {
    /// Each token count of one request (tokens_in, tokens_out, cache reads,
    /// cache writes): 10^9, a thousand times a million-token context.
    pub const MAX_TOKENS: u64 = 1_000_000_000;
    /// The cost of one request, nano-USD: USD 100,000 (a million-token
    /// request at USD 600 per million, the dearest list price, is USD 600).
    pub const MAX_COST_NUSD: i64 = 100_000 * 1_000_000_000;
    /// Tokens of one customer in one UTC hour (in + out + cache read +
    /// cache write, all models): 2^46 = 7.0e13, about 2e10 tokens a second.
    pub const MAX_HOUR_TOKENS: i64 = 1 << 46;
    /// Cost of one customer in one UTC hour, nano-USD: 2^49 = USD 562,949.
    pub const MAX_HOUR_NUSD: i64 = 1 << 49;
    /// Bytes over one interval, and since boot (net_*_bytes, net_*_cum):
    /// 2^56 = 7.2e16, a 100 Gbit/s link saturated for 66 days.
    pub const MAX_BYTES: u64 = 1 << 56;
    /// CPU ticks over one interval, and since boot: 2^56 (1,024 CPUs at
    /// 1,000 ticks a second for 2,200 years).
    pub const MAX_TICKS: u64 = 1 << 56;
    /// Memory and disk sizes, bytes: 2^60 (1 EiB).
    pub const MAX_SIZE_BYTES: u64 = 1 << 60;
    /// CPUs, and ticks per second (USER_HZ): 2^20.
    pub const MAX_SMALL: u64 = 1 << 20;
    /// `interval_seconds` and `duration_seconds`: 10^9 s (31.7 years).
    pub const MAX_SECONDS: f64 = 1e9;
}

/// The three event kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// VM resource usage from mb-sample.
    Resource,
    /// LLM API usage from mb-tokens.
    Api,
    /// User activity from mb-activity.
    Activity,
}

impl Kind {
    /// The `kind` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Resource => "resource",
            Kind::Api => "api",
            Kind::Activity => "activity",
        }
    }

    /// Parse the `kind` string.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "resource" => Some(Kind::Resource),
            "api" => Some(Kind::Api),
            "activity" => Some(Kind::Activity),
            _ => None,
        }
    }

    /// All kinds, in a stable order.
    pub const ALL: [Kind; 3] = [Kind::Resource, Kind::Api, Kind::Activity];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fields common to every kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    /// Idempotency key, deterministic from the source.
    pub id: String,
    /// When the event happened (resource: end of interval; api, activity: start).
    #[serde(serialize_with = "ser_ts")]
    pub ts: DateTime<Utc>,
    /// The customer the usage belongs to.
    pub customer_id: String,
    /// The VM the usage happened on.
    pub vm_id: String,
}

/// `status` of a resource sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SampleStatus {
    /// First sample of a state file: gauges only, deltas null.
    #[default]
    First,
    /// A normal interval.
    Ok,
    /// A reboot happened since the previous sample; deltas are since boot.
    Reboot,
}

impl SampleStatus {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            SampleStatus::First => "first",
            SampleStatus::Ok => "ok",
            SampleStatus::Reboot => "reboot",
        }
    }
}

/// `kind: "resource"`: one mb-sample interval.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Resource {
    /// Seconds covered by the deltas (from /proc/uptime); null on a first sample.
    pub interval_seconds: Option<f64>,
    /// first, ok or reboot.
    pub status: SampleStatus,
    /// Anomalies seen: counter_reset, clock_jump, long_gap, ...
    pub flags: Vec<String>,
    /// Kernel boot id.
    pub boot_id: String,
    /// Sequence number within a state file.
    pub seq: u64,
    /// Busy share of CPU time over the interval, 0..=100.
    pub cpu_percent: Option<f64>,
    /// Busy ticks over the interval.
    pub cpu_busy_ticks: Option<u64>,
    /// Total ticks over the interval.
    pub cpu_total_ticks: Option<u64>,
    /// Number of CPUs.
    pub ncpu: Option<u64>,
    /// Ticks per second (USER_HZ).
    pub clk_tck: Option<u64>,
    /// (MemTotal - MemAvailable) / MemTotal, 0..=100.
    pub memory_percent: Option<f64>,
    /// MemTotal - MemAvailable, bytes.
    pub memory_used_bytes: Option<u64>,
    /// MemTotal, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Used bytes on the sampled filesystems, as df computes them.
    pub disk_used_bytes: Option<u64>,
    /// Size of the sampled filesystems, bytes.
    pub disk_total_bytes: Option<u64>,
    /// Bytes received over the interval.
    pub net_in_bytes: Option<u64>,
    /// Bytes sent over the interval.
    pub net_out_bytes: Option<u64>,
    /// Reset-corrected busy ticks since boot.
    pub cpu_busy_ticks_cum: Option<u64>,
    /// Reset-corrected total ticks since boot.
    pub cpu_total_ticks_cum: Option<u64>,
    /// Reset-corrected bytes received since boot.
    pub net_in_bytes_cum: Option<u64>,
    /// Reset-corrected bytes sent since boot.
    pub net_out_bytes_cum: Option<u64>,
    /// Sources that could not be read.
    pub errors: Vec<String>,
}

/// `auth_type` of an API request.
pub const AUTH_TYPES: [&str; 3] = ["apikey", "oauth", "unknown"];

/// `kind: "api"`: one priced LLM request.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Api {
    /// Normalised vendor: anthropic, openai, google, or the upstream name.
    pub provider: String,
    /// The model as the upstream reported it.
    pub model: String,
    /// The price-table entry used; null if unpriced.
    pub price_key: Option<String>,
    /// Uncached input tokens.
    pub tokens_in: u64,
    /// Output tokens, reasoning included.
    pub tokens_out: u64,
    /// Tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Reasoning tokens (informational, a part of tokens_out).
    pub reasoning_tokens: u64,
    /// Exact cost in nano-USD; null when unpriced. On the wire: `cost_usd`,
    /// a decimal string.
    #[serde(rename = "cost_usd", serialize_with = "ser_cost")]
    pub cost_nusd: Option<i64>,
    /// Whether a price was found.
    pub priced: bool,
    /// Name/date of the price table used.
    pub price_table: Option<String>,
    /// The proxy's request id.
    pub request_id: Option<String>,
    /// The request failed upstream.
    pub failed: bool,
    /// apikey, oauth or unknown.
    pub auth_type: String,
    /// Hash of the proxy client key (never the key).
    pub client: Option<String>,
    /// Provider service tier, if reported.
    pub service_tier: Option<String>,
    /// The input format the record came from.
    pub source_format: Option<String>,
}

impl Api {
    /// Every billable token: in + out + cache read + cache write (what the
    /// included allowance counts, DESIGN.md section 7).
    pub fn total_tokens(&self) -> u64 {
        self.tokens_in
            .saturating_add(self.tokens_out)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }
}

/// `kind: "activity"`: one command, pattern or operation.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Activity {
    /// command, pattern, operation, or another lower-case word.
    pub activity_type: String,
    /// Named pattern, if any.
    pub pattern_name: Option<String>,
    /// The command text, after redaction.
    pub command: Option<String>,
    /// Wall time, seconds.
    pub duration_seconds: f64,
    /// Exit status (signals as 128+N), if known.
    pub exit_code: Option<i64>,
    /// Login name.
    pub user: Option<String>,
}

/// The kind-specific part of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// See [`Resource`].
    Resource(Resource),
    /// See [`Api`].
    Api(Api),
    /// See [`Activity`].
    Activity(Activity),
}

/// One event: the common header and the kind's body.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Common fields.
    pub header: Header,
    /// Kind-specific fields.
    pub body: Body,
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> Kind {
        match self.body {
            Body::Resource(_) => Kind::Resource,
            Body::Api(_) => Kind::Api,
            Body::Activity(_) => Kind::Activity,
        }
    }

    /// The compact JSON line, without the trailing newline.
    pub fn to_json(&self) -> String {
        // Serialising plain data into a String cannot fail: every map key is
        // a string and every float was validated finite.
        serde_json::to_string(self).expect("invariant: events serialise")
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Envelope<'a, B: Serialize> {
            v: u64,
            kind: &'static str,
            #[serde(flatten)]
            header: &'a Header,
            #[serde(flatten)]
            body: &'a B,
        }
        let kind = self.kind().as_str();
        let header = &self.header;
        let v = CONTRACT_VERSION;
        match &self.body {
            Body::Resource(b) => Envelope {
                v,
                kind,
                header,
                body: b,
            }
            .serialize(s),
            Body::Api(b) => Envelope {
                v,
                kind,
                header,
                body: b,
            }
            .serialize(s),
            Body::Activity(b) => Envelope {
                v,
                kind,
                header,
                body: b,
            }
            .serialize(s),
        }
    }
}

fn ser_ts<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time::format_rfc3339(t))
}

fn ser_cost<S: Serializer>(c: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(n) => s.serialize_str(&money::format_nanos(*n)),
        None => s.serialize_none(),
    }
}

/// Why a line was rejected: the field (or `line`/`json`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The offending field, or None for whole-line problems (bad JSON).
    pub field: Option<String>,
    /// What is wrong, and where possible what would be right.
    pub reason: String,
}

impl FieldError {
    fn field(field: &str, reason: impl Into<String>) -> Self {
        FieldError {
            field: Some(field.to_string()),
            reason: reason.into(),
        }
    }
    fn line(reason: impl Into<String>) -> Self {
        FieldError {
            field: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(name) => write!(f, "field \"{name}\": {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// Deserialises a field that may be absent (outer None), `null` (inner
/// None) or a value, so required-but-nullable fields can insist on presence.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A JSON integer, or null, for a `u64` field. JSON's `-0` is an integer
/// zero (serde_json hands it over as the float -0.0, which would otherwise
/// be "floating point"), so `-0` (and `-0.0`, indistinguishable from it
/// here) reads as 0; any other float or a negative number is an error.
fn uint<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v == 0.0 && v.is_sign_negative() {
                Ok(Some(0))
            } else {
                Err(E::invalid_type(serde::de::Unexpected::Float(v), &self))
            }
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_option(V)
}

/// [`uint`] for an `i64` field (`exit_code`): `-0` reads as 0.
fn int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v == 0.0 && v.is_sign_negative() {
                Ok(Some(0))
            } else {
                Err(E::invalid_type(serde::de::Unexpected::Float(v), &self))
            }
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_option(V)
}

/// Every field of every kind, as read from the wire before validation.
/// Borrowed strings avoid copies for the common unescaped case.
#[derive(Deserialize, Default)]
struct Wire<'a> {
    #[serde(default, deserialize_with = "uint")]
    v: Option<u64>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow)]
    customer_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    vm_id: Option<Cow<'a, str>>,

    // resource
    interval_seconds: Option<f64>,
    status: Option<SampleStatus>,
    flags: Option<Vec<String>>,
    boot_id: Option<String>,
    #[serde(default, deserialize_with = "uint")]
    seq: Option<u64>,
    cpu_percent: Option<f64>,
    #[serde(default, deserialize_with = "uint")]
    cpu_busy_ticks: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    cpu_total_ticks: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    ncpu: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    clk_tck: Option<u64>,
    memory_percent: Option<f64>,
    #[serde(default, deserialize_with = "uint")]
    memory_used_bytes: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    memory_total_bytes: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    disk_used_bytes: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    disk_total_bytes: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    net_in_bytes: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    net_out_bytes: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    cpu_busy_ticks_cum: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    cpu_total_ticks_cum: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    net_in_bytes_cum: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    net_out_bytes_cum: Option<u64>,
    errors: Option<Vec<String>>,

    // api
    provider: Option<String>,
    model: Option<String>,
    price_key: Option<String>,
    #[serde(default, deserialize_with = "uint")]
    tokens_in: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    tokens_out: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    cache_read_tokens: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    cache_write_tokens: Option<u64>,
    #[serde(default, deserialize_with = "uint")]
    reasoning_tokens: Option<u64>,
    #[serde(default, deserialize_with = "present", borrow)]
    cost_usd: Option<Option<Cow<'a, str>>>,
    priced: Option<bool>,
    price_table: Option<String>,
    request_id: Option<String>,
    failed: Option<bool>,
    auth_type: Option<String>,
    client: Option<String>,
    service_tier: Option<String>,
    source_format: Option<String>,

    // activity
    activity_type: Option<String>,
    pattern_name: Option<String>,
    command: Option<String>,
    duration_seconds: Option<f64>,
    #[serde(default, deserialize_with = "int")]
    exit_code: Option<i64>,
    user: Option<String>,
}

/// True for `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`, the customer and VM id pattern.
pub fn is_ident(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The reason text used for a bad identifier, shared with the CLI tools.
pub const IDENT_RULE: &str =
    "must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (letters, digits, '.', '_', '-'; at most 64)";

/// True for a lower-case word: `[a-z][a-z0-9_]{0,31}` (activity types).
pub fn is_lower_word(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Largest integer SQLite's INTEGER can hold (u63).
const MAX_U63: u64 = i64::MAX as u64;

fn req<T>(v: Option<T>, name: &str) -> Result<T, FieldError> {
    v.ok_or_else(|| FieldError::field(name, "missing"))
}

fn u63(v: Option<u64>, name: &str) -> Result<Option<u64>, FieldError> {
    match v {
        Some(n) if n > MAX_U63 => Err(FieldError::field(
            name,
            format!("{n} is larger than {MAX_U63} (SQLite INTEGER)"),
        )),
        other => Ok(other),
    }
}

/// `v` if it is at most `max`, else the field's bound error.
fn at_most(v: Option<u64>, name: &str, max: u64) -> Result<Option<u64>, FieldError> {
    match v {
        Some(n) if n > max => Err(FieldError::field(
            name,
            format!("{n} is larger than {max}, the bound of mb-events(5) (BOUNDS)"),
        )),
        other => Ok(other),
    }
}

fn seconds(v: Option<f64>, name: &str) -> Result<Option<f64>, FieldError> {
    match non_negative(v, name)? {
        Some(x) if x > bounds::MAX_SECONDS => Err(FieldError::field(
            name,
            format!(
                "{x} is larger than {}, the bound of mb-events(5) (BOUNDS)",
                bounds::MAX_SECONDS
            ),
        )),
        other => Ok(other),
    }
}

fn percent(v: Option<f64>, name: &str) -> Result<Option<f64>, FieldError> {
    match v {
        Some(p) if !(0.0..=100.0).contains(&p) => {
            Err(FieldError::field(name, format!("{p} is outside 0..=100")))
        }
        other => Ok(other),
    }
}

fn non_negative(v: Option<f64>, name: &str) -> Result<Option<f64>, FieldError> {
    match v {
        Some(x) if !x.is_finite() || x < 0.0 => Err(FieldError::field(
            name,
            format!("{x} is negative or not finite"),
        )),
        other => Ok(other),
    }
}

fn text(v: Option<String>, name: &str, max: usize) -> Result<Option<String>, FieldError> {
    match v {
        Some(s) if s.chars().count() > max => Err(FieldError::field(
            name,
            format!("longer than {max} characters"),
        )),
        other => Ok(other),
    }
}

/// A boot id: 1..=64 printable characters (the kernel's is a 36-character
/// UUID).
fn boot_id(v: Option<String>) -> Result<String, FieldError> {
    let s = nonempty(v, "boot_id", 64)?;
    if s.chars().any(char::is_control) {
        return Err(FieldError::field("boot_id", "contains control characters"));
    }
    Ok(s)
}

fn nonempty(v: Option<String>, name: &str, max: usize) -> Result<String, FieldError> {
    let s = req(text(v, name, max)?, name)?;
    if s.is_empty() {
        return Err(FieldError::field(name, "empty"));
    }
    Ok(s)
}

/// Turn serde's message into one that names the field and drops serde's
/// own "at line 1 column N" (the caller reports the real line).
fn serde_reason(e: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let col = inner.column();
    let mut msg = inner.to_string();
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    if inner.is_syntax() || inner.is_eof() || path == "." || path.is_empty() {
        let hint = if msg.contains("EOF") {
            "; the line looks truncated"
        } else {
            ""
        };
        return FieldError::line(format!("invalid JSON at column {col}: {msg}{hint}"));
    }
    // Map serde's type names to the contract's words.
    let msg = msg
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number");
    let field = path.split(['.', '[']).next().unwrap_or(&path).to_string();
    FieldError::field(&field, msg)
}

impl Event {
    /// Check a built event as mb-ingest will (`now` bounds `ts`): producers
    /// call this before writing, so they never emit a line mb-ingest would
    /// reject. It round-trips through the wire form, so the rules cannot
    /// drift from [`parse_line`]'s.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        parse_line(&self.to_json(), now).map(|_| ())
    }
}

/// Parse and validate one line of mb-events(5).
///
/// `now` bounds timestamps in the future (at most one day ahead, to tolerate
/// skewed VM clocks while catching ms-vs-s and year typos).
pub fn parse_line(line: &str, now: DateTime<Utc>) -> Result<Event, FieldError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(FieldError::line(format!(
            "line longer than {MAX_LINE_BYTES} bytes"
        )));
    }
    if line.starts_with('\u{feff}') {
        return Err(FieldError::line(
            "starts with a UTF-8 byte order mark (U+FEFF) in the middle of the input; \
             remove it (mb-ingest skips one only at the start of a file)",
        ));
    }
    let trimmed = line.trim_start();
    if !trimmed.starts_with('{') {
        return Err(FieldError::line(
            "not a JSON object (each line must be one compact JSON object; \
             pretty-printed JSON can be fixed with `jq -c`)",
        ));
    }
    // Fast path without path tracking; only a failing line is parsed a
    // second time, through serde_path_to_error, to name the field.
    let w: Wire = match serde_json::from_str(line) {
        Ok(w) => w,
        Err(_) => {
            let mut de = serde_json::Deserializer::from_str(line);
            let w: Wire = serde_path_to_error::deserialize(&mut de).map_err(serde_reason)?;
            de.end().map_err(|e| {
                FieldError::line(format!(
                    "trailing characters after the JSON object at column {}",
                    e.column()
                ))
            })?;
            w
        }
    };
    validate(w, now)
}

fn validate(w: Wire<'_>, now: DateTime<Utc>) -> Result<Event, FieldError> {
    match w.v {
        None => return Err(FieldError::field("v", "missing")),
        Some(CONTRACT_VERSION) => {}
        Some(n) => {
            return Err(FieldError::field(
                "v",
                format!(
                "unsupported contract version {n} (this mb reads {CONTRACT_VERSION}); upgrade mb"
            ),
            ))
        }
    }
    let kind_s = req(w.kind.as_deref(), "kind")?;
    let kind = Kind::parse(kind_s).ok_or_else(|| {
        FieldError::field(
            "kind",
            format!("{kind_s:?} is not one of resource, api, activity"),
        )
    })?;
    let id = req(w.id, "id")?;
    let n = id.chars().count();
    if n == 0 || n > MAX_ID_CHARS {
        return Err(FieldError::field(
            "id",
            format!("must be 1..={MAX_ID_CHARS} characters, got {n}"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(FieldError::field("id", "contains control characters"));
    }
    let ts_s = req(w.ts, "ts")?;
    let ts = time::parse_rfc3339(&ts_s).ok_or_else(|| {
        FieldError::field(
            "ts",
            format!("{ts_s:?} is not RFC 3339 (like \"2026-11-03T10:05:00Z\")"),
        )
    })?;
    // A leap second (23:59:60.f) is stored as 23:59:59.999999999, the last
    // instant before the next minute: Unix time and the store's ts_ns have
    // no leap seconds, and this keeps the event in its own minute, day and
    // month, and the same line read again equal to the stored one (a
    // duplicate, not a conflict).
    let ts = if chrono::Timelike::nanosecond(&ts) >= 1_000_000_000 {
        chrono::Timelike::with_nanosecond(&ts, 999_999_999).unwrap_or(ts)
    } else {
        ts
    };
    if ts > now + chrono::Duration::days(1) {
        return Err(FieldError::field(
            "ts",
            format!(
                "{} is more than 1 day in the future (now {}); check the clock or the unit",
                time::format_rfc3339(&ts),
                time::format_rfc3339(&now)
            ),
        ));
    }
    if time::to_unix_nanos(&ts).is_none() {
        return Err(FieldError::field("ts", "outside the years 1678..2261"));
    }
    let ident = |v: Option<Cow<str>>, name: &str| -> Result<String, FieldError> {
        let s = req(v, name)?;
        if !is_ident(&s) {
            return Err(FieldError::field(name, format!("{s:?} {IDENT_RULE}")));
        }
        Ok(s.into_owned())
    };
    let header = Header {
        id: id.into_owned(),
        ts,
        customer_id: ident(w.customer_id, "customer_id")?,
        vm_id: ident(w.vm_id, "vm_id")?,
    };
    let body = match kind {
        Kind::Resource => {
            use bounds::{MAX_BYTES as B, MAX_SIZE_BYTES as S, MAX_SMALL as N, MAX_TICKS as T};
            Body::Resource(Resource {
                interval_seconds: seconds(w.interval_seconds, "interval_seconds")?,
                status: req(w.status, "status")?,
                flags: w.flags.unwrap_or_default(),
                boot_id: boot_id(w.boot_id)?,
                seq: req(u63(w.seq, "seq")?, "seq")?,
                cpu_percent: percent(w.cpu_percent, "cpu_percent")?,
                cpu_busy_ticks: at_most(w.cpu_busy_ticks, "cpu_busy_ticks", T)?,
                cpu_total_ticks: at_most(w.cpu_total_ticks, "cpu_total_ticks", T)?,
                ncpu: at_most(w.ncpu, "ncpu", N)?,
                clk_tck: at_most(w.clk_tck, "clk_tck", N)?,
                memory_percent: percent(w.memory_percent, "memory_percent")?,
                memory_used_bytes: at_most(w.memory_used_bytes, "memory_used_bytes", S)?,
                memory_total_bytes: at_most(w.memory_total_bytes, "memory_total_bytes", S)?,
                disk_used_bytes: at_most(w.disk_used_bytes, "disk_used_bytes", S)?,
                disk_total_bytes: at_most(w.disk_total_bytes, "disk_total_bytes", S)?,
                net_in_bytes: at_most(w.net_in_bytes, "net_in_bytes", B)?,
                net_out_bytes: at_most(w.net_out_bytes, "net_out_bytes", B)?,
                cpu_busy_ticks_cum: at_most(w.cpu_busy_ticks_cum, "cpu_busy_ticks_cum", T)?,
                cpu_total_ticks_cum: at_most(w.cpu_total_ticks_cum, "cpu_total_ticks_cum", T)?,
                net_in_bytes_cum: at_most(w.net_in_bytes_cum, "net_in_bytes_cum", B)?,
                net_out_bytes_cum: at_most(w.net_out_bytes_cum, "net_out_bytes_cum", B)?,
                errors: w.errors.unwrap_or_default(),
            })
        }
        Kind::Api => {
            let tok = |v: Option<u64>, name: &str| req(at_most(v, name, bounds::MAX_TOKENS)?, name);
            let tokens_out = tok(w.tokens_out, "tokens_out")?;
            let reasoning_tokens = u63(w.reasoning_tokens, "reasoning_tokens")?.unwrap_or(0);
            if reasoning_tokens > tokens_out {
                return Err(FieldError::field(
                    "reasoning_tokens",
                    format!("{reasoning_tokens} is more than tokens_out ({tokens_out}), of which it is a part"),
                ));
            }
            let cost = match w.cost_usd {
                None => {
                    return Err(FieldError::field(
                        "cost_usd",
                        "missing (write null for unpriced usage)",
                    ))
                }
                Some(None) => None,
                Some(Some(s)) => {
                    let n = money::parse_nanos(&s).map_err(|r| FieldError::field("cost_usd", r))?;
                    if n > bounds::MAX_COST_NUSD {
                        return Err(FieldError::field(
                            "cost_usd",
                            format!(
                                "{s} is more than {}, the bound of mb-events(5) (BOUNDS)",
                                money::format_nanos(bounds::MAX_COST_NUSD)
                            ),
                        ));
                    }
                    Some(n)
                }
            };
            let priced = req(w.priced, "priced")?;
            if priced != cost.is_some() {
                return Err(FieldError::field(
                    "priced",
                    if priced {
                        "true but cost_usd is null"
                    } else {
                        "false but cost_usd has a value"
                    },
                ));
            }
            let auth_type = w.auth_type.unwrap_or_else(|| "unknown".to_string());
            if !AUTH_TYPES.contains(&auth_type.as_str()) {
                return Err(FieldError::field(
                    "auth_type",
                    format!("{auth_type:?} is not one of apikey, oauth, unknown"),
                ));
            }
            Body::Api(Api {
                provider: nonempty(w.provider, "provider", 64)?,
                model: nonempty(w.model, "model", 200)?,
                price_key: text(w.price_key, "price_key", 200)?,
                tokens_in: tok(w.tokens_in, "tokens_in")?,
                tokens_out,
                cache_read_tokens: tok(w.cache_read_tokens, "cache_read_tokens")?,
                cache_write_tokens: tok(w.cache_write_tokens, "cache_write_tokens")?,
                reasoning_tokens,
                cost_nusd: cost,
                priced,
                price_table: text(w.price_table, "price_table", 200)?,
                request_id: text(w.request_id, "request_id", 200)?,
                failed: w.failed.unwrap_or(false),
                auth_type,
                client: text(w.client, "client", 200)?,
                service_tier: text(w.service_tier, "service_tier", 64)?,
                source_format: text(w.source_format, "source_format", 64)?,
            })
        }
        Kind::Activity => {
            let activity_type = req(w.activity_type, "activity_type")?;
            if !is_lower_word(&activity_type) {
                return Err(FieldError::field(
                    "activity_type",
                    format!("{activity_type:?} is not a lower-case word like \"command\""),
                ));
            }
            let exit_code = match w.exit_code {
                Some(c) if i32::try_from(c).is_err() => {
                    return Err(FieldError::field(
                        "exit_code",
                        format!("{c} is outside the 32-bit range"),
                    ))
                }
                other => other,
            };
            Body::Activity(Activity {
                activity_type,
                pattern_name: text(w.pattern_name, "pattern_name", 200)?,
                command: text(w.command, "command", 4096)?,
                duration_seconds: req(
                    seconds(w.duration_seconds, "duration_seconds")?,
                    "duration_seconds",
                )?,
                exit_code,
                user: text(w.user, "user", 64)?,
            })
        }
    };
    Ok(Event { header, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        time::parse_rfc3339("2026-11-28T00:00:00Z").unwrap()
    }

    const API: &str = r#"{"v":1,"kind":"api","id":"cpa:2026-11-03T10:05:00Z:1a2b3c4d","ts":"2026-11-03T10:05:00Z","customer_id":"acme","vm_id":"vm-1","provider":"anthropic","model":"claude-sonnet-4-5","price_key":"claude-sonnet-4-5","tokens_in":1000,"tokens_out":200,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":"0.006","priced":true,"price_table":"builtin-2026-11","request_id":"1a2b3c4d","failed":false,"auth_type":"apikey","client":null,"service_tier":null,"source_format":"usage-queue"}"#;

    #[test]
    fn api_round_trips_byte_for_byte() {
        let e = parse_line(API, now()).unwrap();
        assert_eq!(e.to_json(), API);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = API.replace("\"tokens_in\":1000", "\"tokens_in\":-5");
        let err = parse_line(&bad, now()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("tokens_in"));
        let bad = API.replace(
            "2026-11-03T10:05:00Z\",\"customer",
            "yesterday\",\"customer",
        );
        let err = parse_line(&bad, now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field \"ts\": \"yesterday\" is not RFC 3339 (like \"2026-11-03T10:05:00Z\")"
        );
        let err = parse_line(&API[..50], now()).unwrap_err();
        assert!(err.to_string().starts_with("invalid JSON"), "{err}");
    }

    #[test]
    fn idents() {
        assert!(is_ident("acme-corp.eu_1"));
        assert!(!is_ident("-acme"));
        assert!(!is_ident(""));
        assert!(!is_ident(&"a".repeat(65)));
        assert!(is_ident(&"a".repeat(64)));
    }
}
