//! Small inline SVG charts (no scripts, no network): lines over time and the bars of a timeline.

/// Width and height of a chart's drawing area in pixels.
pub const W: f64 = 560.0;
/// Height of a line chart.
pub const H: f64 = 120.0;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One line of a chart: its label, its colour and its points (x, y).
pub type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// One row of a timeline: its label and its bars (start, end, colour).
pub type Row<'a> = (String, Vec<(f64, f64, &'a str)>);

/// A line chart of `series` (label, colour, points (x, y)), x (seconds) from 0 to `x_max`, y from 0 to `y_max`.
pub fn lines(series: &[Series<'_>], x_max: f64, y_max: f64) -> String {
    let (x_max, y_max) = (x_max.max(1e-9), y_max.max(1e-9));
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"-44 -8 {} {}\" width=\"{}\" height=\"{}\" role=\"img\">",
        W + 54.0,
        H + 46.0,
        W + 54.0,
        H + 46.0
    );
    s += &format!("<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" class=\"plot\"/>");
    for f in [0.0, 0.5, 1.0] {
        let y = H - f * H;
        s += &format!(
            "<line x1=\"0\" x2=\"{W}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/><text x=\"-6\" y=\"{:.1}\" \
             class=\"axis\" text-anchor=\"end\">{}</text>",
            y + 4.0,
            fmt_num(f * y_max)
        );
    }
    s += &format!(
        "<text x=\"0\" y=\"{:.1}\" class=\"axis\">0 s</text><text x=\"{W}\" y=\"{:.1}\" class=\"axis\" \
         text-anchor=\"end\">{} s</text>",
        H + 16.0,
        H + 16.0,
        fmt_num(x_max)
    );
    for (i, (label, colour, pts)) in series.iter().enumerate() {
        let points: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x / x_max * W, H - (y / y_max).clamp(0.0, 1.0) * H))
            .collect();
        s += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{:.1}\" \
             class=\"legend\" fill=\"{colour}\">{}</text>",
            points.join(" "),
            8.0 + 130.0 * i as f64,
            H + 30.0,
            esc(label)
        );
    }
    s.push_str("</svg>");
    s
}

/// A timeline: one row per label, each with bars (start, end) in seconds over `0..x_max`.
pub fn bars(rows: &[Row<'_>], x_max: f64) -> String {
    let x_max = x_max.max(1e-9);
    let row_h = 18.0;
    let height = row_h * rows.len() as f64 + 20.0;
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"-160 -4 {} {height}\" width=\"{}\" height=\"{height}\" role=\"img\">",
        W + 170.0,
        W + 170.0
    );
    for (i, (label, spans)) in rows.iter().enumerate() {
        let y = i as f64 * row_h;
        s += &format!("<text x=\"-6\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>", y + 12.0, esc(label));
        for (a, b, colour) in spans {
            let (x0, x1) = (a / x_max * W, b / x_max * W);
            s += &format!(
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
                y + 2.0,
                (x1 - x0).max(1.0),
                row_h - 4.0
            );
        }
    }
    let y = row_h * rows.len() as f64 + 12.0;
    s += &format!(
        "<text x=\"0\" y=\"{y:.1}\" class=\"axis\">0 s</text><text x=\"{W}\" y=\"{y:.1}\" class=\"axis\" \
         text-anchor=\"end\">{} s</text></svg>",
        fmt_num(x_max)
    );
    s
}

/// A number short enough for an axis.
pub fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
