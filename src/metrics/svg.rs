//! `convergence.svg`: the share of machines on each version over time, for
//! the whole fleet and per channel, with the timeline's events marked.

use plotters::chart::MeshStyle;
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

/// An event's colour: promotes green, rollbacks red, builds landing grey,
/// anything else blue.
pub(super) fn event_colour(action: &str) -> RGBColor {
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
    /// The run's length in axis units.
    pub(super) max: f64,
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
pub(super) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

type Mesh<'a, 'b, 'c> = MeshStyle<'a, 'b, RangedCoordf64, RangedCoordf64, SVGBackend<'c>>;

/// A chart over the run's time, as every panel lays it out: the caption,
/// the margins (the right one keeps the legend clear of the curves) and the
/// label areas, y from 0 to `y_top`. `right_axis` leaves room for a second
/// y axis, which must be set before the mesh is drawn (the mesh labels
/// every label area the chart still holds).
fn time_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: String,
    font: u32,
    axis: &Axis,
    y_top: f64,
    right_axis: bool,
) -> Result<Chart<'a, 'b>, DrawError> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", font))
        .margin(8)
        .margin_right(150)
        .x_label_area_size(32)
        .y_label_area_size(52);
    if right_axis {
        builder.right_y_label_area_size(52);
    }
    builder.build_cartesian_2d(0f64..axis.max, 0f64..y_top)
}

/// The time axis and the light grid every panel's mesh shares.
fn time_mesh<'m, 'a, 'b, 'c>(mesh: &'m mut Mesh<'a, 'b, 'c>, axis: &Axis) -> &'m mut Mesh<'a, 'b, 'c> {
    let x_max = axis.max;
    mesh.x_desc(format!("{} since start", axis.unit))
        // One label per whole day (or hour) when that is not too many.
        .x_labels(if x_max <= 16.0 { x_max.floor() as usize + 1 } else { 12 })
        .x_label_formatter(&|x| format!("{x:.1}").trim_end_matches(".0").to_owned())
        .light_line_style(RGBColor(235, 235, 235))
}

/// Axes for shares (0–100 %) over the run, with a caption.
pub(super) fn share_axes<'a, 'b>(
    area: &'a Area<'b>,
    caption: String,
    font: u32,
    axis: &Axis,
) -> Result<Chart<'a, 'b>, DrawError> {
    let mut chart = time_chart(area, caption, font, axis, 1.05, false)?;
    time_mesh(&mut chart.configure_mesh(), axis)
        .y_labels(6)
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
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
/// Mbit/s (right axis), each the most seen in its sample period. With no
/// bandwidth limit anywhere bytes move in no time and egress is not
/// measured: the panel then has no egress axis and no egress line.
fn draw_storm(area: &Area<'_>, report: &Report, axis: &Axis) -> Result<(), DrawError> {
    let c = &report.curve;
    let d = &report.downloads;
    let mbit = |bps: f64| bps * 8.0 / 1e6;
    let limit = d.egress_limit_bps.map(mbit);
    let measured = limit.is_some() || d.peak_egress_bps > 0.0;
    let top_downloads = (c.downloads.iter().copied().max().unwrap_or(0).max(1) as f64) * 1.1;
    let chart = time_chart(area, storm_caption(report), 16, axis, top_downloads, measured)?;
    let points = |ys: Vec<f64>| time_points(report, axis, &ys);
    let downloads = points(c.downloads.iter().map(|&n| n as f64).collect());
    let mut entries = vec![("downloads".to_owned(), DOWNLOADS_COLOUR)];
    if measured {
        let egress = points(c.egress_bps.iter().map(|&b| mbit(b)).collect());
        let top = egress.iter().map(|p| p.1).fold(limit.unwrap_or(0.0), f64::max).max(1.0) * 1.1;
        let mut chart = chart.set_secondary_coord(0f64..axis.max, 0f64..top);
        downloads_mesh(&mut chart.configure_mesh(), axis)?;
        chart.configure_secondary_axes().y_desc("egress, Mbit/s").draw()?;
        chart.draw_series(LineSeries::new(downloads, DOWNLOADS_COLOUR.stroke_width(2)))?;
        chart.draw_secondary_series(LineSeries::new(egress, EGRESS_COLOUR.stroke_width(2)))?;
        if let Some(l) = limit {
            chart.draw_secondary_series(DashedLineSeries::new(
                vec![(0.0, l), (axis.max, l)],
                6,
                4,
                EGRESS_COLOUR.mix(0.6).stroke_width(1),
            ))?;
        }
        entries.push(("egress".to_owned(), EGRESS_COLOUR));
    } else {
        let mut chart = chart;
        downloads_mesh(&mut chart.configure_mesh(), axis)?;
        chart.draw_series(LineSeries::new(downloads, DOWNLOADS_COLOUR.stroke_width(2)))?;
    }
    legend(area, &entries)
}

/// The storm panel's mesh: the time axis and the downloads' axis.
fn downloads_mesh(mesh: &mut Mesh<'_, '_, '_>, axis: &Axis) -> Result<(), DrawError> {
    time_mesh(mesh, axis)
        .y_desc("downloads in progress")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
}

/// The storm panel's caption: the peak, and the limit and how long the link
/// was saturated when there is one.
fn storm_caption(report: &Report) -> String {
    let d = &report.downloads;
    match d.egress_limit_bps {
        Some(l) => format!(
            "download storm: {} at most at once, egress limit {:.0} Mbit/s, saturated {}",
            d.peak_concurrent,
            l * 8.0 / 1e6,
            crate::clock::short(std::time::Duration::from_secs_f64(d.saturated_s))
        ),
        None => format!(
            "download storm: {} at most at once, egress unlimited",
            d.peak_concurrent
        ),
    }
}

/// A series over the run's sample times in axis units, thinned to at most
/// [`MAX_POINTS`].
fn time_points(report: &Report, axis: &Axis, ys: &[f64]) -> Vec<(f64, f64)> {
    let times = &report.curve.times_s;
    let stride = times.len().div_ceil(MAX_POINTS).max(1);
    times
        .iter()
        .zip(ys)
        .step_by(stride)
        .map(|(t, y)| (axis.x(*t), *y))
        .collect()
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
    let mut chart = share_axes(area, format!("share of the {name} on each version"), 16, axis)?;
    draw_events(&mut chart, report, axis, beta_panel)?;
    let mut shown = Vec::new();
    for (i, version) in c.versions.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let points = time_points(report, axis, &data[i]);
        if points.iter().all(|(_, s)| *s == 0.0) {
            continue;
        }
        chart.draw_series(LineSeries::new(points, colour.stroke_width(2)))?;
        shown.push((version.to_string(), colour));
    }
    // The legend, drawn by hand in the panel's right margin, clear of the curves.
    legend(area, &shown)
}

/// The timeline's events on a share panel: a dashed line each, labelled.
/// Promotes, rollbacks and the like are labelled on every panel; builds
/// landing only on the beta panel, where they matter.
fn draw_events(chart: &mut Chart<'_, '_>, report: &Report, axis: &Axis, beta_panel: bool) -> Result<(), DrawError> {
    // Labels already placed: (x, row). A label takes the lowest row no
    // nearby label uses, so events close in time stack instead of overlapping.
    let mut placed: Vec<(f64, usize)> = Vec::new();
    let near = axis.max * 0.12;
    for entry in &report.timeline {
        let x = axis.x(entry.at_s);
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
        let anchor = if x > axis.max * 0.8 { HPos::Right } else { HPos::Left };
        let vpos = if publish { VPos::Bottom } else { VPos::Top };
        let font = ("sans-serif", 12)
            .into_font()
            .color(&colour)
            .pos(Pos::new(anchor, vpos));
        chart.draw_series(std::iter::once(Text::new(format!(" {text} "), (x, y), font)))?;
    }
    Ok(())
}
