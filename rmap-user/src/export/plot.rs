//! `rmap-trace plot FILE... -o out.svg` and the benchmark's `--plot`: latency by percentile,
//! the way HdrHistogram's plotter draws it: the x axis is 1/(1-percentile) on a log scale (so
//! 90%, 99%, 99.9% are evenly spaced), the y axis latency on a log scale; one line per input
//! and page type.
use std::path::Path;

use anyhow::{Context as _, anyhow};
use hdrhistogram::Histogram;
use plotters::prelude::*;

/// One line of the plot.
pub struct Series<'a> {
    pub label: String,
    pub hist: &'a Histogram<u64>,
}

/// Points (x = log10(1/(1-q)), latency in ms), capped at `max_x` for q = 1.
fn points(h: &Histogram<u64>, max_x: f64) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to();
            let x = if q >= 1.0 {
                max_x
            } else {
                (1.0 / (1.0 - q)).log10().min(max_x)
            };
            (x, h.highest_equivalent(v.value_iterated_to()).max(1) as f64 / 1e6)
        })
        .collect();
    // Exactly equal x values (the same percentile reached twice), not merely close ones.
    pts.dedup_by(|a, b| a.0.to_bits() == b.0.to_bits());
    pts
}

/// The percentile a tick stands for: 0 -> "0%", 1 -> "90%", 2 -> "99%", 3 -> "99.9%".
fn tick_label(x: f64) -> String {
    let k = x.round() as i32;
    if k <= 0 {
        return "0%".into();
    }
    let pct = 100.0 - 100.0 / 10f64.powi(k);
    format!("{pct:.*}%", (k - 2).max(0) as usize)
}

pub fn write(path: &Path, title: &str, series: &[Series<'_>]) -> anyhow::Result<()> {
    let nonempty: Vec<&Series> = series.iter().filter(|s| !s.hist.is_empty()).collect();
    if nonempty.is_empty() {
        anyhow::bail!("nothing to plot: no walks in the inputs");
    }
    // Up to the percentile the largest input resolves (1/N), at least 99.9%.
    let max_n = nonempty.iter().map(|s| s.hist.len()).max().unwrap_or(1) as f64;
    let max_x = max_n.log10().ceil().clamp(3.0, 6.0);
    let all: Vec<Vec<(f64, f64)>> = nonempty.iter().map(|s| points(s.hist, max_x)).collect();
    let lo = all.iter().flatten().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = all.iter().flatten().map(|p| p.1).fold(0.0, f64::max);
    let (lo, hi) = (lo / 2.0, hi * 2.0);
    // Drawn in memory, then written whole (temporary file and rename).
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 600)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..max_x, (lo..hi).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_labels(max_x as usize + 1)
            .x_label_formatter(&|x| tick_label(*x))
            .y_label_formatter(&|y| crate::render::fmt_ns((y * 1e6).round() as u64))
            .x_desc("percentile")
            .y_desc("walk latency")
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (s, pts)) in nonempty.iter().zip(&all).enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    super::output::write_atomic(path, svg.as_bytes())?;
    Ok(())
}

/// `--plot`: one line per page type of a run, titled with this kernel's release.
pub fn plot_types(
    types: &std::collections::BTreeMap<rmap_common::PageType, crate::stats::Stats>,
    out: &Path,
) -> anyhow::Result<()> {
    let title = format!(
        "rmap walk latency, kernel {}",
        crate::kernel::host::kernel_release()
    );
    let series: Vec<Series> = types
        .iter()
        .map(|(t, s)| Series {
            label: format!("{} (n={})", t.name(), s.hist.len()),
            hist: &s.hist,
        })
        .collect();
    write(out, &title, &series).with_context(|| format!("plotting to {}", out.display()))?;
    println!("plot: {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_name_percentiles() {
        assert_eq!(tick_label(0.0), "0%");
        assert_eq!(tick_label(1.0), "90%");
        assert_eq!(tick_label(2.0), "99%");
        assert_eq!(tick_label(3.0), "99.9%");
        assert_eq!(tick_label(5.0), "99.999%");
    }

    #[test]
    fn points_rise_to_the_max() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1_000_000).unwrap();
        }
        let pts = points(&h, 3.0);
        assert!(
            pts.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{pts:?}"
        );
        let last = pts.last().unwrap();
        assert!((last.0 - 3.0).abs() < 1e-9, "{last:?}");
        assert!((last.1 - 1000.0).abs() < 1.0, "{last:?}");
    }
}
