//! Output helpers shared by the tools: aligned text tables for people,
//! spreadsheet-safe CSV cells, and what keeps text output safe and legible
//! on a terminal: control characters escaped (stored text comes from
//! customers' VMs and may carry escape sequences), the terminal's width,
//! and whether colour is wanted.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

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

/// True for a character that must not reach a terminal or a log raw: C0
/// controls (tab and newline included: in one field they would fake
/// columns and rows), DEL, C1 controls (U+0080..U+009F, which some
/// terminals obey like ESC sequences), and the Unicode bidirectional
/// overrides and isolates, which reorder what is shown (CVE-2021-42574).
pub fn is_unsafe_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' | '\u{061c}')
}

/// Stored text made safe for a terminal or a log line: every character of
/// [`is_unsafe_char`] is written as an escape (`\n`, `\t`, `\r`, `\e` for
/// ESC, `\xNN` for other C0/DEL/C1, `\u{NNNN}` for bidi controls), the rest
/// unchanged. Text output and diagnostics use this; JSON and CSV stay exact.
pub fn escape_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            c if is_unsafe_char(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_unsafe_char(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// How text output is laid out: the width to fit and whether to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextStyle {
    /// Columns to fit.
    pub width: usize,
    /// ANSI colour on (headers, warnings, stale marks only).
    pub color: bool,
}

impl TextStyle {
    /// Plain 80 columns: what a pipe, a file or cron mail gets.
    pub const PLAIN: TextStyle = TextStyle {
        width: 80,
        color: false,
    };

    /// The style for stdout: the width from `COLUMNS`, else the terminal's,
    /// else 80; colour only when stdout is a terminal, `NO_COLOR` is unset
    /// or empty (no-color.org) and `TERM` is not `dumb`.
    pub fn for_stdout() -> TextStyle {
        let tty = std::io::stdout().is_terminal();
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|w| *w > 0)
            .or_else(|| {
                if tty {
                    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| w.0 as usize)
                } else {
                    None
                }
            })
            .unwrap_or(80);
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|v| v == "dumb");
        TextStyle {
            width: width.max(20),
            color: tty && !no_color && !dumb,
        }
    }

    /// `s` in bold (headers).
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }

    /// `s` in yellow (warnings, stale marks).
    pub fn warn(&self, s: &str) -> String {
        self.paint("33", s)
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// Word-wrap `text` to `width` columns: the first line as it is, the
/// following ones indented by `indent` spaces. Breaks at spaces; a word
/// longer than a line stays whole.
pub fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut cur_w = 0usize;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let w = word.chars().count();
        let lead = if lines.is_empty() { 0 } else { indent };
        if cur_w > 0 && lead + cur_w + 1 + w > width {
            lines.push(std::mem::take(&mut cur));
            cur_w = 0;
        }
        if cur_w == 0 {
            if !lines.is_empty() {
                cur.extend(std::iter::repeat_n(' ', indent));
            }
        } else {
            cur.push(' ');
            cur_w += 1;
        }
        cur.push_str(word);
        cur_w += w;
    }
    if cur_w > 0 || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// The width [`write_table`] would print `headers` and `rows` at.
pub fn table_width(headers: &[&str], rows: &[Vec<String>]) -> usize {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1)
}

/// A table that fits `width`: printed whole when it does, else as one table
/// per group of columns (`groups`, indices into the columns), each led by
/// the first `keys` columns, separated by a blank line, so a narrow
/// terminal gets two short tables rather than wrapped rows. Every line is
/// prefixed by `indent`.
#[allow(clippy::too_many_arguments)]
pub fn write_table_fit(
    out: &mut dyn Write,
    indent: &str,
    width: usize,
    headers: &[&str],
    aligns: &[Align],
    rows: &[Vec<String>],
    keys: usize,
    groups: &[&[usize]],
) -> Result<()> {
    let avail = width.saturating_sub(indent.chars().count());
    let parts: Vec<Vec<usize>> = if table_width(headers, rows) <= avail || groups.is_empty() {
        vec![(0..headers.len()).collect()]
    } else {
        groups
            .iter()
            .map(|g| (0..keys).chain(g.iter().copied()).collect())
            .collect()
    };
    for (n, cols) in parts.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        let h: Vec<&str> = cols.iter().map(|&i| headers[i]).collect();
        let a: Vec<Align> = cols.iter().map(|&i| aligns[i]).collect();
        let r: Vec<Vec<String>> = rows
            .iter()
            .map(|row| cols.iter().map(|&i| row[i].clone()).collect())
            .collect();
        let mut buf = Vec::new();
        write_table(&mut buf, &h, &a, &r)?;
        for l in String::from_utf8_lossy(&buf).lines() {
            writeln!(out, "{indent}{l}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_text("gpt-4o"), "gpt-4o");
        assert_eq!(escape_text("a\u{1b}[2Jb"), "a\\e[2Jb");
        assert_eq!(escape_text("x\ny\tz\r"), "x\\ny\\tz\\r");
        assert_eq!(escape_text("\u{7}\u{7f}\u{9b}"), "\\x07\\x7f\\x9b");
        assert_eq!(escape_text("a\u{202e}b\u{2066}"), "a\\u{202e}b\\u{2066}");
        assert_eq!(escape_text("naïve – ok"), "naïve – ok");
    }

    #[test]
    fn wrap_breaks_at_spaces_and_indents() {
        assert_eq!(
            wrap("aaa bbb ccc ddd", 8, 2),
            vec!["aaa bbb", "  ccc", "  ddd"]
        );
        assert_eq!(wrap("short", 80, 4), vec!["short"]);
        assert_eq!(wrap("", 80, 4), vec![""]);
    }

    #[test]
    fn a_wide_table_splits_into_groups() {
        let mut v = Vec::new();
        let rows = vec![vec!["k".to_string(), "1".into(), "2".into()]];
        write_table_fit(
            &mut v,
            "",
            8,
            &["key", "aaaa", "bbbb"],
            &[Align::Left, Align::Right, Align::Right],
            &rows,
            1,
            &[&[1], &[2]],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "key  aaaa\nk       1\n\nkey  bbbb\nk       2\n"
        );
    }
}
