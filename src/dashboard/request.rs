//! Turning a request's query string into a validated selection (period,
//! customer, series options), or a 4xx with a short message.
//!
//! The query string is parsed by hand rather than through serde so that
//! every failure mode is ours to answer: an oversized query is 414, a bad
//! percent escape or non-UTF-8 is 400, an unknown or repeated parameter is
//! 400 (a typo must not silently fall back to a default period), and a
//! customer other than the one the dashboard is scoped to is 403. Nothing in
//! here can panic on input.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::HttpError;
use crate::events::{is_ident, IDENT_RULE};
use crate::report::period::{self, Period, Unit};
use crate::report::METRICS;

/// Longest query string accepted (bytes, before decoding). Every legitimate
/// request is well under 200 bytes; anything larger is refused with 414.
pub const MAX_QUERY_BYTES: usize = 2048;

/// Most `key=value` pairs accepted in one query string.
const MAX_PAIRS: usize = 32;

/// Decoded `key=value` pairs of a query string, in order.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parse a raw query string (without the `?`). `token` is accepted and
    /// ignored here: the authentication layer consumes it.
    pub fn parse(raw: Option<&str>) -> Result<Params, HttpError> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY_BYTES {
            return Err(HttpError::uri_too_long(format!(
                "query string longer than {MAX_QUERY_BYTES} bytes"
            )));
        }
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = decode(k)?;
            let v = decode(v)?;
            if k == "token" {
                continue;
            }
            pairs.push((k, v));
            if pairs.len() > MAX_PAIRS {
                return Err(HttpError::bad_request("too many query parameters"));
            }
        }
        Ok(Params { pairs })
    }

    /// Refuse any parameter not in `allowed` (and repeats of all but
    /// `repeatable`).
    pub fn only(&self, allowed: &[&str], repeatable: &[&str]) -> Result<(), HttpError> {
        for (i, (k, _)) in self.pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(HttpError::bad_request(format!(
                    "unknown parameter {}; expected one of: {}",
                    quote(k),
                    allowed.join(", ")
                )));
            }
            if !repeatable.contains(&k.as_str()) && self.pairs[..i].iter().any(|(p, _)| p == k) {
                return Err(HttpError::bad_request(format!(
                    "parameter {} given twice",
                    quote(k)
                )));
            }
        }
        Ok(())
    }

    /// The value of `key`, if given (first occurrence).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A value shown in an error message: quoted, cut to 40 characters, with
/// control characters escaped (the message goes back to the client as text
/// and to nobody's terminal, but keep it tidy).
fn quote(s: &str) -> String {
    let cut: String = s.chars().take(40).collect();
    let more = if s.chars().count() > 40 { "..." } else { "" };
    format!("{:?}{more}", cut)
}

/// Percent-decode one query component (`+` is a space), as UTF-8.
fn decode(s: &str) -> Result<String, HttpError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(HttpError::bad_request("malformed percent escape in query"));
                };
                out.push((h * 16 + l) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| HttpError::bad_request("query is not UTF-8"))
}

/// Percent-encode a query component (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a request asks to see.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The period (a local day, ISO week or month).
    pub period: Period,
    /// Its unit.
    pub unit: Unit,
    /// The customer asked for (or the scoped one); `None` means all.
    pub customer: Option<String>,
}

/// Resolve `customer`: validated, and forced to `scoped` when the
/// dashboard serves only one customer (asking for another is 403).
pub fn customer(p: &Params, scoped: Option<&str>) -> Result<Option<String>, HttpError> {
    let asked = p.get("customer").filter(|c| !c.is_empty());
    if let Some(c) = asked {
        if !is_ident(c) {
            return Err(HttpError::bad_request(format!(
                "customer {} {IDENT_RULE}",
                quote(c)
            )));
        }
    }
    match (scoped, asked) {
        (Some(s), Some(c)) if c != s => Err(HttpError::forbidden(
            "this dashboard shows one customer only; remove the customer parameter",
        )),
        (Some(s), _) => Ok(Some(s.to_string())),
        (None, c) => Ok(c.map(str::to_string)),
    }
}

/// Resolve the period of a page or summary request: `month=YYYY-MM|current|last`,
/// or `period=day|week|month` with an optional `date` inside it (default:
/// now).
pub fn period(p: &Params, now: DateTime<Utc>, tz: Tz) -> Result<(Period, Unit), HttpError> {
    if p.get("since").is_some() || p.get("until").is_some() {
        return custom(p, now, tz);
    }
    if let Some(m) = p.get("month") {
        if p.get("period").is_some() || p.get("date").is_some() {
            return Err(HttpError::bad_request(
                "give either month, or period with date, not both",
            ));
        }
        let per = period::parse_month(m, now, tz)
            .map_err(|_| HttpError::bad_request("month: expected YYYY-MM, current or last"))?;
        return Ok((per, Unit::Month));
    }
    let unit = match p.get("period").unwrap_or("month") {
        "day" => Unit::Day,
        "week" => Unit::Week,
        "month" => Unit::Month,
        other => {
            return Err(HttpError::bad_request(format!(
                "period {}: expected day, week or month",
                quote(other)
            )))
        }
    };
    let at = match p.get("date") {
        None | Some("") => now,
        Some(d) => period::parse_point("date", d, tz).map_err(|_| {
            HttpError::bad_request(format!(
                "date {}: expected YYYY-MM-DD or an RFC 3339 time",
                quote(d)
            ))
        })?,
    };
    let per = Period::containing(unit, at, tz)
        .map_err(|_| HttpError::bad_request("date is outside the supported range"))?;
    Ok((per, unit))
}

/// The period parameters every period endpoint takes, plus `extra`.
pub fn with_period<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["period", "date", "month", "since", "until"];
    v.extend_from_slice(extra);
    v
}

/// Longest custom range accepted, days: bounded work per request (an
/// hourly series of it is under 10,000 buckets).
pub const MAX_RANGE_DAYS: i64 = 400;

/// A point in time of a query: RFC 3339, or a local date (midnight).
pub fn point(p: &Params, key: &str, tz: Tz) -> Result<Option<DateTime<Utc>>, HttpError> {
    match p.get(key) {
        None | Some("") => Ok(None),
        Some(v) => period::parse_point(key, v, tz).map(Some).map_err(|_| {
            HttpError::bad_request(format!(
                "{key} {}: expected YYYY-MM-DD or an RFC 3339 time",
                quote(v)
            ))
        }),
    }
}

/// `since=T&until=T` as in mb-report: a custom `[since, until)` range in
/// the zone (`until` defaults to now). It excludes `month`, `period` and
/// `date`.
fn custom(p: &Params, now: DateTime<Utc>, tz: Tz) -> Result<(Period, Unit), HttpError> {
    if p.get("month").is_some() || p.get("period").is_some() || p.get("date").is_some() {
        return Err(HttpError::bad_request(
            "give either since/until, or month, or period with date",
        ));
    }
    let Some(since) = point(p, "since", tz)? else {
        return Err(HttpError::bad_request("until needs since"));
    };
    let until = point(p, "until", tz)?.unwrap_or(now);
    if until <= since {
        return Err(HttpError::bad_request("until is not after since"));
    }
    if until - since > chrono::Duration::days(MAX_RANGE_DAYS) {
        return Err(HttpError::bad_request(format!(
            "since..until is longer than {MAX_RANGE_DAYS} days"
        )));
    }
    let per = Period::custom(since, until, tz).map_err(HttpError::from)?;
    // Charts of a custom range: hours up to two days, else days.
    let unit = if until - since <= chrono::Duration::days(2) {
        Unit::Day
    } else {
        Unit::Month
    };
    Ok((per, unit))
}

/// Resolve a whole selection (period and customer).
pub fn selection(
    p: &Params,
    now: DateTime<Utc>,
    tz: Tz,
    scoped: Option<&str>,
) -> Result<Selection, HttpError> {
    let (period, unit) = period(p, now, tz)?;
    Ok(Selection {
        period,
        unit,
        customer: customer(p, scoped)?,
    })
}

/// The series bucket unit: `by=hour|day|week|month`, default hours for a
/// day and days otherwise.
pub fn series_by(p: &Params, unit: Unit) -> Result<Unit, HttpError> {
    let by = match p.get("by") {
        None => default_bucket(unit),
        Some("hour") => Unit::Hour,
        Some("day") => Unit::Day,
        Some("week") => Unit::Week,
        Some("month") => Unit::Month,
        Some(other) => {
            return Err(HttpError::bad_request(format!(
                "by {}: expected hour, day, week or month",
                quote(other)
            )))
        }
    };
    // The largest selectable period is a month, so the finest split is
    // 744 hourly buckets: bounded work per request.
    Ok(by)
}

/// The chart bucket of a period: hours for a day, days otherwise.
pub fn default_bucket(unit: Unit) -> Unit {
    if unit == Unit::Day {
        Unit::Hour
    } else {
        Unit::Day
    }
}

/// The `metric` values, each checked against [`METRICS`].
pub fn metrics(p: &Params) -> Result<Vec<String>, HttpError> {
    let m = p.all("metric");
    for x in &m {
        if !METRICS.contains(&x.as_str()) {
            return Err(HttpError::bad_request(format!(
                "metric {}: expected one of {}",
                quote(x),
                METRICS.join(", ")
            )));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::time::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn decoding_and_limits() {
        let p = Params::parse(Some("customer=a%2Db&period=day&token=x&date=2026-11-03")).unwrap();
        assert_eq!(p.get("customer"), Some("a-b"));
        assert_eq!(p.get("token"), None);
        assert!(Params::parse(Some("a=%zz")).is_err());
        assert!(Params::parse(Some("a=%ff")).is_err());
        let long = "a=".to_string() + &"x".repeat(MAX_QUERY_BYTES);
        assert_eq!(Params::parse(Some(&long)).unwrap_err().status, 414);
        assert!(p.only(&["customer", "period", "date"], &[]).is_ok());
        assert!(p.only(&["customer", "period"], &[]).is_err());
        let twice = Params::parse(Some("period=day&period=week")).unwrap();
        assert!(twice.only(&["period"], &[]).is_err());
        assert_eq!(encode("a b<&"), "a%20b%3C%26");
    }

    #[test]
    fn periods_and_scoping() {
        let now = t("2026-11-28T12:00:00Z");
        let tz = chrono_tz::UTC;
        let p = Params::parse(Some("period=week&date=2026-11-03")).unwrap();
        let (per, unit) = period(&p, now, tz).unwrap();
        assert_eq!((per.label.as_str(), unit), ("2026-W45", Unit::Week));
        let p = Params::parse(Some("month=last")).unwrap();
        assert_eq!(period(&p, now, tz).unwrap().0.label, "2026-10");
        for bad in [
            "period=hour",
            "period=year",
            "date=2026-02-30",
            "month=2026-13",
        ] {
            let p = Params::parse(Some(bad)).unwrap();
            assert_eq!(period(&p, now, tz).unwrap_err().status, 400, "{bad}");
        }
        let p = Params::parse(Some("customer=other")).unwrap();
        assert_eq!(customer(&p, Some("acme")).unwrap_err().status, 403);
        let p = Params::parse(Some("customer=acme")).unwrap();
        assert_eq!(customer(&p, Some("acme")).unwrap(), Some("acme".into()));
        let p = Params::parse(None).unwrap();
        assert_eq!(customer(&p, Some("acme")).unwrap(), Some("acme".into()));
        let p = Params::parse(Some("customer=%3Cscript%3E")).unwrap();
        assert_eq!(customer(&p, None).unwrap_err().status, 400);
    }
}
