//! Reporting periods: half-open `[start, end)` ranges of local calendar
//! days, ISO weeks and months in a named IANA zone (DESIGN.md section 7).
//!
//! Boundaries are local midnights converted to UTC, so a month in
//! Europe/Prague that contains the end of daylight saving time is 31 days
//! and one hour long, and a day can be 23 or 25 hours. Hour buckets step in
//! real (UTC) hours from a local midnight.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::time;

/// The kind of a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// One clock hour.
    Hour,
    /// A local calendar day.
    Day,
    /// An ISO week (Monday to Monday).
    Week,
    /// A calendar month.
    Month,
}

impl Unit {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
        }
    }
}

/// A half-open time range with its zone and a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// `day`, `week`, `month`, `hour` or `custom`.
    pub kind: String,
    /// Human label: `2026-11-03`, `2026-W45`, `2026-11`, or `START..END`.
    pub label: String,
    /// Start (inclusive), UTC.
    #[serde(serialize_with = "ser_t")]
    pub start: DateTime<Utc>,
    /// End (exclusive), UTC.
    #[serde(serialize_with = "ser_t")]
    pub end: DateTime<Utc>,
    /// IANA zone of the boundaries.
    #[serde(serialize_with = "ser_tz")]
    pub tz: Tz,
}

fn ser_t<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&time::format_rfc3339(t))
}

fn ser_tz<S: serde::Serializer>(t: &Tz, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(t.name())
}

impl Period {
    /// Start as Unix ns.
    pub fn start_ns(&self) -> i64 {
        time::to_unix_nanos(&self.start).unwrap_or(i64::MIN)
    }

    /// End as Unix ns.
    pub fn end_ns(&self) -> i64 {
        time::to_unix_nanos(&self.end).unwrap_or(i64::MAX)
    }

    /// Length in seconds (may be fractional for custom ranges).
    pub fn seconds(&self) -> f64 {
        (self.end - self.start).num_milliseconds() as f64 / 1000.0
    }

    /// A custom range.
    pub fn custom(start: DateTime<Utc>, end: DateTime<Utc>, tz: Tz) -> Result<Period> {
        if end <= start {
            return Err(Error::Usage(format!(
                "--until {} is not after --since {}",
                time::format_rfc3339(&end),
                time::format_rfc3339(&start)
            )));
        }
        Ok(Period {
            kind: "custom".into(),
            label: format!(
                "{}..{}",
                time::format_rfc3339(&start),
                time::format_rfc3339(&end)
            ),
            start,
            end,
            tz,
        })
    }

    /// The period of `unit` that contains `at` in `tz`.
    pub fn containing(unit: Unit, at: DateTime<Utc>, tz: Tz) -> Result<Period> {
        let local = at.with_timezone(&tz).date_naive();
        match unit {
            Unit::Hour => {
                let start = DateTime::from_timestamp(at.timestamp().div_euclid(3600) * 3600, 0)
                    .unwrap_or(at);
                Ok(Period {
                    kind: "hour".into(),
                    label: start
                        .with_timezone(&tz)
                        .format("%Y-%m-%dT%H:%M")
                        .to_string(),
                    start,
                    end: start + Duration::hours(1),
                    tz,
                })
            }
            Unit::Day => day(local, tz),
            Unit::Week => {
                let monday =
                    local - Duration::days(i64::from(local.weekday().num_days_from_monday()));
                let iso = monday.iso_week();
                Ok(Period {
                    kind: "week".into(),
                    label: format!("{}-W{:02}", iso.year(), iso.week()),
                    start: midnight(monday, tz)?,
                    end: midnight(monday + Duration::days(7), tz)?,
                    tz,
                })
            }
            Unit::Month => month(local.year(), local.month(), tz),
        }
    }

    /// The next period of the same unit (for hour/day/week/month kinds).
    pub fn next(&self) -> Result<Period> {
        let unit = match self.kind.as_str() {
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            _ => return Period::custom(self.end, self.end + (self.end - self.start), self.tz),
        };
        Period::containing(unit, self.end, self.tz)
    }

    /// The previous period of the same unit.
    pub fn prev(&self) -> Result<Period> {
        let unit = match self.kind.as_str() {
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            _ => return Period::custom(self.start - (self.end - self.start), self.start, self.tz),
        };
        Period::containing(unit, self.start - Duration::nanoseconds(1), self.tz)
    }

    /// The local calendar days of this period (for proration).
    pub fn days(&self) -> Vec<NaiveDate> {
        let first = self.start.with_timezone(&self.tz).date_naive();
        let mut out = Vec::new();
        let mut d = first;
        loop {
            match midnight(d, self.tz) {
                Ok(m) if m < self.end => out.push(d),
                _ => break,
            }
            d += Duration::days(1);
        }
        out
    }

    /// Split into consecutive buckets of `unit` (the first and last may be
    /// cut by the period's own edges).
    pub fn buckets(&self, unit: Unit) -> Result<Vec<Period>> {
        let mut out = Vec::new();
        let mut p = Period::containing(unit, self.start, self.tz)?;
        while p.start < self.end {
            let mut b = p.clone();
            if b.start < self.start {
                b.start = self.start;
            }
            if b.end > self.end {
                b.end = self.end;
            }
            out.push(b);
            p = p.next()?;
            if out.len() > 100_000 {
                return Err(Error::Usage(
                    "too many buckets; choose a larger --by unit".into(),
                ));
            }
        }
        Ok(out)
    }
}

/// Local midnight of `d` in `tz`, as UTC.
pub fn midnight(d: NaiveDate, tz: Tz) -> Result<DateTime<Utc>> {
    time::start_of_day(d, tz)
        .ok_or_else(|| Error::Invalid(format!("no midnight on {d} in {}", tz.name())))
}

/// The local day `d` as a period.
pub fn day(d: NaiveDate, tz: Tz) -> Result<Period> {
    Ok(Period {
        kind: "day".into(),
        label: d.format("%Y-%m-%d").to_string(),
        start: midnight(d, tz)?,
        end: midnight(d + Duration::days(1), tz)?,
        tz,
    })
}

/// The calendar month `y-m` in `tz`.
pub fn month(y: i32, m: u32, tz: Tz) -> Result<Period> {
    let first = NaiveDate::from_ymd_opt(y, m, 1)
        .ok_or_else(|| Error::Usage(format!("no month {y}-{m:02}")))?;
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    }
    .ok_or_else(|| Error::Usage(format!("no month after {y}-{m:02}")))?;
    Ok(Period {
        kind: "month".into(),
        label: format!("{y}-{m:02}"),
        start: midnight(first, tz)?,
        end: midnight(next, tz)?,
        tz,
    })
}

/// Parse `--month`: `YYYY-MM`, `last` (the previous month) or `current`.
pub fn parse_month(s: &str, now: DateTime<Utc>, tz: Tz) -> Result<Period> {
    let local = now.with_timezone(&tz).date_naive();
    match s {
        "current" | "this" => month(local.year(), local.month(), tz),
        "last" | "previous" => {
            let (y, m) = if local.month() == 1 {
                (local.year() - 1, 12)
            } else {
                (local.year(), local.month() - 1)
            };
            month(y, m, tz)
        }
        _ => {
            let bad = || Error::Usage(format!("--month {s:?}: expected YYYY-MM, last or current"));
            let (y, m) = s.split_once('-').ok_or_else(bad)?;
            if y.len() != 4 || m.len() != 2 {
                return Err(bad());
            }
            let y: i32 = y.parse().map_err(|_| bad())?;
            let m: u32 = m.parse().map_err(|_| bad())?;
            if !(1..=12).contains(&m) {
                return Err(bad());
            }
            month(y, m, tz)
        }
    }
}

/// Parse a `--since`/`--until`/`--date`/`--as-of` value: RFC 3339, a local
/// date or a local date and time (see [`time::parse_instant_or_date`]).
pub fn parse_point(flag: &str, s: &str, tz: Tz) -> Result<DateTime<Utc>> {
    time::parse_instant_or_date(s, tz).ok_or_else(|| {
        Error::Usage(format!(
            "{flag} {s:?}: not a date (2026-11-03), a local time (2026-11-03T10:00) or an RFC 3339 time (2026-11-03T10:00:00Z); a local time skipped by a clock change does not exist"
        ))
    })
}

/// A zone's name and its UTC offset at `t`, like `Europe/Prague (+01:00)`.
pub fn tz_label(tz: Tz, t: DateTime<Utc>) -> String {
    if tz == chrono_tz::UTC {
        return "UTC".into();
    }
    format!(
        "{} ({})",
        tz.name(),
        tz.offset_from_utc_datetime(&t.naive_utc())
            .to_string_offset()
    )
}

trait OffsetString {
    fn to_string_offset(&self) -> String;
}

impl OffsetString for chrono_tz::TzOffset {
    fn to_string_offset(&self) -> String {
        use chrono::Offset;
        let secs = self.fix().local_minus_utc();
        let sign = if secs < 0 { '-' } else { '+' };
        let a = secs.abs();
        format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        time::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn prague_october_2026_has_the_dst_hour() {
        let tz: Tz = "Europe/Prague".parse().unwrap();
        let p = month(2026, 10, tz).unwrap();
        assert_eq!(time::format_rfc3339(&p.start), "2026-09-30T22:00:00Z");
        assert_eq!(time::format_rfc3339(&p.end), "2026-10-31T23:00:00Z");
        assert_eq!(p.seconds(), (31.0 * 24.0 + 1.0) * 3600.0);
        assert_eq!(p.days().len(), 31);
        let days = p.buckets(Unit::Day).unwrap();
        assert_eq!(days.len(), 31);
        // 2026-10-25 is the 25-hour day.
        assert_eq!(days[24].label, "2026-10-25");
        assert_eq!(days[24].seconds(), 25.0 * 3600.0);
    }

    #[test]
    fn iso_week_53() {
        // 2026-12-31 is a Thursday: ISO week 2026-W53 runs Mon 2026-12-28 .. Mon 2027-01-04.
        let p = Period::containing(Unit::Week, t("2027-01-02T12:00:00Z"), chrono_tz::UTC).unwrap();
        assert_eq!(p.label, "2026-W53");
        assert_eq!(time::format_rfc3339(&p.start), "2026-12-28T00:00:00Z");
        assert_eq!(time::format_rfc3339(&p.end), "2027-01-04T00:00:00Z");
        assert_eq!(p.next().unwrap().label, "2027-W01");
        assert_eq!(p.prev().unwrap().label, "2026-W52");
    }

    #[test]
    fn months_parse() {
        let now = t("2026-01-15T00:00:00Z");
        assert_eq!(
            parse_month("last", now, chrono_tz::UTC).unwrap().label,
            "2025-12"
        );
        assert_eq!(
            parse_month("2026-02", now, chrono_tz::UTC)
                .unwrap()
                .days()
                .len(),
            28
        );
        assert!(parse_month("2026-13", now, chrono_tz::UTC).is_err());
        assert!(parse_month("26-1", now, chrono_tz::UTC).is_err());
    }
}
