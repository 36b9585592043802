//! `convergence.svg`: the share of machines on each version over time, for
//! the whole fleet and per channel, with the timeline's events marked.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::Report;

/// Distinct colours for up to 16 versions; more cycle.
pub(super) const PALETTE: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 0),
    RGBColor(0, 128, 128),
    RGBColor(128, 128, 0),
    RGBColor(255, 0, 255),
    RGBColor(0, 0, 0),
];

/// Most points drawn per line; longer curves are thinned evenly.
const MAX_POINTS: usize = 1500;

fn event_colour(action: &str) -> RGBColor {
    if action.starts_with("promote") {
        RGBColor(0, 140, 0)
    } else if action.starts_with("rollback") {
        RGBColor(200, 0, 0)
    } else if action.starts_with("publish") {
        RGBColor(170, 170, 170)
    } else {
        RGBColor(60, 60, 200)
    }
}

/// What plotters reports when drawing on the SVG backend fails.
pub(super) type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// Why an SVG could not be drawn (the backend writes to a string, so in
/// practice a layout or font problem).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SvgError(#[from] DrawError);

/// Renders the report's curves as an SVG document.
pub fn convergence_svg(report: &Report) -> Result<String, SvgError> {
    let mut out = String::new();
    draw(report, &mut out)?;
    Ok(out)
}

fn draw(report: &Report, out: &mut String) -> Result<(), DrawError> {
    let c = &report.curve;
    let axis = Axis::for_span(report.scenario.duration_s);
    let root = SVGBackend::with_string(out, (1280, 1330)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "{} — {} machines, seed {}, from {}",
        report.scenario.name, report.scenario.fleet, report.scenario.seed, report.scenario.start
    );
    let root = root.titled(&title, ("sans-serif", 22))?;
    let panels = root.split_evenly((4, 1));
    let series = [
        ("whole fleet", &c.fleet),
        ("stable channel", &c.stable),
        ("beta channel", &c.beta),
    ];
    for (p, (area, (name, data))) in panels.iter().zip(series).enumerate() {
        draw_panel(area, report, &axis, name, data, p == 2)?;
    }
    draw_storm(&panels[3], report, &axis)?;
    root.present()?;
    Ok(())
}

/// The time axis: unit name, seconds per unit, length in units.
pub(super) struct Axis {
    unit: &'static str,
    scale: f64,
    max: f64,
}

impl Axis {
    /// Days for runs longer than two days, hours otherwise.
    pub(super) fn for_span(seconds: f64) -> Self {
        let (unit, scale) = if seconds > 2.0 * 86_400.0 {
            ("days", 86_400.0)
        } else {
            ("hours", 3600.0)
        };
        Self {
            unit,
            scale,
            max: seconds / scale,
        }
    }

    /// Seconds to axis units.
    pub(super) fn x(&self, seconds: f64) -> f64 {
        seconds / self.scale
    }
}

pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Axes for shares (0–100 %) over the run, with a caption.
pub(super) fn share_axes<'a, 'b>(
    area: &'a Area<'b>,
    caption: String,
    font: u32,
    axis: &Axis,
) -> Result<Chart<'a, 'b>, DrawError> {
    let x_max = axis.max;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", font))
        .margin(8)
        .margin_right(150)
        .x_label_area_size(32)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..x_max, 0f64..1.05)?;
    chart
        .configure_mesh()
        .x_desc(format!("{} since start", axis.unit))
        // One label per whole day (or hour) when that is not too many.
        .x_labels(if x_max <= 16.0 { x_max.floor() as usize + 1 } else { 12 })
        .x_label_formatter(&|x| format!("{x:.1}").trim_end_matches(".0").to_owned())
        .y_labels(6)
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    Ok(chart)
}

/// A legend drawn by hand in the area's right margin, clear of the curves.
pub(super) fn legend(area: &Area<'_>, entries: &[(String, RGBColor)]) -> Result<(), DrawError> {
    let (w, _) = area.dim_in_pixel();
    let x0 = w as i32 - 130;
    for (k, (label, colour)) in entries.iter().enumerate() {
        let y = 40 + 15 * k as i32;
        area.draw(&PathElement::new(vec![(x0, y), (x0 + 22, y)], colour.stroke_width(3)))?;
        area.draw(&Text::new(
            label.clone(),
            (x0 + 28, y - 6),
            ("sans-serif", 12).into_font(),
        ))?;
    }
    Ok(())
}

const DOWNLOADS_COLOUR: RGBColor = RGBColor(31, 119, 180);
const EGRESS_COLOUR: RGBColor = RGBColor(214, 39, 40);

/// The download storm: downloads in progress (left axis) and egress in
/// Mbit/s (right axis), each the most seen in its sample period.
fn draw_storm(area: &Area<'_>, report: &Report, axis: &Axis) -> Result<(), DrawError> {
    let c = &report.curve;
    let d = &report.downloads;
    let stride = c.times_s.len().div_ceil(MAX_POINTS).max(1);
    let mbit = |bps: f64| bps * 8.0 / 1e6;
    let top_downloads = (c.downloads.iter().copied().max().unwrap_or(0).max(1) as f64) * 1.1;
    let limit = d.egress_limit_bps.map(mbit);
    let top_egress = c
        .egress_bps
        .iter()
        .copied()
        .map(mbit)
        .fold(limit.unwrap_or(0.0), f64::max)
        .max(1.0)
        * 1.1;
    let caption = match limit {
        Some(l) => format!(
            "download storm: {} at most at once, egress limit {l:.0} Mbit/s, saturated {}",
            d.peak_concurrent,
            crate::clock::short(std::time::Duration::from_secs_f64(d.saturated_s))
        ),
        None => format!(
            "download storm: {} at most at once, egress unlimited",
            d.peak_concurrent
        ),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .margin_right(150)
        .x_label_area_size(32)
        .y_label_area_size(52)
        .right_y_label_area_size(52)
        .build_cartesian_2d(0f64..axis.max, 0f64..top_downloads)?
        .set_secondary_coord(0f64..axis.max, 0f64..top_egress);
    chart
        .configure_mesh()
        .x_desc(format!("{} since start", axis.unit))
        .x_labels(if axis.max <= 16.0 {
            axis.max.floor() as usize + 1
        } else {
            12
        })
        .x_label_formatter(&|x| format!("{x:.1}").trim_end_matches(".0").to_owned())
        .y_desc("downloads in progress")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    chart.configure_secondary_axes().y_desc("egress, Mbit/s").draw()?;
    let points = |ys: Vec<f64>| -> Vec<(f64, f64)> {
        c.times_s
            .iter()
            .zip(ys)
            .step_by(stride)
            .map(|(t, y)| (axis.x(*t), y))
            .collect()
    };
    chart.draw_series(LineSeries::new(
        points(c.downloads.iter().map(|&n| n as f64).collect()),
        DOWNLOADS_COLOUR.stroke_width(2),
    ))?;
    chart.draw_secondary_series(LineSeries::new(
        points(c.egress_bps.iter().map(|&b| mbit(b)).collect()),
        EGRESS_COLOUR.stroke_width(2),
    ))?;
    if let Some(l) = limit {
        chart.draw_secondary_series(DashedLineSeries::new(
            vec![(0.0, l), (axis.max, l)],
            6,
            4,
            EGRESS_COLOUR.mix(0.6).stroke_width(1),
        ))?;
    }
    legend(
        area,
        &[
            ("downloads".to_owned(), DOWNLOADS_COLOUR),
            ("egress".to_owned(), EGRESS_COLOUR),
        ],
    )?;
    Ok(())
}

/// One panel: the events, one line per version, and the legend.
fn draw_panel(
    area: &Area<'_>,
    report: &Report,
    axis: &Axis,
    name: &str,
    data: &[Vec<f64>],
    beta_panel: bool,
) -> Result<(), DrawError> {
    let c = &report.curve;
    let (scale, x_max) = (axis.scale, axis.max);
    let stride = c.times_s.len().div_ceil(MAX_POINTS).max(1);
    let mut chart = share_axes(area, format!("share of the {name} on each version"), 16, axis)?;
    // Labels already placed: (x, row). A label takes the lowest row no
    // nearby label uses, so events close in time stack instead of overlapping.
    let mut placed: Vec<(f64, usize)> = Vec::new();
    let near = x_max * 0.12;
    for entry in &report.timeline {
        let x = entry.at_s / scale;
        let refused = entry.outcome.starts_with("refused");
        let colour = if refused {
            RGBColor(230, 120, 0)
        } else {
            event_colour(&entry.action)
        };
        chart.draw_series(DashedLineSeries::new(
            vec![(x, 0.0), (x, 1.05)],
            4,
            4,
            colour.stroke_width(1),
        ))?;
        let publish = entry.action.starts_with("publish");
        // Label promotes, rollbacks and the like on every panel; builds
        // landing on the beta panel, where they matter.
        if publish && !beta_panel {
            continue;
        }
        let row = (0..)
            .find(|r| !placed.iter().any(|(px, pr)| pr == r && (px - x).abs() < near))
            .unwrap_or(0);
        placed.push((x, row));
        let text = entry.action.trim_start_matches("publish ").to_owned();
        let text = if refused { format!("{text} (refused)") } else { text };
        let y = if publish {
            0.04 + 0.08 * row as f64
        } else {
            1.0 - 0.08 * row as f64
        };
        let anchor = if x > x_max * 0.8 { HPos::Right } else { HPos::Left };
        let vpos = if publish { VPos::Bottom } else { VPos::Top };
        let font = ("sans-serif", 12)
            .into_font()
            .color(&colour)
            .pos(Pos::new(anchor, vpos));
        chart.draw_series(std::iter::once(Text::new(format!(" {text} "), (x, y), font)))?;
    }
    let mut shown = Vec::new();
    for (i, version) in c.versions.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let points: Vec<(f64, f64)> = c
            .times_s
            .iter()
            .zip(&data[i])
            .step_by(stride)
            .map(|(t, share)| (t / scale, *share))
            .collect();
        if points.iter().all(|(_, s)| *s == 0.0) {
            continue;
        }
        chart.draw_series(LineSeries::new(points, colour.stroke_width(2)))?;
        shown.push((version.to_string(), colour));
    }
    // The legend, drawn by hand in the panel's right margin, clear of the curves.
    legend(area, &shown)?;
    Ok(())
}
