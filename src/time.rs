//! Timestamps: parsing, canonical formatting, and the clock.
//!
//! The wire format is RFC 3339. Readers accept any offset and convert it to
//! UTC (the instant is the same, so this is not a repair); writers always
//! emit `Z` with as few fraction digits as the value needs (0, 3, 6 or 9),
//! so a whole-second sample stays `2026-11-03T10:05:00Z`.
//!
//! The clock is read through [`now`], which honours `MB_NOW` (an RFC 3339
//! instant) so tests and reproducible runs can pin it.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};

/// Parse an RFC 3339 timestamp with any offset into UTC.
pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    // chrono accepts a lower-case `t`/`z` and a space separator too; the
    // contract says RFC 3339, whose grammar allows exactly those.
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Format an instant in the canonical wire form (UTC, `Z`, minimal fraction).
pub fn format_rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Format an instant with a fixed 6-digit fraction. Fixed width makes the
/// text sort like the instant, which `ingested_at` comparisons rely on.
pub fn format_fixed_micros(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Nanoseconds since the Unix epoch, the storage form of event times.
///
/// `None` outside 1677..2262, which validation rejects long before.
pub fn to_unix_nanos(t: &DateTime<Utc>) -> Option<i64> {
    t.timestamp_nanos_opt()
}

/// Inverse of [`to_unix_nanos`].
pub fn from_unix_nanos(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// The current time: `MB_NOW` when set (tests, reproducible runs), else the
/// system clock. An unparsable `MB_NOW` is ignored rather than fatal because
/// it is a test knob, and the real clock is always a safe answer.
pub fn now() -> DateTime<Utc> {
    if let Ok(v) = std::env::var("MB_NOW") {
        if let Some(t) = parse_rfc3339(&v) {
            return t;
        }
    }
    Utc::now()
}

/// `t` without its fraction of a second (for "generated at" stamps).
pub fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// Parse a user-supplied point in time for CLI flags: an RFC 3339 instant,
/// a date `YYYY-MM-DD` meaning 00:00 of that day in `tz`, or a local date
/// and time without a zone, as people type them (`2026-11-10T00:00`,
/// `2026-11-10 08:30`, seconds optional), meaning that wall-clock time in
/// `tz`. A local time that occurs twice (the hour the clocks go back) is
/// the first of the two; one that does not exist (the hour skipped when
/// they go forward) is refused.
pub fn parse_instant_or_date(s: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return start_of_day(d, tz);
    }
    let naive = parse_local_datetime(s)?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// `YYYY-MM-DD[T ]HH:MM[:SS[.fff]]` with no zone.
fn parse_local_datetime(s: &str) -> Option<chrono::NaiveDateTime> {
    for f in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    None
}

/// 00:00 of `d` in `tz`, as UTC. On a day whose midnight does not exist
/// (a DST jump at 00:00, e.g. America/Havana) the first instant of the day
/// is taken, which is what a person means by "the start of that day".
pub fn start_of_day(d: NaiveDate, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let naive = d.and_hms_opt(0, 0, 0)?;
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        chrono::LocalResult::None => {
            // Walk forward in minutes until the local time exists.
            (1..=180).find_map(|m| {
                let n = naive + chrono::Duration::minutes(m);
                tz.from_local_datetime(&n)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            })
        }
    }
}

/// Parse an IANA zone name (`Europe/Prague`, `UTC`).
pub fn parse_tz(s: &str) -> Option<chrono_tz::Tz> {
    s.parse::<chrono_tz::Tz>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_convert_and_format_minimally() {
        let t = parse_rfc3339("2026-11-03T11:05:00+01:00").unwrap();
        assert_eq!(format_rfc3339(&t), "2026-11-03T10:05:00Z");
        let t = parse_rfc3339("2026-11-03T10:05:00.5Z").unwrap();
        assert_eq!(format_rfc3339(&t), "2026-11-03T10:05:00.500Z");
        assert!(parse_rfc3339("2026-11-03 10:05").is_none());
        assert!(parse_rfc3339("1700000000").is_none());
    }

    #[test]
    fn nanos_round_trip() {
        let t = parse_rfc3339("2026-11-03T10:05:00.123456789Z").unwrap();
        let ns = to_unix_nanos(&t).unwrap();
        assert_eq!(
            format_rfc3339(&from_unix_nanos(ns)),
            "2026-11-03T10:05:00.123456789Z"
        );
    }

    #[test]
    fn date_is_local_midnight() {
        let tz = parse_tz("Europe/Prague").unwrap();
        let t = parse_instant_or_date("2026-07-01", tz).unwrap();
        assert_eq!(format_rfc3339(&t), "2026-06-30T22:00:00Z");
        let t = parse_instant_or_date("2026-12-01", tz).unwrap();
        assert_eq!(format_rfc3339(&t), "2026-11-30T23:00:00Z");
    }

    #[test]
    fn local_times_without_a_zone_are_in_the_zone() {
        let tz = parse_tz("Europe/Prague").unwrap();
        let t = parse_instant_or_date("2026-11-10T00:00", tz).unwrap();
        assert_eq!(format_rfc3339(&t), "2026-11-09T23:00:00Z");
        let t = parse_instant_or_date("2026-11-10 08:30:15", tz).unwrap();
        assert_eq!(format_rfc3339(&t), "2026-11-10T07:30:15Z");
        // 02:30 on 2026-10-25 happens twice in Prague: the first (CEST).
        let t = parse_instant_or_date("2026-10-25T02:30", tz).unwrap();
        assert_eq!(format_rfc3339(&t), "2026-10-25T00:30:00Z");
        // 02:30 on 2026-03-29 never happens there.
        assert!(parse_instant_or_date("2026-03-29T02:30", tz).is_none());
        assert!(parse_instant_or_date("2026-11-10T00:00Z", tz).is_none());
        assert!(parse_instant_or_date("2026-11-10T25:00", tz).is_none());
    }

    #[test]
    fn fixed_micros_sorts_like_time() {
        let a = format_fixed_micros(&parse_rfc3339("2026-11-03T10:05:00Z").unwrap());
        let b = format_fixed_micros(&parse_rfc3339("2026-11-03T10:05:00.5Z").unwrap());
        assert!(a < b);
        assert_eq!(a, "2026-11-03T10:05:00.000000Z");
    }
}
