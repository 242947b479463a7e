//! Charts as inline SVG: a few shapes (bars, cells, a polyline) with their labels, sized by a
//! viewBox so they scale to the page and print sharp. Hand-made rather than a plotting crate:
//! five chart kinds of a few dozen lines each, no fonts to embed, no JavaScript, and the markup
//! stays readable in a test.

/// Text safe inside HTML and SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An integer with thousands separators.
pub fn count(n: f64) -> String {
    let s = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

pub fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

const BLUE: &str = "#2f6db5";
const ORANGE: &str = "#e08a2c";

fn open(width: f64, height: f64, title: &str) -> String {
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" style=\"max-width:{}px\" role=\"img\" aria-label=\"{t}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>",
        (width * 1.25).round(),
        t = escape(title)
    )
}

/// A bar chart's baseline and the value its tallest bar stands for, top left.
fn base_axis(w: f64, h: f64, left: f64, bottom: f64, max: f64) -> String {
    format!(
        "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" class=\"axis\"/><text x=\"{left}\" y=\"14\" class=\"label\">{}</text>",
        w - 10.0,
        count(max),
        y = h - bottom
    )
}

/// Horizontal bars, one per item, the value and a note written after each bar.
pub fn bars(title: &str, items: &[(String, f64, String)]) -> String {
    // Room for the longest label (about 6.5 px a character at 11 px).
    let longest = items.iter().map(|i| i.0.chars().count()).max().unwrap_or(0);
    let (label_w, bar_w, row_h) = ((longest as f64 * 6.5 + 12.0).max(110.0), 330.0, 22.0);
    let height = row_h * items.len() as f64 + 10.0;
    let max = items.iter().map(|i| i.1).fold(0.0_f64, f64::max).max(1e-12);
    let mut svg = open(label_w + bar_w + 190.0, height, title);
    for (k, (label, value, note)) in items.iter().enumerate() {
        let y = 5.0 + k as f64 * row_h;
        let w = (value / max * bar_w).max(if *value > 0.0 { 1.0 } else { 0.0 });
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"label\">{}</text><rect x=\"{label_w}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{BLUE}\"/><text x=\"{}\" y=\"{}\" class=\"value\">{}</text>",
            label_w - 6.0,
            y + 15.0,
            escape(label),
            y + 3.0,
            row_h - 6.0,
            label_w + w + 5.0,
            y + 15.0,
            escape(note)
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Vertical bars over labelled bins (a histogram), with the axis labels under the first, middle
/// and last bins.
pub fn histogram(title: &str, bins: &[(String, f64)], x_label: &str) -> String {
    let (w, h, left, bottom) = (620.0, 220.0, 50.0, 40.0);
    let max = bins.iter().map(|b| b.1).fold(0.0_f64, f64::max).max(1e-12);
    let bw = (w - left - 10.0) / bins.len().max(1) as f64;
    let mut svg = open(w, h, title);
    svg.push_str(&base_axis(w, h, left, bottom, max));
    for (k, (label, v)) in bins.iter().enumerate() {
        let bh = v / max * (h - bottom - 20.0);
        let x = left + k as f64 * bw;
        svg.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{BLUE}\"><title>{}: {}</title></rect>",
            x + 1.0,
            h - bottom - bh,
            (bw - 2.0).max(1.0),
            escape(label),
            count(*v)
        ));
        if k == 0 || k + 1 == bins.len() || k == bins.len() / 2 {
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{}</text>",
                x + bw / 2.0,
                h - bottom + 15.0,
                escape(label)
            ));
        }
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{}</text></svg>",
        w / 2.0,
        h - 5.0,
        escape(x_label)
    ));
    svg
}

/// Two series side by side per category (e.g. predicted and actual), with a legend.
pub fn paired_bars(
    title: &str,
    categories: &[String],
    a: (&str, &[f64]),
    b: (&str, &[f64]),
) -> String {
    let (w, h, left, bottom) = (620.0, 240.0, 50.0, 45.0);
    let max =
        a.1.iter()
            .chain(b.1)
            .copied()
            .fold(0.0_f64, f64::max)
            .max(1e-12);
    let gw = (w - left - 10.0) / categories.len().max(1) as f64;
    let bw = (gw - 6.0) / 2.0;
    let mut svg = open(w, h, title);
    svg.push_str(&base_axis(w, h, left, bottom, max));
    for (k, c) in categories.iter().enumerate() {
        let x = left + k as f64 * gw + 3.0;
        for (j, (series, color)) in [(a, BLUE), (b, ORANGE)].iter().enumerate() {
            let v = series.1.get(k).copied().unwrap_or(0.0);
            let bh = v / max * (h - bottom - 20.0);
            svg.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{} {}: {:.1}</title></rect>",
                x + j as f64 * bw,
                h - bottom - bh,
                escape(c),
                escape(series.0),
                v
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{}</text>",
            x + bw,
            h - bottom + 15.0,
            escape(c)
        ));
    }
    svg.push_str(&format!(
        "<rect x=\"{left}\" y=\"{y}\" width=\"10\" height=\"10\" fill=\"{BLUE}\"/><text x=\"{}\" y=\"{}\" class=\"label\">{}</text><rect x=\"{}\" y=\"{y}\" width=\"10\" height=\"10\" fill=\"{ORANGE}\"/><text x=\"{}\" y=\"{}\" class=\"label\">{}</text></svg>",
        left + 14.0,
        h - 11.0,
        escape(a.0),
        left + 140.0,
        left + 154.0,
        h - 11.0,
        escape(b.0),
        y = h - 20.0
    ));
    svg
}

/// A grid of cells shaded by value, each with its value written in it.
pub fn heatmap(
    title: &str,
    rows: &[String],
    cols: &[String],
    values: &[Vec<f64>],
    row_label: &str,
    col_label: &str,
) -> String {
    let (cell, left, top) = (56.0, 70.0, 30.0);
    let max = values
        .iter()
        .flatten()
        .copied()
        .fold(0.0_f64, f64::max)
        .max(1e-12);
    let mut svg = open(
        left + cell * cols.len() as f64 + 10.0,
        top + cell * rows.len() as f64 + 40.0,
        title,
    );
    for (i, r) in rows.iter().enumerate() {
        for (j, c) in cols.iter().enumerate() {
            let v = values[i][j];
            let shade = 0.08 + 0.92 * v / max;
            let (x, y) = (left + j as f64 * cell, top + i as f64 * cell);
            svg.push_str(&format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"{BLUE}\" fill-opacity=\"{shade:.3}\"><title>{row_label} {} × {col_label} {}: {}</title></rect><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"{}\">{}</text>",
                cell - 2.0,
                cell - 2.0,
                escape(r),
                escape(c),
                count(v),
                x + cell / 2.0,
                y + cell / 2.0 + 4.0,
                if shade > 0.55 { "value light" } else { "value" },
                count(v)
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"label\">{}</text>",
            left - 6.0,
            top + i as f64 * cell + cell / 2.0 + 4.0,
            escape(r)
        ));
    }
    for (j, c) in cols.iter().enumerate() {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{}</text>",
            left + j as f64 * cell + cell / 2.0,
            top - 8.0,
            escape(c)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{} (columns) × {} (rows)</text></svg>",
        left + cell * cols.len() as f64 / 2.0,
        top + cell * rows.len() as f64 + 25.0,
        escape(col_label),
        escape(row_label)
    ));
    svg
}

/// A curve through `points` (x and y in [0, 1]) over a unit square, with the diagonal and a
/// marked point.
pub fn curve(
    title: &str,
    points: &[(f64, f64)],
    mark: Option<(f64, f64, String)>,
    x_label: &str,
    y_label: &str,
) -> String {
    let (size, left, bottom) = (260.0, 50.0, 40.0);
    let (w, h) = (left + size + 20.0, size + bottom + 10.0);
    let px = |x: f64| left + x * size;
    let py = |y: f64| 10.0 + (1.0 - y) * size;
    let mut svg = open(w, h, title);
    svg.push_str(&format!(
        "<rect x=\"{left}\" y=\"10\" width=\"{size}\" height=\"{size}\" class=\"frame\"/><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\" stroke-dasharray=\"4 3\"/>",
        px(0.0),
        py(0.0),
        px(1.0),
        py(1.0)
    ));
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
        .collect();
    svg.push_str(&format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{BLUE}\" stroke-width=\"2\"/>",
        path.join(" ")
    ));
    if let Some((x, y, label)) = mark {
        svg.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{ORANGE}\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"label\">{}</text>",
            px(x),
            py(y),
            px(x) + 8.0,
            py(y) + 14.0,
            escape(&label)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{}</text><text x=\"12\" y=\"{}\" class=\"label\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">{}</text></svg>",
        px(0.5),
        h - 8.0,
        escape(x_label),
        py(0.5),
        py(0.5),
        escape(y_label)
    ));
    svg
}

/// A line through `(label, value)` points in order (e.g. one per run date).
pub fn line(title: &str, points: &[(String, f64)]) -> String {
    let (w, h, left, bottom) = (620.0, 200.0, 60.0, 40.0);
    let max = points
        .iter()
        .map(|p| p.1)
        .fold(0.0_f64, f64::max)
        .max(1e-12);
    // The last point's label (a date) needs room on the right.
    let step = (w - left - 60.0) / (points.len().max(2) - 1) as f64;
    let mut svg = open(w, h, title);
    let xy: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .map(|(k, p)| {
            (
                left + k as f64 * step,
                10.0 + (1.0 - p.1 / max) * (h - bottom - 20.0),
            )
        })
        .collect();
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" class=\"axis\"/><text x=\"4\" y=\"14\" class=\"label\">{}</text><polyline points=\"{}\" fill=\"none\" stroke=\"{BLUE}\" stroke-width=\"2\"/>",
        w - 20.0,
        count(max),
        xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" "),
        y = h - bottom
    ));
    for ((x, y), (label, v)) in xy.iter().zip(points) {
        svg.push_str(&format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{BLUE}\"><title>{}: {}</title></circle><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{}</text>",
            escape(label),
            count(*v),
            h - bottom + 15.0,
            escape(label)
        ));
    }
    svg.push_str("</svg>");
    svg
}
