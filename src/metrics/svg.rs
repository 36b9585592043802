//! `convergence.svg`: the share of machines on each version over time (the
//! whole fleet, the stable channel, the beta channel), the share powered
//! on, the download storm, and each promote and rollback up close. The
//! timeline's events are grey lines across every time panel, labelled in a
//! lane of their own above the top one; the time panels share one x axis,
//! pixel for pixel.

mod events;
mod palette;
mod panels;

use std::ops::Range;

use plotters::chart::MeshStyle;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use super::report::Report;
use events::{Mark, Slot};
pub(crate) use palette::version_colour;

/// What plotters reports when drawing on the SVG backend fails.
pub(super) type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// Why an SVG could not be drawn (the backend writes to a string, so in
/// practice a layout or font problem).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SvgError(#[from] DrawError);

/// The chart's width, pixels.
const WIDTH: i32 = 1280;
const MARGIN: i32 = 8;
/// Left of every plot: its y axis.
const Y_AREA: i32 = 52;
/// Below every plot: its x axis.
const X_AREA: i32 = 32;
/// Right of every full-width plot: the right-hand axis when the panel has
/// one, then the legend; the same for every panel, so their x axes line up.
const RIGHT: i32 = 200;
const RIGHT_AXIS: i32 = 60;
const LEGEND_W: i32 = 140;
/// Right of a zoomed plot: its legend.
const ZOOM_RIGHT: i32 = 150;
const ZOOMS_PER_ROW: usize = 2;
/// Heights, pixels, of the title and of each panel without its lane.
const TITLE_H: i32 = 40;
const SHARE_H: i32 = 250;
const NOTE_H: i32 = 30;
const ONLINE_H: i32 = 160;
const STORM_H: i32 = 250;
const ZOOM_H: i32 = 270;
/// Space above a plot that has no lane.
const TOP_GAP: i32 = 8;
const CAPTION_FONT: u32 = 16;
/// Top of a share axis: a little above 100 %.
const SHARE_TOP: f64 = 1.05;
/// Most points drawn per line; longer curves are thinned evenly.
const MAX_POINTS: usize = 1500;

/// A plot's pixel rectangle in the SVG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Rect {
    /// Left edge.
    pub x0: i32,
    /// Right edge.
    pub x1: i32,
    /// Top edge.
    pub y0: i32,
    /// Bottom edge.
    pub y1: i32,
}

/// A panel as the report page's hover values need it: where its plot is,
/// what time its edges stand for, and the values of its series.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HoverPanel {
    /// The plot.
    #[serde(flatten)]
    pub rect: Rect,
    /// What times are counted from on this panel (seconds from the start)...
    pub origin: f64,
    /// ...and what happened then: `start`, `the promote`.
    pub origin_name: String,
    /// Seconds from the start at the plot's left edge.
    pub t0: f64,
    /// At its right edge.
    pub t1: f64,
    /// The first sample's time, seconds from the start.
    pub from: f64,
    /// Seconds between samples.
    pub every: f64,
    /// Samples.
    pub n: usize,
    /// The series drawn.
    pub series: Vec<HoverSeries>,
}

/// A series' values for hovering.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HoverSeries {
    /// Its legend's words.
    pub label: String,
    /// `#rrggbb`.
    pub colour: String,
    /// `share` (0–1), `count` or `Mbit/s`.
    pub unit: &'static str,
    /// Left out of the hover text while 0 (a version nobody runs then).
    pub omit_zero: bool,
    /// (sample, value) where the value changes; it holds until the next.
    pub changes: Vec<(usize, f64)>,
}

impl HoverSeries {
    fn new(label: impl Into<String>, colour: RGBColor, unit: &'static str, values: &[f64]) -> Self {
        let mut changes: Vec<(usize, f64)> = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            if changes.last().is_none_or(|&(_, last)| last != v) {
                changes.push((i, v));
            }
        }
        let RGBColor(r, g, b) = colour;
        Self {
            label: label.into(),
            colour: format!("#{r:02x}{g:02x}{b:02x}"),
            unit,
            omit_zero: false,
            changes,
        }
    }
}

/// The chart, and where its panels are.
pub(crate) struct Drawn {
    /// The SVG document.
    pub svg: String,
    /// Every plot, top to bottom, left to right.
    pub panels: Vec<HoverPanel>,
}

/// Renders the report's curves as an SVG document.
pub fn convergence_svg(report: &Report) -> Result<String, SvgError> {
    Ok(chart(report)?.svg)
}

/// The chart and its panels' places.
pub(crate) fn chart(report: &Report) -> Result<Drawn, SvgError> {
    let mut svg = String::new();
    let panels = panels::draw(report, &mut svg)?;
    Ok(Drawn { svg, panels })
}

/// A time axis: its unit, where 0 is, and the span shown, in units.
pub(super) struct Axis {
    scale: f64,
    origin: f64,
    min: f64,
    /// The end of the span shown, in axis units.
    pub(super) max: f64,
    desc: String,
}

/// The unit a span reads best in: days past two days, hours past two
/// hours, minutes past three minutes, seconds below.
fn unit_for(seconds: f64) -> (&'static str, f64) {
    if seconds > 2.0 * 86_400.0 {
        ("days", 86_400.0)
    } else if seconds > 2.0 * 3600.0 {
        ("hours", 3600.0)
    } else if seconds > 180.0 {
        ("minutes", 60.0)
    } else {
        ("seconds", 1.0)
    }
}

impl Axis {
    /// A whole run, from its start.
    pub(super) fn for_span(seconds: f64) -> Self {
        let (unit, scale) = unit_for(seconds);
        Self {
            scale,
            origin: 0.0,
            min: 0.0,
            max: seconds / scale,
            desc: format!("{unit} since start"),
        }
    }

    /// From `from` to `to` (seconds from the start), counted from `at`, the
    /// `what` it follows.
    fn for_window(from: f64, to: f64, at: f64, what: &str) -> Self {
        let (unit, scale) = unit_for(to - at);
        Self {
            scale,
            origin: at,
            min: (from - at) / scale,
            max: (to - at) / scale,
            desc: format!("{unit} after the {what}"),
        }
    }

    /// Seconds from the start to axis units.
    pub(super) fn x(&self, seconds: f64) -> f64 {
        (seconds - self.origin) / self.scale
    }

    /// Axis units to seconds from the start.
    fn seconds(&self, x: f64) -> f64 {
        self.origin + x * self.scale
    }

    /// Whether a time is on the axis.
    fn shows(&self, seconds: f64) -> bool {
        (self.min..=self.max).contains(&self.x(seconds))
    }

    /// The pixel column of a time on a plot spanning columns `x0..x1`.
    fn px(&self, seconds: f64, (x0, x1): (i32, i32)) -> i32 {
        let f = (self.x(seconds) - self.min) / (self.max - self.min).max(f64::MIN_POSITIVE);
        x0 + (f * f64::from(x1 - x0)).round() as i32
    }
}

pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
pub(super) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type Mesh<'a, 'b, 'c> = MeshStyle<'a, 'b, RangedCoordf64, RangedCoordf64, SVGBackend<'c>>;

/// Where a plot sits in its area: the space above it (its lane) and to its
/// right, and whether that space begins with a right-hand axis.
#[derive(Debug, Clone, Copy)]
struct Frame {
    top: i32,
    right: i32,
    right_axis: bool,
}

/// A chart over time as every panel lays it out: the margins, the label
/// areas and the frame, x over the axis and y over `y`. A right-hand axis
/// must be set before the mesh is drawn (the mesh labels every label area
/// the chart still holds).
fn time_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: Option<(&str, u32)>,
    axis: &Axis,
    y: Range<f64>,
    frame: Frame,
) -> Result<Chart<'a, 'b>, DrawError> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(MARGIN)
        .margin_top(frame.top)
        .x_label_area_size(X_AREA)
        .y_label_area_size(Y_AREA);
    if let Some((text, font)) = caption {
        builder.caption(text, ("sans-serif", font));
    }
    if frame.right_axis {
        builder
            .margin_right(frame.right - RIGHT_AXIS)
            .right_y_label_area_size(RIGHT_AXIS);
    } else {
        builder.margin_right(frame.right);
    }
    builder.build_cartesian_2d(axis.min..axis.max, y)
}

/// The time axis and the light grid every panel's mesh shares.
fn time_mesh<'m, 'a, 'b, 'c>(mesh: &'m mut Mesh<'a, 'b, 'c>, axis: &Axis) -> &'m mut Mesh<'a, 'b, 'c> {
    let span = axis.max - axis.min;
    // One label per whole unit when that is not too many.
    let labels = if span <= 16.0 { span.floor() as usize + 1 } else { 12 };
    mesh.x_desc(axis.desc.as_str())
        .x_labels(labels.max(4))
        .x_label_formatter(&|x| format!("{x:.1}").trim_end_matches(".0").to_owned())
        .light_line_style(RGBColor(235, 235, 235))
}

/// The mesh of a share panel: time, and 0–100 %.
fn share_mesh(chart: &mut Chart<'_, '_>, axis: &Axis) -> Result<(), DrawError> {
    time_mesh(&mut chart.configure_mesh(), axis)
        .y_labels(6)
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .draw()
}

/// Axes for shares (0–100 %) over time, with a caption, the legend in a
/// 150-pixel right margin (the comparison chart's).
pub(super) fn share_axes<'a, 'b>(
    area: &'a Area<'b>,
    caption: String,
    font: u32,
    axis: &Axis,
) -> Result<Chart<'a, 'b>, DrawError> {
    let frame = Frame {
        top: MARGIN,
        right: 150,
        right_axis: false,
    };
    let mut chart = time_chart(area, Some((&caption, font)), axis, 0.0..SHARE_TOP, frame)?;
    share_mesh(&mut chart, axis)?;
    Ok(chart)
}

/// The pixel rectangle of a chart's plot.
fn plot_rect(chart: &Chart<'_, '_>) -> Rect {
    let (x, y) = chart.plotting_area().get_pixel_range();
    Rect {
        x0: x.start,
        x1: x.end,
        y0: y.start,
        y1: y.end,
    }
}

/// A legend entry: words, colour, line width.
pub(super) type Entry = (String, RGBColor, u32);

/// A legend drawn by hand from (`x0`, `y0`) down, in a margin clear of the curves.
pub(super) fn legend(area: &Area<'_>, x0: i32, y0: i32, entries: &[Entry]) -> Result<(), DrawError> {
    for (k, (label, colour, width)) in entries.iter().enumerate() {
        let y = y0 + 15 * k as i32;
        area.draw(&PathElement::new(
            vec![(x0, y), (x0 + 22, y)],
            colour.stroke_width(*width),
        ))?;
        let font = ("sans-serif", 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(label.clone(), (x0 + 28, y), font))?;
    }
    Ok(())
}

/// A series over sample times in axis units, thinned to at most [`MAX_POINTS`].
fn time_points(times: &[f64], axis: &Axis, ys: &[f64]) -> Vec<(f64, f64)> {
    let stride = times.len().div_ceil(MAX_POINTS).max(1);
    times
        .iter()
        .zip(ys)
        .step_by(stride)
        .map(|(t, y)| (axis.x(*t), *y))
        .collect()
}

/// The lane of labels above a plot: each event's slot, and its height.
struct Lane {
    slots: Vec<Slot>,
    height: i32,
}

impl Lane {
    /// Packs the labels of the events `axis` shows, over a plot planned to
    /// span columns `x`, labels reaching at most column `right`.
    fn plan(marks: &[Mark], axis: &Axis, x: (i32, i32), right: i32) -> Self {
        let placed: Vec<(i32, &Mark)> = marks
            .iter()
            .filter(|m| axis.shows(m.t_s))
            .map(|m| (axis.px(m.t_s, x), m))
            .collect();
        let slots = events::pack(&placed, right);
        Self {
            height: events::lane_height(events::rows(&slots)),
            slots,
        }
    }

    /// The space above the plot.
    fn top(&self) -> i32 {
        self.height.max(TOP_GAP)
    }
}
