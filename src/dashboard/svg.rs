//! Charts as inline SVG, rendered on the server.
//!
//! The VM may have no internet and the page must work without a build
//! step, so there is no chart library: three small renderers (vertical bars
//! over time, horizontal bars per item, lines over time) that emit SVG
//! elements sized by a `viewBox` and scaled by CSS. Every label goes through
//! [`esc`]; values are plotted as `f64` (display only: the exact figures are
//! in the tables next to the charts). Each bar and point carries a
//! `<title>` so hovering shows its exact label and value.

use std::fmt::Write;

use super::html::esc;

const W: f64 = 640.0;
const H: f64 = 200.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// A "nice" axis maximum at or above `v` (1, 2 or 5 times a power of ten).
fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// A short axis label: `1.5k`, `2M`, `0.25`.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x == x.trunc() {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    format!("{s}{suffix}")
}

fn open(out: &mut String, title: &str, kind: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart {kind}" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = esc(title)
    );
}

/// Horizontal grid lines with y labels for `[0, max]`.
fn grid(out: &mut String, max: f64, unit: &str) {
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = TOP + (H - TOP - BOTTOM) * (1.0 - f64::from(i) / 4.0);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{x2}" y2="{y:.1}"/><text class="axis" x="{lx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            x2 = W - RIGHT,
            lx = LEFT - 4.0,
            ty = y + 4.0,
            label = esc(&format!("{}{unit}", short(v)))
        );
    }
}

/// X labels under `n` slots, thinned to at most about 12.
fn x_labels(out: &mut String, labels: &[String], slot: f64) {
    let n = labels.len();
    let step = n.div_ceil(12).max(1);
    for (i, l) in labels.iter().enumerate() {
        if i % step != 0 {
            continue;
        }
        let x = LEFT + slot * (i as f64 + 0.5);
        let _ = write!(
            out,
            r#"<text class="axis" x="{x:.1}" y="{y}" text-anchor="middle">{l}</text>"#,
            y = H - 8.0,
            l = esc(l)
        );
    }
}

fn empty(out: &mut String) {
    let _ = write!(
        out,
        r#"<text class="empty" x="{x}" y="{y}" text-anchor="middle">no data in this period</text>"#,
        x = W / 2.0,
        y = H / 2.0
    );
}

/// Vertical bars, one per time bucket: `labels[i]` under `values[i]`;
/// `tips[i]` is the hover text.
pub fn bars(title: &str, labels: &[String], values: &[f64], tips: &[String], unit: &str) -> String {
    let mut out = String::with_capacity(256 + 160 * values.len());
    open(&mut out, title, "bars");
    let max = nice_max(values.iter().cloned().fold(0.0, f64::max));
    grid(&mut out, max, unit);
    if values.iter().all(|v| *v <= 0.0) {
        empty(&mut out);
    }
    let n = values.len().max(1);
    let slot = (W - LEFT - RIGHT) / n as f64;
    let plot_h = H - TOP - BOTTOM;
    for (i, v) in values.iter().enumerate() {
        let h = (v.max(0.0) / max * plot_h).max(if *v > 0.0 { 1.0 } else { 0.0 });
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let _ = write!(
            out,
            r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}"><title>{tip}</title></rect>"#,
            y = TOP + plot_h - h,
            w = slot * 0.7,
            tip = esc(tips.get(i).map(String::as_str).unwrap_or(""))
        );
    }
    x_labels(&mut out, labels, slot);
    out.push_str("</svg>");
    out
}

/// Horizontal bars, one per item: `(label, value, shown value)`.
pub fn hbars(title: &str, items: &[(String, f64, String)]) -> String {
    let row = 26.0;
    let h = (items.len().max(1) as f64) * row + 8.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart hbars" viewBox="0 0 {W} {h}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = esc(title)
    );
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max);
    if items.is_empty() {
        let _ = write!(
            out,
            r#"<text class="empty" x="{x}" y="20" text-anchor="middle">no data in this period</text>"#,
            x = W / 2.0
        );
    }
    let label_w = 220.0;
    let bar_w = W - label_w - 110.0;
    for (i, (label, v, shown)) in items.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let w = if max > 0.0 {
            (v / max * bar_w).max(1.0)
        } else {
            0.0
        };
        let _ = write!(
            out,
            r#"<text class="label" x="{lx}" y="{ty:.1}" text-anchor="end">{l}</text><rect class="bar" x="{label_w}" y="{y:.1}" width="{w:.1}" height="{bh}"><title>{l}: {s}</title></rect><text class="value" x="{vx:.1}" y="{ty:.1}">{s}</text>"#,
            lx = label_w - 6.0,
            ty = y + 14.0,
            l = esc(label),
            bh = row - 8.0,
            vx = label_w + w + 6.0,
            s = esc(shown)
        );
    }
    out.push_str("</svg>");
    out
}

/// One line of a line chart.
pub struct Line<'a> {
    /// Legend name.
    pub name: &'a str,
    /// CSS class (sets the colour).
    pub class: &'a str,
    /// One value per slot; `None` leaves a gap.
    pub values: Vec<Option<f64>>,
}

/// Lines over time slots labelled `labels`; `max` fixes the y axis (100
/// for percentages), else it fits the data.
pub fn lines(
    title: &str,
    labels: &[String],
    series: &[Line],
    max: Option<f64>,
    unit: &str,
) -> String {
    let mut out = String::new();
    open(&mut out, title, "lines");
    let data_max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .cloned()
        .fold(0.0, f64::max);
    let max = max.unwrap_or_else(|| nice_max(data_max));
    grid(&mut out, max, unit);
    if series.iter().all(|s| s.values.iter().all(Option::is_none)) {
        empty(&mut out);
    }
    let n = labels.len().max(1);
    let slot = (W - LEFT - RIGHT) / n as f64;
    let plot_h = H - TOP - BOTTOM;
    let xy = |i: usize, v: f64| {
        (
            LEFT + slot * (i as f64 + 0.5),
            TOP + plot_h * (1.0 - (v / max).clamp(0.0, 1.0)),
        )
    };
    for s in series {
        // One polyline per run of known values.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, out: &mut String| {
            if run.len() > 1 {
                let pts: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(
                    out,
                    r#"<polyline class="line {c}" points="{p}"/>"#,
                    c = esc(s.class),
                    p = pts.join(" ")
                );
            }
            run.clear();
        };
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let (x, y) = xy(i, *v);
                    run.push((x, y));
                    let _ = write!(
                        out,
                        r#"<circle class="dot {c}" cx="{x:.1}" cy="{y:.1}" r="2"><title>{n} {l}: {v}{unit}</title></circle>"#,
                        c = esc(s.class),
                        n = esc(s.name),
                        l = esc(labels.get(i).map(String::as_str).unwrap_or("")),
                        v = esc(&crate::output::fixed(*v, 1)),
                        unit = esc(unit)
                    );
                }
                None => flush(&mut run, &mut out),
            }
        }
        flush(&mut run, &mut out);
    }
    x_labels(&mut out, labels, slot);
    // Legend, top right.
    for (i, s) in series.iter().enumerate() {
        let x = W - RIGHT - 110.0 * (series.len() - i) as f64;
        let _ = write!(
            out,
            r#"<rect class="swatch {c}" x="{x:.1}" y="2" width="10" height="10"/><text class="axis" x="{tx:.1}" y="11">{n}</text>"#,
            c = esc(s.class),
            tx = x + 14.0,
            n = esc(s.name)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(0.012), 0.02);
        assert_eq!(nice_max(150.0), 200.0);
        assert_eq!(short(1500.0), "1.50k");
        assert_eq!(short(2_000_000.0), "2M");
        assert_eq!(short(0.25), "0.25");
    }

    #[test]
    fn labels_are_escaped() {
        let s = bars("<b>", &["<script>".into()], &[1.0], &["a&b".into()], "");
        assert!(!s.contains("<script>") && !s.contains("<b>"));
        assert!(s.contains("&lt;script&gt;") && s.contains("a&amp;b"));
        let s = hbars("t", &[("<i>".into(), 1.0, "1".into())]);
        assert!(s.contains("&lt;i&gt;") && !s.contains("<i>"));
    }
}
