//! Charts as inline SVG, rendered on the server.
//!
//! The VM may have no internet and the page must work without a build
//! step, so there is no chart library: three small renderers (vertical bars
//! over time, horizontal bars per item, lines over time). Marks are SVG
//! stretched to the plot box; all text (axes, legend, item labels) is HTML
//! at the body's font size, so it reads the same in a full-width and a
//! half-width card. Every label goes through [`esc`]; values are plotted as
//! `f64` (display only: the exact figures are in the tables next to the
//! charts). Each bar and point carries a `<title>` so hovering shows its
//! exact label and value. A chart with no data is the page's one empty
//! state ([`empty`]).

use std::fmt::Write;

use super::html::esc;

// The drawing's coordinate system (stretched to the plot box by CSS).
const W: f64 = 640.0;
const H: f64 = 200.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 4.0;

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

/// Position as a percentage of `total`, for the HTML labels over a plot.
fn pc(v: f64, total: f64) -> String {
    format!("{:.2}%", (v / total * 100.0).clamp(0.0, 100.0))
}

/// Open a chart: an HTML figure holding the SVG marks and HTML text.
///
/// The SVG is stretched to the plot box (`preserveAspectRatio="none"`, a
/// fixed CSS height), so marks fill any width while every label is HTML
/// positioned in percent of the plot: text keeps the body's font size at
/// any width instead of scaling with the drawing (at 7 px in a half-width
/// card, 18 px in a full-width one). Strokes use `non-scaling-stroke`.
fn open(out: &mut String, title: &str, kind: &str) {
    let _ = write!(
        out,
        r#"<figure class="chart {kind}" role="img" aria-label="{t}">"#,
        t = esc(title)
    );
}

fn plot_open(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<div class="plot"><svg viewBox="0 0 {W} {H}" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = esc(title)
    );
}

/// Horizontal grid lines for `[0, max]`; their labels are HTML (see
/// [`y_labels`]).
fn grid(out: &mut String) {
    for i in 0..=4 {
        let y = TOP + (H - TOP - BOTTOM) * (1.0 - f64::from(i) / 4.0);
        let _ = write!(
            out,
            r#"<line class="grid" x1="0" y1="{y:.1}" x2="{W}" y2="{y:.1}" vector-effect="non-scaling-stroke"/>"#,
        );
    }
}

fn y_labels(out: &mut String, max: f64, unit: &str) {
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = TOP + (H - TOP - BOTTOM) * (1.0 - f64::from(i) / 4.0);
        let _ = write!(
            out,
            r#"<span class="axis y" style="top:{}">{}</span>"#,
            pc(y, H),
            esc(&format!("{}{unit}", short(v)))
        );
    }
}

/// X labels under `n` slots, thinned to at most 8 so they never overlap
/// at body size in a half-width card.
fn x_labels(out: &mut String, labels: &[String], slot: f64) {
    let n = labels.len();
    let step = n.div_ceil(8).max(1);
    for (i, l) in labels.iter().enumerate() {
        if i % step != 0 {
            continue;
        }
        let x = slot * (i as f64 + 0.5);
        let _ = write!(
            out,
            r#"<span class="axis x" style="left:{}">{}</span>"#,
            pc(x, W),
            esc(l)
        );
    }
}

/// The one empty state of every section.
pub fn empty(what: &str) -> String {
    format!("<p class=\"empty\">{}</p>", esc(what))
}

/// Vertical bars, one per time bucket: `labels[i]` under `values[i]`;
/// `tips[i]` is the hover text. All zero: the empty state `none`.
pub fn bars(
    title: &str,
    labels: &[String],
    values: &[f64],
    tips: &[String],
    unit: &str,
    none: &str,
) -> String {
    if values.iter().all(|v| *v <= 0.0) {
        return empty(none);
    }
    let mut out = String::with_capacity(512 + 200 * values.len());
    open(&mut out, title, "bars");
    plot_open(&mut out, title);
    let max = nice_max(values.iter().cloned().fold(0.0, f64::max));
    grid(&mut out);
    let n = values.len().max(1);
    let slot = W / n as f64;
    let plot_h = H - TOP - BOTTOM;
    for (i, v) in values.iter().enumerate() {
        let h = (v.max(0.0) / max * plot_h).max(if *v > 0.0 { 1.0 } else { 0.0 });
        let x = slot * i as f64 + slot * 0.15;
        let _ = write!(
            out,
            r#"<rect class="bar" x="{x:.2}" y="{y:.1}" width="{w:.2}" height="{h:.1}"><title>{tip}</title></rect>"#,
            y = TOP + plot_h - h,
            w = slot * 0.7,
            tip = esc(tips.get(i).map(String::as_str).unwrap_or(""))
        );
    }
    out.push_str("</svg>");
    y_labels(&mut out, max, unit);
    x_labels(&mut out, labels, slot);
    out.push_str("</div></figure>");
    out
}

/// Horizontal bars, one per item: `(label, value, shown value)`, as HTML
/// (a label that wraps instead of being cut, a bar, the value). No items:
/// the empty state `none`.
pub fn hbars(title: &str, items: &[(String, f64, String)], none: &str) -> String {
    if items.is_empty() {
        return empty(none);
    }
    let mut out = String::new();
    open(&mut out, title, "hbars");
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max);
    for (label, v, shown) in items {
        let w = if max > 0.0 {
            (v / max * 100.0).max(0.5)
        } else {
            0.0
        };
        let _ = write!(
            out,
            r#"<div class="hbar"><span class="label">{l}</span><span class="track"><span class="bar" style="width:{w:.2}%" title="{l}: {s}"></span></span><span class="value">{s}</span></div>"#,
            l = esc(label),
            s = esc(shown)
        );
    }
    out.push_str("</figure>");
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
/// for percentages), else it fits the data. No value at all: the empty
/// state `none`.
pub fn lines(
    title: &str,
    labels: &[String],
    series: &[Line],
    max: Option<f64>,
    unit: &str,
    none: &str,
) -> String {
    if series.iter().all(|s| s.values.iter().all(Option::is_none)) {
        return empty(none);
    }
    let mut out = String::new();
    open(&mut out, title, "lines");
    out.push_str("<div class=\"legend\">");
    for s in series {
        let _ = write!(
            out,
            r#"<span class="key"><span class="swatch {c}"></span>{n}</span>"#,
            c = esc(s.class),
            n = esc(s.name)
        );
    }
    out.push_str("</div>");
    plot_open(&mut out, title);
    let data_max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .cloned()
        .fold(0.0, f64::max);
    let max = max.unwrap_or_else(|| nice_max(data_max));
    grid(&mut out);
    let n = labels.len().max(1);
    let slot = W / n as f64;
    let plot_h = H - TOP - BOTTOM;
    let xy = |i: usize, v: f64| {
        (
            slot * (i as f64 + 0.5),
            TOP + plot_h * (1.0 - (v / max).clamp(0.0, 1.0)),
        )
    };
    for s in series {
        // One polyline per run of known values.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, out: &mut String| {
            if run.len() > 1 {
                let pts: Vec<String> = run.iter().map(|(x, y)| format!("{x:.2},{y:.1}")).collect();
                let _ = write!(
                    out,
                    r#"<polyline class="line {c}" points="{p}" vector-effect="non-scaling-stroke"/>"#,
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
                    // A zero-length line with a round, non-scaling cap: a
                    // round dot whatever the plot's aspect ratio.
                    let _ = write!(
                        out,
                        r#"<line class="dot {c}" x1="{x:.2}" y1="{y:.1}" x2="{x:.2}" y2="{y:.1}" vector-effect="non-scaling-stroke"><title>{n} {l}: {v}{unit}</title></line>"#,
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
    out.push_str("</svg>");
    y_labels(&mut out, max, unit);
    x_labels(&mut out, labels, slot);
    out.push_str("</div></figure>");
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
        let s = bars(
            "<b>",
            &["<script>".into()],
            &[1.0],
            &["a&b".into()],
            "",
            "none",
        );
        assert!(!s.contains("<script>") && !s.contains("<b>"));
        assert!(s.contains("&lt;script&gt;") && s.contains("a&amp;b"));
        let s = hbars("t", &[("<i>".into(), 1.0, "1".into())], "none");
        assert!(s.contains("&lt;i&gt;") && !s.contains("<i>"));
        assert_eq!(
            hbars("t", &[], "<none>"),
            "<p class=\"empty\">&lt;none&gt;</p>"
        );
        assert_eq!(
            bars("t", &["a".into()], &[0.0], &[String::new()], "", "none"),
            empty("none")
        );
    }
}
