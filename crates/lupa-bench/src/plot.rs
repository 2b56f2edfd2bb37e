//! The report's plot: quality against time per output megapixel, one point per model and peer.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// One point: a label, seconds per output megapixel and PSNR-Y; `lupa` picks the colour.
pub struct Point {
    pub label: String,
    pub secs_per_mp: f64,
    pub psnr: f64,
    pub lupa: bool,
}

/// Draws `points` as an SVG scatter plot (log-scaled time) with a horizontal line per baseline.
pub fn quality_vs_time(
    path: &Path,
    title: &str,
    points: &[Point],
    baselines: &[(String, f64)],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());
    let (t_min, t_max) = points
        .iter()
        .map(|p| p.secs_per_mp)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let (q_min, q_max) = points
        .iter()
        .map(|p| p.psnr)
        .chain(baselines.iter().map(|b| b.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), q| (lo.min(q), hi.max(q)));
    if points.is_empty() || !t_min.is_finite() || !q_min.is_finite() {
        return Err(anyhow!("plot {}: nothing to draw", path.display()));
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((t_min / 2.0..t_max * 2.0).log_scale(), (q_min - 0.5)..(q_max + 0.5))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds per output megapixel (log scale; lower is faster)")
        .y_desc("PSNR-Y (dB; higher is better)")
        .draw()
        .map_err(|e| err(&e))?;
    for (name, q) in baselines {
        chart
            .draw_series(LineSeries::new([(t_min / 2.0, *q), (t_max * 2.0, *q)], BLACK.mix(0.35)))
            .map_err(|e| err(&e))?;
        chart
            .draw_series([Text::new(name.clone(), (t_min / 1.9, *q + 0.05), ("sans-serif", 13))])
            .map_err(|e| err(&e))?;
    }
    // Labels go above their point, or below or further up where another label already sits.
    let (x_span, y_span) = ((t_max / t_min).ln().max(1e-9), (q_max - q_min + 1.0));
    let mut placed: Vec<(f64, f64)> = Vec::new();
    for p in points {
        let colour = if p.lupa { BLUE } else { RED };
        let dy = [0.04, -0.06, 0.10, -0.12, 0.16]
            .into_iter()
            .map(|f| f * y_span)
            .find(|dy| {
                placed.iter().all(|&(x, y)| {
                    ((p.secs_per_mp / x).ln().abs() / x_span > 0.25)
                        || ((p.psnr + dy - y).abs() > 0.04 * y_span)
                })
            })
            .unwrap_or(0.04 * y_span);
        placed.push((p.secs_per_mp, p.psnr + dy));
        chart.draw_series([Circle::new((p.secs_per_mp, p.psnr), 5, colour.filled())]).map_err(|e| err(&e))?;
        chart
            // Text hangs from its anchor: a little right of and above the point.
            .draw_series([Text::new(
                p.label.clone(),
                (p.secs_per_mp * 1.08, p.psnr + dy),
                ("sans-serif", 13).into_font().color(&colour),
            )])
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
