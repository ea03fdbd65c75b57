//! The charts of docs/benchmarks.md, drawn with plotters' SVG backend.

use crate::report::Report;
use crate::stats::Measurement;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (960, 380);
const E2E: RGBColor = RGBColor(31, 119, 180);
const CEILING: RGBColor = RGBColor(44, 160, 44);
const NAIVE: RGBColor = RGBColor(214, 39, 40);
const P50: RGBColor = RGBColor(148, 103, 189);
const P99: RGBColor = RGBColor(255, 127, 14);

type Series = Vec<(f64, f64)>;

/// Writes `benchmarks-contacts.svg` and `benchmarks-concurrency.svg` next to the doc.
pub fn write(docs: &Path, report: &Report) -> anyhow::Result<()> {
    if !report.scaling.is_empty() {
        let by = |f: fn(&crate::report::ScalingRow) -> Option<&Measurement>,
                  y: fn(&Measurement) -> f64|
         -> Series {
            report
                .scaling
                .iter()
                .filter_map(|r| Some((r.contacts as f64, y(f(r)?))))
                .collect()
        };
        let throughput = [
            (
                "end to end",
                E2E,
                by(|r| Some(&r.e2e), Measurement::contacts_per_s),
            ),
            (
                "ceiling",
                CEILING,
                by(|r| Some(&r.ceiling), Measurement::contacts_per_s),
            ),
            (
                "naive",
                NAIVE,
                by(|r| r.naive.as_ref(), Measurement::contacts_per_s),
            ),
        ];
        let latency = [
            (
                "p50 (saturated)",
                P50,
                by(|r| Some(&r.e2e), |m| m.latency_ms(50.0)),
            ),
            (
                "p99 (saturated)",
                P99,
                by(|r| Some(&r.e2e), |m| m.latency_ms(99.0)),
            ),
        ];
        draw(
            &docs.join("benchmarks-contacts.svg"),
            "contacts (log scale)",
            true,
            &throughput,
            &latency,
        )?;
    }
    if !report.sweep.is_empty() {
        let by = |y: fn(&crate::report::SweepRow) -> f64| -> Series {
            report
                .sweep
                .iter()
                .map(|r| (f64::from(r.concurrency), y(r)))
                .collect()
        };
        let throughput = [
            ("end to end", E2E, by(|r| r.saturated.contacts_per_s())),
            ("ceiling", CEILING, by(|r| r.ceiling.contacts_per_s())),
        ];
        let latency = [
            ("p50 (paced)", P50, by(|r| r.paced.latency_ms(50.0))),
            ("p99 (paced)", P99, by(|r| r.paced.latency_ms(99.0))),
        ];
        draw(
            &docs.join("benchmarks-concurrency.svg"),
            "worker concurrency",
            false,
            &throughput,
            &latency,
        )?;
    }
    Ok(())
}

/// Two panels side by side: throughput on the left, batch latency on the right.
fn draw(
    path: &Path,
    x_label: &str,
    log_x: bool,
    throughput: &[(&str, RGBColor, Series)],
    latency: &[(&str, RGBColor, Series)],
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    panel(
        &left,
        "throughput",
        "contacts/s",
        x_label,
        log_x,
        throughput,
    )?;
    panel(&right, "batch latency", "ms", x_label, log_x, latency)?;
    root.present()?;
    Ok(())
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    x_label: &str,
    log_x: bool,
    series: &[(&str, RGBColor, Series)],
) -> anyhow::Result<()> {
    let points = series.iter().flat_map(|(_, _, s)| s.iter());
    let (x_min, x_max, y_max) = points.fold((f64::MAX, 0.0_f64, 0.0_f64), |(a, b, c), (x, y)| {
        (a.min(*x), b.max(*x), c.max(*y))
    });
    if x_max <= 0.0 {
        return Ok(());
    }
    let y_range = 0.0..y_max * 1.15;
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64);
    if log_x {
        let mut chart =
            builder.build_cartesian_2d((x_min * 0.7..x_max * 1.4).log_scale(), y_range)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        plot(&mut chart, series)?;
    } else {
        let mut chart = builder.build_cartesian_2d((x_min - 0.5).max(0.0)..x_max + 0.5, y_range)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        plot(&mut chart, series)?;
    }
    Ok(())
}

fn plot<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: &[(&str, RGBColor, Series)],
) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (name, color, points) in series {
        if points.is_empty() {
            continue;
        }
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}
