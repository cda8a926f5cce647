//! The plot: throughput over time, one panel per scenario (each with its own scale, since the
//! floor moves thousands of messages a second and the quota run ten), with the steady-state
//! rate as a dashed reference line. Written as SVG, which any browser shows.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::series::Series;

/// Panels per row.
const COLUMNS: usize = 2;
/// Size of one panel in pixels.
const PANEL: (u32, u32) = (640, 320);

/// Draws every series into an SVG at `path`.
pub(crate) fn draw(path: &Path, title: &str, series: &[Series]) -> Result<()> {
    if series.is_empty() {
        return Err(anyhow!("nothing to plot"));
    }
    let rows = series.len().div_ceil(COLUMNS);
    let height = PANEL.1 * u32::try_from(rows).unwrap_or(1) + 50;
    let root = SVGBackend::new(path, (PANEL.0 * COLUMNS as u32, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(plot_error)?;
    let panels = root.split_evenly((rows, COLUMNS));
    for (panel, one) in panels.iter().zip(series) {
        draw_panel(panel, one)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

fn draw_panel(panel: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, series: &Series) -> Result<()> {
    let x_max = series.points.last().map_or(1.0, |(x, _)| x + 0.25).max(1.0);
    let y_peak = series.points.iter().map(|(_, y)| *y).fold(series.steady, f64::max);
    let y_max = (y_peak * 1.15).max(1.0);
    let caption = format!("{} — {} {}/s", series.name, series.reference, human(series.steady));
    let mut chart = ChartBuilder::on(panel)
        .caption(caption, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(62)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("messages / s")
        .y_label_formatter(&|y| human(*y))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(LineSeries::new(series.points.iter().copied(), BLUE.stroke_width(2)))
        .map_err(plot_error)?
        .label(series.per)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, series.steady), (x_max, series.steady)],
            6,
            4,
            RED.stroke_width(1),
        ))
        .map_err(plot_error)?
        .label(series.reference)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the plot: {error}")
}

/// `12.3k` for thousands, plain below.
fn human(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 1_000.0 {
        format!("{:.1}k", value / 1000.0)
    } else if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(human(21_345.0), "21k");
        assert_eq!(human(1_280.0), "1.3k");
        assert_eq!(human(600.0), "600");
        assert_eq!(human(9.96), "10.0");
    }

    #[test]
    fn an_svg_with_one_panel_per_series_is_written() {
        let dir = std::env::temp_dir().join(format!("bench-plot-{}", std::process::id()));
        let path = dir.join("plot.svg");
        let written = std::fs::create_dir_all(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                draw(
                    &path,
                    "test",
                    &[
                        Series {
                            name: "a".to_owned(),
                            points: vec![(0.125, 100.0), (0.375, 200.0)],
                            steady: 150.0,
                            reference: crate::series::STEADY,
                            per: crate::series::PER_BUCKET,
                        },
                        Series {
                            name: "b".to_owned(),
                            points: vec![(0.125, 8.5)],
                            steady: 8.5,
                            reference: "quota",
                            per: "per second",
                        },
                    ],
                )
            });
        let svg = std::fs::read_to_string(&path).unwrap_or_default();
        let _removed = std::fs::remove_dir_all(&dir);
        assert!(written.is_ok(), "{written:?}");
        assert!(svg.starts_with("<svg") && svg.contains("steady rate 150/s") && svg.contains("quota 8.5/s"));
        assert!(draw(&path, "empty", &[]).is_err());
    }
}
