//! A line chart as an SVG file: a few series of points over a base-2
//! logarithmic x axis and a linear y axis from zero, with a legend.

use std::fmt::Write;

/// One line of a chart.
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its colour (any SVG colour).
    pub colour: &'static str,
    /// Its points, x ascending.
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// The chart of `series` as an SVG document.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let points = series.iter().flat_map(|line| line.points.iter());
    let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, 0.0f64);
    for (x, y) in points {
        x_min = x_min.min(x.max(1.0).log2());
        x_max = x_max.max(x.max(1.0).log2());
        y_max = y_max.max(*y);
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let y_max = nice_ceiling(y_max.max(1.0));
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let at_x = |x: f64| LEFT + (x.max(1.0).log2() - x_min) / (x_max - x_min) * plot_width;
    let at_y = |y: f64| TOP + plot_height - y / y_max * plot_height;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="22" font-size="15">{}</text>"#,
        escape(title)
    );
    for step in 0..=4 {
        let y = y_max * f64::from(step) / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y_at:.1}" y2="{y_at:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{y:.0}</text>"##,
            LEFT + plot_width,
            LEFT - 6.0,
            at_y(y) + 4.0,
            y_at = at_y(y),
        );
    }
    let mut power = x_min.floor();
    while power <= x_max + 1e-9 {
        let x = 2f64.powf(power);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{x:.0}</text>"#,
            at_x(x),
            TOP + plot_height + 18.0
        );
        power += 1.0;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + plot_width / 2.0,
        HEIGHT - 10.0,
        escape(x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_height / 2.0,
        escape(y_label)
    );
    for (index, line) in series.iter().enumerate() {
        let path: Vec<String> = line
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", at_x(*x), at_y(*y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            line.colour,
            path.join(" ")
        );
        for (x, y) in &line.points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                at_x(*x),
                at_y(*y),
                line.colour
            );
        }
        let legend_y = TOP + 10.0 + 20.0 * index as f64;
        let legend_x = WIDTH - RIGHT + 15.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            legend_x + 20.0,
            line.colour,
            legend_x + 26.0,
            legend_y + 4.0,
            escape(&line.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * power)
        .find(|nice| *nice >= value)
        .unwrap_or(value)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_and_a_point_per_value_and_escapes_its_words() {
        let chart = line_chart(
            "jobs <per> second",
            "concurrency",
            "jobs/s",
            &[Series {
                name: "a & b".into(),
                colour: "red",
                points: vec![(1.0, 10.0), (8.0, 80.0), (256.0, 75.0)],
            }],
        );
        assert_eq!(chart.matches("<polyline").count(), 1);
        assert_eq!(chart.matches("<circle").count(), 3);
        assert!(chart.contains("jobs &lt;per&gt; second"));
        assert!(chart.contains("a &amp; b"));
        assert!(chart.ends_with("</svg>\n"));
    }

    #[test]
    fn the_y_axis_ends_at_a_round_number() {
        assert_eq!(nice_ceiling(830.0), 1000.0);
        assert_eq!(nice_ceiling(1200.0), 2000.0);
        assert_eq!(nice_ceiling(4100.0), 5000.0);
    }
}
