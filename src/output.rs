//! Output helpers shared by the tools: aligned text tables for people and
//! spreadsheet-safe CSV cells.

use std::io::Write;

use crate::error::Result;

/// Alignment of a table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: left.
    Left,
    /// Numbers: right.
    Right,
}

/// Write an aligned table: a header row, then the rows, columns separated by
/// two spaces, trailing spaces trimmed. Widths count characters, not bytes.
pub fn write_table(
    out: &mut dyn Write,
    headers: &[&str],
    aligns: &[Align],
    rows: &[Vec<String>],
) -> Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = widths[i].saturating_sub(c.chars().count());
            match aligns.get(i).copied().unwrap_or(Align::Left) {
                Align::Left => {
                    s.push_str(c);
                    s.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(c);
                }
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(&mut headers.iter().copied()))?;
    for r in rows {
        writeln!(out, "{}", line(&mut r.iter().map(String::as_str)))?;
    }
    Ok(())
}

/// Neutralise a text cell for human-facing CSV (DESIGN.md section 10): a
/// leading `=`, `+`, `-` or `@` would make a spreadsheet evaluate it as a
/// formula, so it gets a leading `'`. Numbers must not go through this.
pub fn csv_text(s: &str) -> String {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{s}"),
        _ => s.to_string(),
    }
}

/// Format an integer with thousands separators (`1234567` -> `1,234,567`).
pub fn thousands(n: i128) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let mut v = Vec::new();
        write_table(
            &mut v,
            &["name", "n"],
            &[Align::Left, Align::Right],
            &[
                vec!["a".into(), "10".into()],
                vec!["bbb".into(), "2".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "name   n\na     10\nbbb    2\n"
        );
    }

    #[test]
    fn csv_and_thousands() {
        assert_eq!(csv_text("=cmd"), "'=cmd");
        assert_eq!(csv_text("acme"), "acme");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(thousands(999), "999");
    }
}

/// Format `x` with `places` decimals, rounding half away from zero on the
/// decimal value people see (Rust's `{:.1}` rounds the binary value, so
/// 183.25 would print as 183.2). Non-finite values print as empty.
pub fn fixed(x: f64, places: u32) -> String {
    match rust_decimal::Decimal::from_f64_retain(x).and_then(|_| {
        use rust_decimal::prelude::FromPrimitive;
        rust_decimal::Decimal::from_f64(x)
    }) {
        Some(d) => {
            let r = d.round_dp_with_strategy(
                places,
                rust_decimal::RoundingStrategy::MidpointAwayFromZero,
            );
            format!("{:.*}", places as usize, r)
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod fixed_tests {
    #[test]
    fn half_away_from_zero_on_the_decimal() {
        assert_eq!(super::fixed(183.25, 1), "183.3");
        assert_eq!(super::fixed(0.35, 1), "0.4");
        assert_eq!(super::fixed(12.0, 1), "12.0");
        assert_eq!(super::fixed(2048.5, 1), "2048.5");
        assert_eq!(super::fixed(f64::NAN, 1), "");
    }
}
