//! mb-activity's domain: what users do on the VM, as `kind: "activity"`
//! events (DESIGN.md section 3).
//!
//! This module owns everything between "something ran" and "a line exists":
//!
//! - [`Section`]: the `[activity]` section of mb.toml;
//! - [`redact`]: secrets masked in command text before anything is written;
//! - [`Record`] and [`event_id`]: building the event and its idempotency key;
//! - [`spool`]: publishing events as complete files for `mb-ingest --spool`;
//! - [`run`]: running a command with its stdio untouched and measuring it;
//! - [`hook`]: the bash and zsh hooks printed by `mb-activity init`.
//!
//! # The event id
//!
//! `act:` followed by 32 hex digits (128 bits) of SHA-256 over the
//! length-prefixed fields `customer, vm, user, ts (ns since the epoch), pid,
//! activity_type, pattern_name, command`. That is the identity of one
//! execution: who ran what, where, when, in which process. Re-sending the
//! same execution (a spool file ingested twice, `record` re-run with the
//! same arguments and `--at`) gives the same id, so mb-ingest counts a
//! duplicate; two executions differ at least in their start time or pid.
//! The measurements (`duration_seconds`, `exit_code`) are deliberately not
//! part of the id: a re-send with a different duration is the same
//! execution reported twice inconsistently, which mb-ingest surfaces as a
//! conflict instead of silently counting the time twice.
//!
//! `pid` is the command's process id for `run`, the shell's for the hooks
//! and absent for `record` (the caller owns the identity there, through
//! `--at`).

pub mod hook;
pub mod redact;
pub mod run;
pub mod spool;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::events::{self, Activity, Body, Event, Header};
use crate::time;

pub use redact::Redactor;

/// The `[activity]` section of mb.toml.
///
/// ```toml
/// [activity]
/// redact = ['acct-[0-9]+', '(?i)internal-[a-z]+']   # extra patterns, whole match -> ***
/// spool = "/var/spool/mb"                           # default spool directory
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Extra redaction patterns (Rust regex syntax); each match becomes `***`.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Spool directory, instead of `<state_dir>/spool`.
    pub spool: Option<std::path::PathBuf>,
}

/// Longest `pattern_name`, in characters (the contract's limit).
pub const MAX_PATTERN_CHARS: usize = 200;

/// Longest `user`, in characters (the contract's limit).
pub const MAX_USER_CHARS: usize = 64;

/// One activity, before it becomes an [`Event`].
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Customer id (validated by the caller through `Config::customer`).
    pub customer_id: String,
    /// VM id (validated by the caller through `Config::vm`).
    pub vm_id: String,
    /// Login name.
    pub user: Option<String>,
    /// When the activity started.
    pub ts: DateTime<Utc>,
    /// Process id that identifies the execution (see the module docs).
    pub pid: Option<u32>,
    /// `command`, `pattern`, `operation`, ...
    pub activity_type: String,
    /// Named pattern, if any.
    pub pattern_name: Option<String>,
    /// Command text, already redacted and capped.
    pub command: Option<String>,
    /// Wall time in seconds, finite and >= 0.
    pub duration_seconds: f64,
    /// Exit status (signals as 128+N), if known.
    pub exit_code: Option<i64>,
}

impl Record {
    /// The event, with its deterministic id.
    pub fn to_event(&self) -> Event {
        Event {
            header: Header {
                id: event_id(self),
                ts: self.ts,
                customer_id: self.customer_id.clone(),
                vm_id: self.vm_id.clone(),
            },
            body: Body::Activity(Activity {
                activity_type: self.activity_type.clone(),
                pattern_name: self.pattern_name.clone(),
                command: self.command.clone(),
                duration_seconds: self.duration_seconds,
                exit_code: self.exit_code,
                user: self.user.clone(),
            }),
        }
    }
}

/// The idempotency key of `r` (see the module docs for what goes in).
pub fn event_id(r: &Record) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        // Length-prefixed, so ("ab","c") and ("a","bc") hash differently.
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(r.customer_id.as_bytes());
    field(r.vm_id.as_bytes());
    field(r.user.as_deref().unwrap_or("").as_bytes());
    field(
        time::to_unix_nanos(&r.ts)
            .unwrap_or(0)
            .to_string()
            .as_bytes(),
    );
    field(r.pid.map(|p| p.to_string()).unwrap_or_default().as_bytes());
    field(r.activity_type.as_bytes());
    field(r.pattern_name.as_deref().unwrap_or("").as_bytes());
    field(r.command.as_deref().unwrap_or("").as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(4 + 32);
    id.push_str("act:");
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// Check an `--type` value: a lower-case word like `command`.
pub fn check_type(t: &str) -> Result<()> {
    if events::is_lower_word(t) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--type {t:?}: must be a lower-case word ([a-z][a-z0-9_]*, at most 32), like command, pattern or operation"
        )))
    }
}

/// Check a `--name` value: 1..=200 characters without control characters.
pub fn check_pattern_name(n: &str) -> Result<()> {
    let count = n.chars().count();
    if count == 0 || count > MAX_PATTERN_CHARS || n.chars().any(char::is_control) {
        return Err(Error::Usage(format!(
            "--name {n:?}: must be 1..={MAX_PATTERN_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

/// Parse a duration in seconds: a plain non-negative decimal (`12`,
/// `0.25`). Exponents, signs, `inf` and `nan` are refused, so a typo
/// cannot become a huge or negative duration.
pub fn parse_duration(s: &str) -> Result<f64> {
    let bad = |why: &str| Error::Usage(format!("--duration {s:?}: {why}"));
    if s.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err(bad("not a number of seconds like 12 or 0.25"));
    }
    let v: f64 = s.parse().map_err(|_| bad("not a number of seconds"))?;
    // mb-ingest's bound (mb-events(5) BOUNDS): never write a line it rejects.
    if !v.is_finite() || v > crate::events::bounds::MAX_SECONDS {
        return Err(bad("larger than 1000000000 s, the bound of mb-events(5)"));
    }
    Ok(v)
}

/// Parse `--at`: an RFC 3339 instant not more than one day in the future of
/// `now` (mb-ingest would reject it; better to say so before writing).
pub fn parse_at(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let t = time::parse_rfc3339(s).ok_or_else(|| {
        Error::Usage(format!(
            "--at {s:?}: not an RFC 3339 timestamp like 2026-11-03T10:05:00Z"
        ))
    })?;
    if time::to_unix_nanos(&t).is_none() {
        return Err(Error::Usage(format!(
            "--at {s:?}: outside the years 1678..2261"
        )));
    }
    if t > now + chrono::Duration::days(1) {
        return Err(Error::Usage(format!(
            "--at {s:?}: more than 1 day in the future (now {})",
            time::format_rfc3339(&now)
        )));
    }
    Ok(t)
}

/// Parse a shell clock reading `SECONDS[.FRACTION]` (bash's and zsh's
/// `$EPOCHREALTIME`; the decimal separator follows the locale, so `,` is
/// accepted too) into nanoseconds since the epoch. Digits after the ninth
/// fraction digit are dropped.
pub fn parse_epoch(s: &str) -> Option<i64> {
    let (int, frac) = match s.find(['.', ',']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // zsh prints its float clock with up to 17 significant digits; digits
    // past the nanosecond carry no information.
    let frac = &frac[..frac.len().min(9)];
    let secs: i64 = int.parse().ok()?;
    let mut ns: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        ns += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    secs.checked_mul(1_000_000_000)?.checked_add(ns)
}

/// Seconds as an f64 rounded to the microsecond, so durations print as
/// `0.012346`, not `0.012345678000000001`.
pub fn seconds_from_nanos(ns: u128) -> f64 {
    (ns / 1_000) as f64 / 1e6
}

/// The login name: `LOGNAME`, else `USER`, else the passwd entry of the
/// real uid, else the numeric uid. Capped at 64 characters.
pub fn login_name() -> String {
    let env = ["LOGNAME", "USER"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty() && !v.chars().any(char::is_control));
    let name = env.unwrap_or_else(|| {
        let uid = rustix::process::getuid().as_raw();
        passwd_name(uid).unwrap_or_else(|| uid.to_string())
    });
    name.chars().take(MAX_USER_CHARS).collect()
}

/// The name of `uid` in /etc/passwd, if listed.
fn passwd_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    let uid = uid.to_string();
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        (f.next()? == uid).then(|| name.to_string())
    })
}

/// Join argv into one command line that a shell would split back into the
/// same words: plain words as they are, others in single quotes.
pub fn shell_join<S: AsRef<std::ffi::OsStr>>(argv: &[S]) -> String {
    let mut out = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let a = a.as_ref().to_string_lossy();
        let plain = !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
        if plain {
            out.push_str(&a);
        } else {
            out.push('\'');
            out.push_str(&a.replace('\'', r"'\''"));
            out.push('\'');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            customer_id: "acme".into(),
            vm_id: "vm-1".into(),
            user: Some("alice".into()),
            ts: time::parse_rfc3339("2026-11-28T12:00:00Z").unwrap(),
            pid: Some(42),
            activity_type: "command".into(),
            pattern_name: None,
            command: Some("make".into()),
            duration_seconds: 1.5,
            exit_code: Some(0),
        }
    }

    #[test]
    fn id_is_deterministic_and_ignores_measurements() {
        let a = rec();
        let mut b = rec();
        b.duration_seconds = 9.0;
        b.exit_code = Some(2);
        assert_eq!(event_id(&a), event_id(&b));
        assert_eq!(event_id(&a).len(), 36);
        assert!(event_id(&a).starts_with("act:"));
        let mut c = rec();
        c.pid = Some(43);
        assert_ne!(event_id(&a), event_id(&c));
        let mut d = rec();
        d.ts += chrono::Duration::nanoseconds(1);
        assert_ne!(event_id(&a), event_id(&d));
    }

    #[test]
    fn event_passes_ingest_validation() {
        let line = rec().to_event().to_json();
        let now = time::parse_rfc3339("2026-11-28T12:00:00Z").unwrap();
        let back = events::parse_line(&line, now).unwrap();
        assert_eq!(back.to_json(), line);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("12").unwrap(), 12.0);
        assert_eq!(parse_duration("0.25").unwrap(), 0.25);
        for bad in ["-1", "", ".5", "5.", "1e3", "inf", "NaN", "1,5", " 1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn epochs() {
        assert_eq!(
            parse_epoch("1795900988.687230"),
            Some(1_795_900_988_687_230_000)
        );
        assert_eq!(parse_epoch("1795900988,5"), Some(1_795_900_988_500_000_000));
        assert_eq!(parse_epoch("12"), Some(12_000_000_000));
        assert_eq!(parse_epoch("1.123456789"), Some(1_123_456_789));
        assert_eq!(parse_epoch("1.1234567891"), Some(1_123_456_789));
        for bad in ["", "x", "1.12x", "-1.0", ".5"] {
            assert_eq!(parse_epoch(bad), None, "{bad}");
        }
        assert_eq!(seconds_from_nanos(12_345_678_999), 12.345678);
    }

    #[test]
    fn join_quotes_like_a_shell() {
        assert_eq!(shell_join(&["make", "-j4"]), "make -j4");
        assert_eq!(
            shell_join(&["echo", "a b", "it's", ""]),
            r"echo 'a b' 'it'\''s' ''"
        );
    }

    #[test]
    fn at_and_types() {
        let now = time::parse_rfc3339("2026-11-28T12:00:00Z").unwrap();
        assert!(parse_at("2026-11-28T10:00:00+01:00", now).is_ok());
        assert!(parse_at("yesterday", now).is_err());
        assert!(parse_at("2026-11-30T12:00:00Z", now).is_err());
        assert!(check_type("command").is_ok());
        assert!(check_type("Command").is_err());
        assert!(check_type("db-backup").is_err());
        assert!(check_pattern_name("nightly backup").is_ok());
        assert!(check_pattern_name("").is_err());
    }
}
