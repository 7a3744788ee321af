//! `target/oxen/bench.svg`: the path lengths as horizontal bars, hand-written
//! SVG with no dependencies. Each bar is a median; a thin mark shows the
//! p99, a dashed line the target where there is one. The scale is
//! logarithmic: path lengths here span two to four orders of magnitude.

use std::fmt::Write as _;

use super::report::{Figure, Group, show};

const WIDTH: f64 = 900.0;
const LABEL_W: f64 = 190.0;
const VALUE_W: f64 = 120.0;
const BAR_H: f64 = 18.0;
const GAP: f64 = 8.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 36.0;

/// The chart of every `Group::Path` figure that has a value; `title` goes on top.
pub fn chart(figures: &[Figure], title: &str) -> String {
    let bars: Vec<(&Figure, f64, f64)> = figures
        .iter()
        .filter(|f| f.group == Group::Path)
        .filter_map(|f| {
            f.value
                .as_ref()
                .ok()
                .map(|s| (f, s.median.max(1.0), s.p99.max(1.0)))
        })
        .collect();
    let unit = bars.first().map_or("", |(f, _, _)| f.unit.as_str());
    let top_value = bars
        .iter()
        .flat_map(|(f, m, p)| [*m, *p, f.target.unwrap_or(1.0)])
        .fold(10.0_f64, f64::max);
    // Decades from 1 to the first power of ten above the largest value.
    let decades = top_value.log10().ceil().max(1.0);
    let plot_w = WIDTH - LABEL_W - VALUE_W;
    let x = |v: f64| LABEL_W + v.max(1.0).log10() / decades * plot_w;
    let height = TOP + bars.len() as f64 * (BAR_H + GAP) + BOTTOM;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        LABEL_W,
        escape(title)
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"36\" fill=\"#555\">median (bar), p99 (black mark), target (red dashes); {}, log scale</text>",
        LABEL_W,
        escape(unit)
    );
    let axis_y = TOP + bars.len() as f64 * (BAR_H + GAP);
    let mut decade = 0.0;
    while decade <= decades {
        let v = 10f64.powf(decade);
        let gx = x(v);
        let _ = writeln!(
            s,
            "<line x1=\"{gx:.1}\" y1=\"{TOP}\" x2=\"{gx:.1}\" y2=\"{axis_y}\" stroke=\"#ddd\"/>\
             <text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            axis_y + 16.0,
            show(v)
        );
        decade += 1.0;
    }
    for (i, (f, median, p99)) in bars.iter().enumerate() {
        let y = TOP + i as f64 * (BAR_H + GAP);
        let mid = y + BAR_H / 2.0 + 4.0;
        let met = f.meets_target();
        let fill = match met {
            Some(false) => "#d9822b",
            _ => "#4a7fb5",
        };
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{mid:.1}\" text-anchor=\"end\">{}</text>",
            LABEL_W - 8.0,
            escape(&f.name)
        );
        let _ = writeln!(
            s,
            "<rect x=\"{LABEL_W}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{BAR_H}\" fill=\"{fill}\"/>",
            (x(*median) - LABEL_W).max(1.0)
        );
        let px = x(*p99);
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"black\" stroke-width=\"2\"/>",
            y - 2.0,
            y + BAR_H + 2.0
        );
        if let Some(t) = f.target {
            let tx = x(t);
            let _ = writeln!(
                s,
                "<line x1=\"{tx:.1}\" y1=\"{:.1}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#c00\" \
                 stroke-width=\"2\" stroke-dasharray=\"3,2\"/>",
                y - 3.0,
                y + BAR_H + 3.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{mid:.1}\">{} / p99 {}</text>",
            WIDTH - VALUE_W + 8.0,
            show(*median),
            show(*p99)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::Summary;

    #[test]
    fn bars_for_path_figures_only() {
        let s = |m: f64| Summary::of(&[m, m * 2.0]).expect("values");
        let figures = [
            Figure::new("null_hypercall", Group::Path, "instructions", s(1500.0), 1, "")
                .with_target(Some(60.0)),
            Figure::new(
                "mmu_map_unmap_64",
                Group::Path,
                "instructions",
                s(90_000.0),
                1,
                "",
            ),
            Figure::new("boot_to_dom0_ms", Group::Lifecycle, "ms", s(150.0), 3, ""),
            Figure::na("timer_upcall", Group::Path, "instructions", "failed", ""),
        ];
        let svg = chart(&figures, "Oxen <path lengths> & more");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 2, "{svg}");
        assert!(svg.contains(">null_hypercall<") && !svg.contains("boot_to_dom0"));
        assert!(svg.contains("&lt;path lengths&gt; &amp; more"));
        assert!(svg.contains("stroke-dasharray"), "target line");
        assert!(svg.contains("#d9822b"), "a missed target is coloured");
        // Decades up to 10^6 (the largest value is 180000).
        assert!(svg.contains(">1000000<"), "{svg}");
    }
}
