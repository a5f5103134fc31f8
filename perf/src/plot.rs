//! PNG charts of a run (`loadgen --plot DIR`), drawn with plotters:
//!
//! - `latency_spectrum.png`: latency (us, log scale) against percentile, one line per
//!   operation kind; the x axis is `1 / (1 - q)` on a log scale, so the tail (99 %, 99.9 %,
//!   99.99 %) gets as much room as the median, as in HdrHistogram's percentile plots.
//! - `throughput_latency.png`: requests per second (top) and p50/p99 latency (bottom) per
//!   second of the run.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::report::IntervalPoint;
use crate::workload::{OpKind, OP_KINDS};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 800;
/// Highest percentile drawn: 1 / (1 - 0.99999).
const SPECTRUM_X_MAX: f64 = 1e5;

fn err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

fn label_for(x: &f64) -> String {
    let q = 100.0 * (1.0 - 1.0 / x);
    match q {
        q if q <= 0.0 => "0%".into(),
        q if q < 99.0 => format!("{q:.0}%"),
        q => format!("{}%", (q * 1000.0).round() / 1000.0),
    }
}

/// Writes both charts into `dir` (created if missing) and returns their paths. Pass only whole
/// seconds in `intervals` (the last, partial second of a run would read as a throughput drop).
pub fn write_charts(
    dir: &Path,
    title: &str,
    per_op: &[Histogram<u64>],
    intervals: &[IntervalPoint],
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("plot: create {}: {e}", dir.display()))?;
    let spectrum = dir.join("latency_spectrum.png");
    spectrum_chart(&spectrum, title, per_op)?;
    let over_time = dir.join("throughput_latency.png");
    time_chart(&over_time, title, intervals)?;
    Ok(vec![spectrum, over_time])
}

fn spectrum_chart(path: &Path, title: &str, per_op: &[Histogram<u64>]) -> Result<(), String> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut series = Vec::new();
    let (mut y_min, mut y_max) = (f64::MAX, 0.0f64);
    for kind in OpKind::ALL.iter().take(OP_KINDS) {
        let h = &per_op[kind.index()];
        if h.is_empty() {
            continue;
        }
        let mut points = Vec::new();
        for v in h.iter_quantiles(8) {
            let q = v.quantile_iterated_to();
            let x = if q >= 1.0 {
                SPECTRUM_X_MAX
            } else {
                (1.0 / (1.0 - q)).min(SPECTRUM_X_MAX)
            };
            let y = (v.value_iterated_to() as f64 / 1000.0).max(0.001);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
            points.push((x, y));
        }
        series.push((kind.name(), points));
    }
    if series.is_empty() {
        return Err("plot: no latencies recorded".into());
    }
    let y_range = (y_min * 0.8).max(0.001)..(y_max * 1.25);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title}: latency by percentile"),
            ("sans-serif", 28),
        )
        .margin(20)
        .margin_right(60)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((1.0..SPECTRUM_X_MAX).log_scale(), y_range.log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us)")
        .x_label_formatter(&label_for)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 18))
        .draw()
        .map_err(err)?;
    for (i, (name, points)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(3)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 20))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

fn time_chart(path: &Path, title: &str, intervals: &[IntervalPoint]) -> Result<(), String> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(HEIGHT / 2);
    let x_max = intervals.iter().map(|i| i.second + 1).max().unwrap_or(1) as f64;
    let ops_max = intervals.iter().map(|i| i.ops).max().unwrap_or(1).max(1) as f64 * 1.15;
    let mut chart = ChartBuilder::on(&top)
        .caption(format!("{title}: throughput"), ("sans-serif", 26))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..x_max, 0.0..ops_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("second")
        .y_desc("requests/s")
        .y_label_formatter(&|y| format!("{:.0}K", y / 1000.0))
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            intervals
                .iter()
                .map(|i| (i.second as f64 + 0.5, i.ops as f64)),
            BLUE.stroke_width(3),
        ))
        .map_err(err)?;
    let lat_max = intervals.iter().map(|i| i.p99_us).fold(1.0f64, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&bottom)
        .caption(format!("{title}: latency per second"), ("sans-serif", 26))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..x_max, 0.0..lat_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("second")
        .y_desc("latency (us)")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    for (name, color, pick) in [("p50", GREEN, 0), ("p99", RED, 1)] {
        let points = intervals.iter().map(move |i| {
            (
                i.second as f64 + 0.5,
                if pick == 0 { i.p50_us } else { i.p99_us },
            )
        });
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(3)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::latency_histogram;

    #[test]
    fn percentile_labels_read_as_percentiles() {
        assert_eq!(label_for(&1.0), "0%");
        assert_eq!(label_for(&2.0), "50%");
        assert_eq!(label_for(&100.0), "99%");
        assert_eq!(label_for(&1000.0), "99.9%");
        assert_eq!(label_for(&10000.0), "99.99%");
    }

    #[test]
    fn charts_are_written_as_png_files() {
        let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
            .expect("tempdir");
        let mut per_op: Vec<Histogram<u64>> = (0..OP_KINDS).map(|_| latency_histogram()).collect();
        for i in 1..10_000u64 {
            per_op[0].saturating_record(20_000 + i * 7);
            per_op[1].saturating_record(40_000 + i * 11);
        }
        let points: Vec<IntervalPoint> = (0..10)
            .map(|s| IntervalPoint {
                second: s,
                ops: 1000 + s * 10,
                errors: 0,
                p50_us: 30.0,
                p99_us: 90.0,
            })
            .collect();
        let paths = write_charts(dir.path(), "test", &per_op, &points).expect("charts render");
        for p in paths {
            let bytes = std::fs::read(&p).expect("chart written");
            assert!(bytes.starts_with(b"\x89PNG"), "{}", p.display());
        }
    }
}
