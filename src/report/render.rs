//! A report's two files: one self-contained HTML page (a summary table and four plots drawn as
//! inline SVG by `plotters`; no script, no external file, so it can be mailed or archived) and
//! a CSV of the bins beside it for a spreadsheet.

use super::figures::{percentile, Bin, Figures};
use crate::config::timestamp::format_rfc3339;
use plotters::prelude::*;
use std::fmt::Write as _;

/// Every plot's size, px.
const SIZE: (u32, u32) = (880, 340);

/// Lines the report left out, said at the top of the page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Lines that were not events of this schema.
    pub unreadable: u64,
    /// Lines a newer usher wrote.
    pub newer: u64,
}

/// The CSV: one row per bin.
pub fn csv(f: &Figures) -> String {
    let mut out = String::from(
        "start,start_ms,joined,admitted,admitted_per_minute,abandoned,came_back,released,expired,queue_waiting,active_slots,median_wait_s,p90_wait_s\n",
    );
    let per_minute = 60_000.0 / f.bin_ms as f64;
    for b in &f.bins {
        let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        let secs = |v: Option<u64>| v.map_or(String::new(), |ms| format!("{:.1}", ms as f64 / 1e3));
        let _ = writeln!(
            out,
            "{},{},{},{},{:.1},{},{},{},{},{},{},{},{}",
            format_rfc3339(b.start_ms),
            b.start_ms,
            b.joined,
            b.admitted,
            b.admitted as f64 * per_minute,
            b.abandoned,
            b.came_back,
            b.released,
            b.expired,
            opt(b.waiting),
            opt(b.active),
            secs(percentile(&b.waits_ms, 50.0)),
            secs(percentile(&b.waits_ms, 90.0)),
        );
    }
    out
}

/// The report in one line, as `usher report` prints it; durations as on the page.
pub fn summary_line(f: &Figures) -> String {
    format!(
        "{}: {} joined, {} admitted, {} abandoned ({} came back), median wait {}",
        f.zone,
        f.joined,
        f.admitted_total(),
        f.abandoned,
        f.came_back,
        wait_at(f, 50.0),
    )
}

/// The `p`-th percentile of the waits as the page writes it (`–` without any wait).
fn wait_at(f: &Figures, p: f64) -> String {
    f.wait_percentile(p).map_or("–".into(), duration_precise)
}

/// The HTML page; `csv_name` is the CSV's file name, linked from it.
pub fn html(f: &Figures, skipped: Skipped, csv_name: &str) -> String {
    let title = format!("usher report: {}", escape(&f.zone));
    let mut page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n<p class=\"when\">{} to {} (UTC), from the event log. Bins of {}. <a href=\"{}\">The bins as CSV</a>.</p>\n",
        format_rfc3339(f.from_ms),
        format_rfc3339(f.to_ms),
        duration(f.bin_ms),
        escape(csv_name),
    );
    if skipped != Skipped::default() {
        let _ = writeln!(
            page,
            "<p class=\"warn\">Left out: {} unreadable line(s), {} line(s) of a newer usher. The figures below do not count them.</p>",
            skipped.unreadable, skipped.newer
        );
    }
    page.push_str(&summary(f));
    for (heading, svg) in [
        ("The line and admissions", over_time(f)),
        ("Time in line", wait_distribution(f)),
        ("Abandonment", abandonment(f)),
        ("ETA shown against the real wait", eta_vs_wait(f)),
    ] {
        let _ = write!(page, "<h2>{heading}</h2>\n<figure>{svg}</figure>\n");
    }
    page.push_str("</body></html>\n");
    page
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:920px;margin:2em auto;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}table{border-collapse:collapse}\
td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:right}th{text-align:left;font-weight:normal}\
.when{color:#555}.warn{background:#fff3cd;padding:.5em}figure{margin:0}svg{max-width:100%;height:auto}";

fn summary(f: &Figures) -> String {
    let mut rows: Vec<(String, String)> =
        vec![("Took a place in line".into(), f.joined.to_string())];
    rows.push(("Admitted".into(), f.admitted_total().to_string()));
    for (via, n) in &f.admitted {
        rows.push((format!("&nbsp;&nbsp;via {}", escape(via)), n.to_string()));
    }
    rows.extend([
        ("Time in line, median".into(), wait_at(f, 50.0)),
        ("Time in line, 90th percentile".into(), wait_at(f, 90.0)),
        ("Time in line, 99th percentile".into(), wait_at(f, 99.0)),
        ("Time in line, longest".into(), wait_at(f, 100.0)),
        ("Longest line".into(), f.peak_waiting.to_string()),
        (
            "Places abandoned (passed while away)".into(),
            f.abandoned.to_string(),
        ),
        (
            "&nbsp;&nbsp;came back and went in".into(),
            f.came_back.to_string(),
        ),
        (
            "&nbsp;&nbsp;gone for good".into(),
            f.abandoned.saturating_sub(f.came_back).to_string(),
        ),
        (
            "Sessions released by the shop".into(),
            f.released.to_string(),
        ),
        ("Slots expired".into(), f.expired.to_string()),
    ]);
    if let Some(median) = median_eta_error(f) {
        rows.push(("ETA shown minus real wait, median".into(), median));
    }
    let mut table = String::from("<table>\n");
    for (name, value) in rows {
        let _ = writeln!(table, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    table.push_str("</table>\n");
    table
}

/// How far the ETA shown was from the wait, median over visitors (positive: told too long).
fn median_eta_error(f: &Figures) -> Option<String> {
    let mut errors: Vec<i64> = f
        .eta_vs_wait
        .iter()
        .map(|(eta_s, waited_ms)| *eta_s as i64 * 1_000 - *waited_ms as i64)
        .collect();
    errors.sort_unstable();
    let median = *errors.get(errors.len().checked_sub(1)? / 2)?;
    let sign = if median < 0 { "−" } else { "+" };
    Some(format!("{sign}{}", duration_precise(median.unsigned_abs())))
}

/// The time axes' unit for the stretch: seconds up to 10 minutes, minutes up to 10 hours, then
/// hours; as ms per unit and its name.
fn time_unit(f: &Figures) -> (f64, &'static str) {
    match f.to_ms - f.from_ms {
        span if span <= 600_000 => (1e3, "seconds"),
        span if span <= 36_000_000 => (60e3, "minutes"),
        _ => (3_600e3, "hours"),
    }
}

/// Time since the stretch's start in the axes' unit.
fn offset_s(f: &Figures, at_ms: u64) -> f64 {
    at_ms.saturating_sub(f.from_ms) as f64 / time_unit(f).0
}

/// Axis labels of counts: whole numbers only (a tick between two has no label).
fn whole(v: &f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

/// `(x, y)` ranges that are never empty.
fn upto(max: f64) -> f64 {
    if max > 0.0 {
        max * 1.1
    } else {
        1.0
    }
}

fn svg(
    draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> String {
    let mut out = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| draw(&root));
        drawn.and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match drawn {
        Ok(()) => out,
        Err(e) => format!(
            "<p class=\"warn\">This plot could not be drawn: {}</p>",
            escape(&e)
        ),
    }
}

fn time_label(f: &Figures) -> String {
    format!("{} after {}", time_unit(f).1, format_rfc3339(f.from_ms))
}

/// Every plot's frame: its caption, margins and room for the axes' labels.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56);
    builder
}

/// Draws the legend of the series labelled so far at `position`.
fn legend<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(position)
        .draw()
        .map_err(|e| e.to_string())
}

/// A legend's sample of a line in `color`.
fn line_key(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2))
}

fn over_time(f: &Figures) -> String {
    let per_minute = 60_000.0 / f.bin_ms as f64;
    let end = upto(offset_s(f, f.to_ms));
    let line_max = f.bins.iter().filter_map(|b| b.waiting).max().unwrap_or(0) as f64;
    let rate_max = f.bins.iter().map(|b| b.admitted).max().unwrap_or(0) as f64 * per_minute;
    svg(|root| {
        let mut chart = frame(root, "Queue length and admissions per minute")
            .right_y_label_area_size(56)
            .build_cartesian_2d(0.0..end, 0.0..upto(line_max))
            .map_err(|e| e.to_string())?
            .set_secondary_coord(0.0..end, 0.0..upto(rate_max));
        chart
            .configure_mesh()
            .x_desc(time_label(f))
            .y_desc("visitors in line")
            .y_label_formatter(&whole)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .configure_secondary_axes()
            .y_desc("admitted per minute")
            .y_label_formatter(&whole)
            .draw()
            .map_err(|e| e.to_string())?;
        let bar = RGBColor(76, 120, 168);
        chart
            .draw_secondary_series(f.bins.iter().map(|b| {
                let x0 = offset_s(f, b.start_ms.max(f.from_ms));
                let x1 = offset_s(f, b.start_ms + f.bin_ms);
                Rectangle::new(
                    [(x0, 0.0), (x1, b.admitted as f64 * per_minute)],
                    bar.mix(0.45).filled(),
                )
            }))
            .map_err(|e| e.to_string())?
            .label("admitted per minute")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], bar.mix(0.45).filled())
            });
        let line = RGBColor(214, 39, 40);
        chart
            .draw_series(LineSeries::new(
                f.bins.iter().filter_map(|b| {
                    b.waiting
                        .map(|w| (offset_s(f, b.start_ms.max(f.from_ms)), w as f64))
                }),
                line.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label("visitors in line")
            .legend(line_key(line));
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

fn wait_distribution(f: &Figures) -> String {
    let waits: Vec<f64> = f.waits_ms.iter().map(|ms| *ms as f64 / 1e3).collect();
    let longest = waits.last().copied().unwrap_or(0.0);
    let width = upto(longest) / 30.0;
    let mut counts = vec![0u64; 31];
    for w in &waits {
        counts[((w / width) as usize).min(30)] += 1;
    }
    let tallest = counts.iter().max().copied().unwrap_or(0) as f64;
    svg(|root| {
        let mut chart = frame(root, "Time in line (admissions after waiting)")
            .build_cartesian_2d(0.0..upto(longest), 0.0..upto(tallest))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds in line")
            .y_desc("visitors")
            .y_label_formatter(&whole)
            .draw()
            .map_err(|e| e.to_string())?;
        let bar = RGBColor(76, 120, 168);
        chart
            .draw_series(counts.iter().enumerate().map(|(i, n)| {
                let x0 = i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, *n as f64)], bar.mix(0.6).filled())
            }))
            .map_err(|e| e.to_string())?;
        for (p, color) in [
            (50.0, RGBColor(44, 160, 44)),
            (90.0, RGBColor(255, 127, 14)),
            (99.0, RGBColor(214, 39, 40)),
        ] {
            if let Some(ms) = f.wait_percentile(p) {
                let x = ms as f64 / 1e3;
                chart
                    .draw_series(LineSeries::new(
                        [(x, 0.0), (x, upto(tallest))],
                        color.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(format!("p{p} = {}", duration_precise(ms)))
                    .legend(line_key(color));
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// One number of a bin, for a series.
type BinValue = fn(&Bin) -> u64;

fn abandonment(f: &Figures) -> String {
    let end = upto(offset_s(f, f.to_ms));
    let tallest = f
        .bins
        .iter()
        .map(|b| b.abandoned.max(b.came_back))
        .max()
        .unwrap_or(0) as f64;
    svg(|root| {
        let mut chart = frame(
            root,
            &format!(
                "Places abandoned: {} (came back {}, gone {})",
                f.abandoned,
                f.came_back,
                f.abandoned.saturating_sub(f.came_back)
            ),
        )
        .build_cartesian_2d(0.0..end, 0.0..upto(tallest))
        .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(time_label(f))
            .y_desc(format!("places per {}", duration(f.bin_ms)))
            .y_label_formatter(&whole)
            .draw()
            .map_err(|e| e.to_string())?;
        let series: [(&str, RGBColor, BinValue); 2] = [
            ("passed while away", RGBColor(214, 39, 40), |b| b.abandoned),
            ("came back and went in", RGBColor(44, 160, 44), |b| {
                b.came_back
            }),
        ];
        for (name, color, value) in series {
            chart
                .draw_series(LineSeries::new(
                    f.bins
                        .iter()
                        .map(|b| (offset_s(f, b.start_ms.max(f.from_ms)), value(b) as f64)),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(line_key(color));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

fn eta_vs_wait(f: &Figures) -> String {
    let points: Vec<(f64, f64)> = f
        .eta_vs_wait
        .iter()
        .map(|(eta_s, ms)| (*eta_s as f64, *ms as f64 / 1e3))
        .collect();
    let most = points.iter().map(|(x, y)| x.max(*y)).fold(0.0, f64::max);
    let end = upto(most);
    svg(|root| {
        let mut chart = frame(root, "ETA shown on joining against the real wait")
            .build_cartesian_2d(0.0..end, 0.0..end)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("ETA shown, seconds")
            .y_desc("real wait, seconds")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (end, end)], BLACK.mix(0.4)))
            .map_err(|e| e.to_string())?
            .label("exact")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.mix(0.4)));
        let dot = RGBColor(76, 120, 168);
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new(*p, 3, dot.mix(0.6).filled())),
            )
            .map_err(|e| e.to_string())?
            .label(format!("a visitor ({})", points.len()))
            .legend(move |(x, y)| Circle::new((x + 7, y), 3, dot.mix(0.6).filled()));
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// `90 s`, `5 min`, `1 h`.
fn duration(ms: u64) -> String {
    match ms {
        ms if ms % 3_600_000 == 0 => format!("{} h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        ms => format!("{} s", ms / 1_000),
    }
}

/// `0.8 s`, `42.0 s`, `12 min 5 s`.
fn duration_precise(ms: u64) -> String {
    if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1e3)
    } else {
        format!("{} min {} s", ms / 60_000, ms % 60_000 / 1_000)
    }
}

/// Text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::compute;
    use crate::report::lines::{Logged, What};

    fn sale() -> Figures {
        let t = 1_800_000_000_000;
        let mut events = Vec::new();
        for i in 0..50u64 {
            let visitor = format!("v{i}");
            events.push(Logged {
                at_ms: t + i * 100,
                zone: "<zone>".into(),
                what: What::Joined {
                    visitor: visitor.clone(),
                    eta_s: 5 + i,
                },
            });
            events.push(Logged {
                at_ms: t + 1_000 + i * 700,
                zone: "<zone>".into(),
                what: What::Admitted {
                    visitor,
                    waited_ms: 1_000 + i * 600,
                    via: "queue".into(),
                },
            });
            events.push(Logged {
                at_ms: t + i * 1_000,
                zone: "<zone>".into(),
                what: What::Queue {
                    waiting: 50 - i,
                    active: 3,
                },
            });
        }
        compute("<zone>", &events, 0, u64::MAX).expect("events")
    }

    #[test]
    fn the_page_is_self_contained_with_four_plots_and_escaped_names() {
        let f = sale();
        let page = html(
            &f,
            Skipped {
                unreadable: 2,
                newer: 0,
            },
            "r.csv",
        );
        assert_eq!(page.matches("<svg").count(), 4, "four plots");
        assert!(!page.contains("could not be drawn"));
        assert!(!page.contains("<script"));
        assert!(!page.contains("src="), "nothing loaded from elsewhere");
        assert!(page.contains("usher report: &lt;zone&gt;"));
        assert!(!page.contains("<zone>"));
        assert!(page.contains("2 unreadable line(s)"));
        assert!(page.contains("<tr><th>Admitted</th><td>50</td></tr>"));
        // p50 of 1.0 s + i × 0.6 s over 50: the 25th, 15.4 s.
        assert!(
            page.contains("<tr><th>Time in line, median</th><td>15.4 s</td></tr>"),
            "{page:.3000}"
        );
    }

    #[test]
    fn the_csv_has_a_row_per_bin_that_adds_up() {
        let f = sale();
        let text = csv(&f);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect();
        assert_eq!(rows.len(), f.bins.len());
        assert!(rows.iter().all(|r| r.len() == 13));
        let admitted: u64 = rows.iter().map(|r| r[3].parse::<u64>().expect("n")).sum();
        assert_eq!(admitted, 50);
        assert_eq!(rows[0][9], "50", "the line at the start");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(1_000), "1 s");
        assert_eq!(duration(300_000), "5 min");
        assert_eq!(duration(3_600_000), "1 h");
        assert_eq!(duration_precise(800), "0.8 s");
        assert_eq!(duration_precise(725_000), "12 min 5 s");
    }
}
