//! Line charts drawn on the server as inline SVG: no script, no library, readable without
//! colour (one series per chart, its points marked), and with a text alternative
//! (`role="img"`, `<title>` and `<desc>`). Every text that reaches the SVG is escaped here;
//! the page marks only the finished SVG safe.

use std::fmt::Write as _;

/// Drawing area and margins, in SVG units (the SVG scales to its box).
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 190.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;
/// Time labels along the x axis (this many intervals).
const X_TICKS: i64 = 4;
/// Up to this many points each get a dot; past it the line alone (a day of minutes would be
/// a smear of 1,440 dots and a quarter of a megabyte more page).
pub const MAX_MARKED: usize = 240;

/// One chart: a series of `(unix ms, value)` over `[from_ms, to_ms]`.
pub struct Chart<'a> {
    /// Unique in the page (the id of the title and description).
    pub id: &'a str,
    pub title: &'a str,
    /// What the chart shows, in words, for screen readers.
    pub summary: &'a str,
    pub from_ms: i64,
    pub to_ms: i64,
    pub points: &'a [(i64, f64)],
    /// The axis's top for the highest value ([`nice_ceiling`], [`nice_duration`], ...).
    pub top: fn(f64) -> f64,
    /// A value as the axis shows it (`12`, `4 min`).
    pub value_label: &'a dyn Fn(f64) -> String,
    /// A time as the axis shows it (`14:00`).
    pub time_label: &'a dyn Fn(i64) -> String,
}

impl std::fmt::Debug for Chart<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chart")
            .field("id", &self.id)
            .field("from_ms", &self.from_ms)
            .field("to_ms", &self.to_ms)
            .field("n_points", &self.points.len())
            .finish_non_exhaustive()
    }
}

/// A time in the appliance's time zone (the site's), as `format` (strftime) says.
pub fn clock(ms: i64, format: &str) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime(format)
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// Text for SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above `max` (at least 1): the y axis's top.
pub fn nice_ceiling(max: f64) -> f64 {
    // NaN and everything up to 1 draw on 0..1.
    if max.is_nan() || max <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// The axis's top for a duration in seconds: a minute, two, five, ten, a quarter or half an
/// hour, hours, days (so the half-way label is a round duration too).
pub fn nice_duration(max_secs: f64) -> f64 {
    const STEPS: &[f64] = &[
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0,
        86400.0, 172800.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| *s >= max_secs || max_secs.is_nan())
        .unwrap_or_else(|| nice_ceiling(max_secs))
}

impl Chart<'_> {
    /// Where a point lands: x from the time within the window, y from the value on
    /// `[0, top]` (clamped to the drawing area).
    pub fn position(&self, at_ms: i64, value: f64, top: f64) -> (f64, f64) {
        let span = (self.to_ms - self.from_ms).max(1) as f64;
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let fx = ((at_ms - self.from_ms) as f64 / span).clamp(0.0, 1.0);
        let fy = (value / top).clamp(0.0, 1.0);
        (LEFT + fx * plot_w, TOP + plot_h - fy * plot_h)
    }

    /// The SVG element.
    pub fn svg(&self) -> String {
        let max = self.points.iter().map(|p| p.1).fold(0.0, f64::max);
        let top = (self.top)(max);
        let id = escape(self.id);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" aria-labelledby="{id}-title {id}-desc" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
            escape(self.title),
            escape(self.summary)
        );
        // Axes: a grid line and a label at 0, half and the top; time labels below.
        let bottom = HEIGHT - BOTTOM;
        for fraction in [0.0, 0.5, 1.0] {
            let (_, y) = self.position(self.from_ms, top * fraction, top);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 5.0,
                escape(&(self.value_label)(top * fraction))
            );
        }
        for k in 0..=X_TICKS {
            let at = self.from_ms + (self.to_ms - self.from_ms) * k / X_TICKS;
            let (x, _) = self.position(at, 0.0, top);
            let anchor = match k {
                0 => "start",
                X_TICKS => "end",
                _ => "middle",
            };
            let _ = write!(
                s,
                r#"<line class="tick" x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{:.1}"/><text class="axis" x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
                bottom + 5.0,
                HEIGHT - 8.0,
                escape(&(self.time_label)(at))
            );
        }
        let _ = write!(
            s,
            r#"<line class="axis-line" x1="{LEFT}" y1="{bottom}" x2="{:.1}" y2="{bottom}"/>"#,
            WIDTH - RIGHT
        );
        let placed: Vec<(f64, f64)> = self
            .points
            .iter()
            .map(|&(at, v)| self.position(at, v, top))
            .collect();
        if placed.len() > 1 {
            s.push_str(r#"<polyline class="series" fill="none" points=""#);
            for (i, (x, y)) in placed.iter().enumerate() {
                let sep = if i == 0 { "" } else { " " };
                let _ = write!(s, "{sep}{x:.1},{y:.1}");
            }
            s.push_str(r#""/>"#);
        }
        if placed.len() <= MAX_MARKED {
            for (x, y) in &placed {
                let _ = write!(
                    s,
                    r#"<circle class="point" cx="{x:.1}" cy="{y:.1}" r="2.5"/>"#
                );
            }
        }
        s.push_str("</svg>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart<'a>(points: &'a [(i64, f64)], title: &'a str) -> Chart<'a> {
        Chart {
            id: "c",
            title,
            summary: "a <summary> & more",
            from_ms: 0,
            to_ms: 1000,
            points,
            top: nice_ceiling,
            value_label: &|v| format!("{v}"),
            time_label: &|t| format!("t{t}"),
        }
    }

    /// The numbers of `attr="..."` for every element named `tag`.
    fn attrs(svg: &str, tag: &str, attr: &str) -> Vec<f64> {
        svg.split(&format!("<{tag} "))
            .skip(1)
            .filter_map(|rest| {
                let at = rest.find(&format!(" {attr}=\""))? + attr.len() + 3;
                let end = rest[at..].find('"')?;
                rest[at..at + end].parse().ok()
            })
            .collect()
    }

    #[test]
    fn points_land_where_their_time_and_value_say() {
        let points = [(0, 0.0), (500, 5.0), (1000, 10.0)];
        let svg = chart(&points, "t").svg();
        // x: 0 → LEFT, 500 → middle, 1000 → right edge; y: 0 → bottom, 10 (the top) → TOP.
        let xs = attrs(&svg, "circle", "cx");
        let ys = attrs(&svg, "circle", "cy");
        let mid = LEFT + (WIDTH - LEFT - RIGHT) / 2.0;
        assert_eq!(xs, vec![LEFT, mid, WIDTH - RIGHT]);
        assert_eq!(
            ys,
            vec![HEIGHT - BOTTOM, (TOP + HEIGHT - BOTTOM) / 2.0, TOP]
        );
        assert!(svg.contains(&format!(
            r#"points="{LEFT:.1},{:.1} {mid:.1},{:.1} {:.1},{TOP:.1}""#,
            HEIGHT - BOTTOM,
            (TOP + HEIGHT - BOTTOM) / 2.0,
            WIDTH - RIGHT
        )));
        // The axis: 0, 5, 10 and five time labels from t0 to t1000.
        for label in [">0<", ">5<", ">10<", ">t0<", ">t250<", ">t500<", ">t1000<"] {
            assert!(svg.contains(label), "{label} in {svg}");
        }
    }

    #[test]
    fn an_empty_series_draws_axes_only_and_one_point_draws_a_dot() {
        let svg = chart(&[], "t").svg();
        assert!(
            !svg.contains("<circle") && !svg.contains("<polyline"),
            "{svg}"
        );
        assert!(
            svg.contains(">t0<") && svg.contains(">1<"),
            "axes with a top of 1"
        );
        let svg = chart(&[(250, 3.0)], "t").svg();
        assert_eq!(attrs(&svg, "circle", "cx").len(), 1);
        assert!(!svg.contains("<polyline"), "no line from one point");
    }

    #[test]
    fn a_long_series_is_a_line_without_dots() {
        let points: Vec<(i64, f64)> = (0..1440).map(|m| (m * 1000 / 1440, m as f64)).collect();
        let svg = chart(&points, "t").svg();
        assert!(!svg.contains("<circle"));
        let line = svg.split(r#"points=""#).nth(1).unwrap();
        let line = &line[..line.find('"').unwrap()];
        assert_eq!(line.split(' ').count(), 1440);
    }

    #[test]
    fn values_outside_the_window_stay_inside_the_drawing() {
        let svg = chart(&[(-500, -3.0), (5000, 2.0)], "t").svg();
        for x in attrs(&svg, "circle", "cx") {
            assert!((LEFT..=WIDTH - RIGHT).contains(&x), "{x}");
        }
        for y in attrs(&svg, "circle", "cy") {
            assert!((TOP..=HEIGHT - BOTTOM).contains(&y), "{y}");
        }
    }

    #[test]
    fn every_text_is_escaped_and_the_svg_has_a_text_alternative() {
        let svg = chart(&[(0, 1.0)], "Queue <script>alert(1)</script> & \"x\"").svg();
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("Queue &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"));
        assert!(svg.contains("a &lt;summary&gt; &amp; more"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains(r#"aria-labelledby="c-title c-desc""#));
        assert_eq!(escape("'"), "&#39;");
    }

    #[test]
    fn the_axis_top_is_a_round_number_at_or_above_the_highest_value() {
        for (max, top) in [
            (0.0, 1.0),
            (0.4, 1.0),
            (1.0, 1.0),
            (3.0, 5.0),
            (12.0, 20.0),
            (21.0, 25.0),
            (99.0, 100.0),
            (3600.0, 5000.0),
            (f64::NAN, 1.0),
        ] {
            assert_eq!(nice_ceiling(max), top, "{max}");
        }
        for (max, top) in [(0.0, 60.0), (59.0, 60.0), (61.0, 120.0), (3000.0, 3600.0)] {
            assert_eq!(nice_duration(max), top, "{max}");
        }
        assert_eq!(
            nice_duration(210_000.0),
            250_000.0,
            "past two days: round numbers"
        );
    }
}
