//! The chart's panels, top to bottom: the whole fleet (under the events'
//! lane), the stable and beta channels, the share powered on, the download
//! storm, then each promote and rollback up close, two to a row.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::events::{self, Mark};
use super::{
    Area, Axis, CAPTION_FONT, DrawError, Entry, Frame, HoverPanel, HoverSeries, LEGEND_W, Lane, MARGIN, NOTE_H,
    ONLINE_H, RIGHT, Rect, SHARE_H, SHARE_TOP, STORM_H, TITLE_H, TOP_GAP, WIDTH, Y_AREA, ZOOM_H, ZOOM_RIGHT,
    ZOOMS_PER_ROW, plot_rect, share_mesh, time_chart, time_mesh, time_points, version_colour,
};
use crate::metrics::report::Report;
use crate::metrics::zoom::Zoom;
use crate::protocol::Version;

const ONLINE_COLOUR: RGBColor = RGBColor(60, 110, 150);
const DOWNLOADS_COLOUR: RGBColor = RGBColor(31, 119, 180);
const EGRESS_COLOUR: RGBColor = RGBColor(214, 39, 40);
const NOTE_COLOUR: RGBColor = RGBColor(110, 110, 110);

/// How a version is drawn. Builds promoted or rolled back are drawn
/// thicker, and their legend says which.
struct VersionStyle {
    colour: RGBColor,
    width: u32,
    label: String,
}

fn version_styles(report: &Report) -> Vec<VersionStyle> {
    let versions = &report.curve.versions;
    versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let build = report.builds.iter().find(|b| b.version == *v);
            let note = match build {
                Some(b) if b.rolled_back_s.is_some() => " rolled back",
                Some(b) if b.promoted_s.is_some() => " promoted",
                _ => "",
            };
            VersionStyle {
                colour: version_colour(i, versions.len()),
                width: if note.is_empty() { 2 } else { 4 },
                label: format!("{v}{note}"),
            }
        })
        .collect()
}

/// A panel (or, for zooms, a row of them).
enum Part<'r> {
    Share(&'static str, &'r [Vec<f64>]),
    Note(&'static str),
    Online,
    Storm,
    Zooms(&'r [Zoom]),
}

/// The panels: a channel no machine was ever on is a line saying so.
fn parts(report: &Report) -> Vec<Part<'_>> {
    let c = &report.curve;
    let empty = |d: &[Vec<f64>]| d.iter().all(|s| s.iter().all(|&x| x == 0.0));
    let mut parts = vec![Part::Share("whole fleet", &c.fleet)];
    for (name, data, note) in [
        ("stable channel", &c.stable, "stable channel: no machines on stable"),
        ("beta channel", &c.beta, "beta channel: no machines on beta"),
    ] {
        parts.push(if empty(data) {
            Part::Note(note)
        } else {
            Part::Share(name, data)
        });
    }
    parts.extend([Part::Online, Part::Storm]);
    parts.extend(report.zooms.chunks(ZOOMS_PER_ROW).map(Part::Zooms));
    parts
}

/// What the panels share while they are drawn.
struct Ctx<'r, 'a, 'b> {
    report: &'r Report,
    root: &'a Area<'b>,
    axis: Axis,
    marks: &'r [Mark],
    styles: Vec<VersionStyle>,
    hover: Vec<HoverPanel>,
}

/// A zoom's axis and lane, planned before anything is drawn.
struct ZoomPlan {
    axis: Axis,
    lane: Lane,
}

/// Plans each zoom's axis and lane at the column it will be drawn in.
fn zoom_plans(report: &Report, marks: &[Mark]) -> Vec<ZoomPlan> {
    let mut plans = Vec::new();
    for row in report.zooms.chunks(ZOOMS_PER_ROW) {
        let width = WIDTH / row.len() as i32;
        for (c, z) in row.iter().enumerate() {
            let left = c as i32 * width;
            let times = &z.curve.times_s;
            let (from, to) = (
                times.first().copied().unwrap_or(z.at_s),
                times.last().copied().unwrap_or(z.at_s),
            );
            let axis = Axis::for_window(from, to, z.at_s, &z.action);
            let x = (left + MARGIN + Y_AREA, left + width - ZOOM_RIGHT);
            let lane = Lane::plan(marks, &axis, x, left + width - MARGIN);
            plans.push(ZoomPlan { axis, lane });
        }
    }
    plans
}

/// Draws the whole chart into `out`; where each panel is.
pub(super) fn draw(report: &Report, out: &mut String) -> Result<Vec<HoverPanel>, DrawError> {
    let marks = events::marks(report);
    let axis = Axis::for_span(report.scenario.duration_s);
    let lane = Lane::plan(&marks, &axis, (MARGIN + Y_AREA, WIDTH - RIGHT), WIDTH - MARGIN);
    let zooms = zoom_plans(report, &marks);
    let parts = parts(report);
    let mut zoom_rows = zooms.chunks(ZOOMS_PER_ROW);
    let row_top = |row: &[ZoomPlan]| row.iter().map(|p| p.lane.top()).max().unwrap_or(TOP_GAP);
    let heights: Vec<i32> = parts
        .iter()
        .enumerate()
        .map(|(k, p)| match p {
            Part::Share(..) if k == 0 => SHARE_H + lane.top() - TOP_GAP,
            Part::Share(..) => SHARE_H,
            Part::Note(_) => NOTE_H,
            Part::Online => ONLINE_H,
            Part::Storm => STORM_H,
            Part::Zooms(_) => ZOOM_H + zoom_rows.next().map_or(TOP_GAP, row_top) - TOP_GAP,
        })
        .collect();
    let breaks: Vec<i32> = heights
        .iter()
        .scan(TITLE_H, |y, h| {
            let at = *y;
            *y += h;
            Some(at)
        })
        .collect();
    let total = TITLE_H + heights.iter().sum::<i32>();
    let root = SVGBackend::with_string(out, (WIDTH as u32, total as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_by_breakpoints([] as [i32; 0], &breaks);
    title(&areas[0], report)?;
    let mut ctx = Ctx {
        report,
        root: &root,
        axis,
        marks: &marks,
        styles: version_styles(report),
        hover: Vec::new(),
    };
    let mut zoom_rows = zooms.chunks(ZOOMS_PER_ROW);
    for (k, (part, area)) in parts.iter().zip(&areas[1..]).enumerate() {
        match part {
            Part::Share(name, data) => share(&mut ctx, area, name, data, (k == 0).then_some(&lane))?,
            Part::Note(text) => note(area, text)?,
            Part::Online => online(&mut ctx, area)?,
            Part::Storm => storm(&mut ctx, area)?,
            Part::Zooms(row) => {
                let plans = zoom_rows.next().unwrap_or_default();
                let top = row_top(plans);
                for ((z, plan), a) in row.iter().zip(plans).zip(area.split_evenly((1, row.len()))) {
                    zoom(&mut ctx, &a, z, plan, top)?;
                }
            }
        }
    }
    root.present()?;
    Ok(ctx.hover)
}

fn title(area: &Area<'_>, report: &Report) -> Result<(), DrawError> {
    let s = &report.scenario;
    let text = format!("{} — {} machines, seed {}, from {}", s.name, s.fleet, s.seed, s.start);
    let font = ("sans-serif", 22)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    area.draw(&Text::new(text, (WIDTH / 2, 8), font))
}

/// A line of text in place of a panel with nothing to show.
fn note(area: &Area<'_>, text: &str) -> Result<(), DrawError> {
    let font = ("sans-serif", CAPTION_FONT)
        .into_font()
        .color(&NOTE_COLOUR)
        .pos(Pos::new(HPos::Left, VPos::Center));
    area.draw(&Text::new(text.to_owned(), (MARGIN + Y_AREA, NOTE_H / 2), font))
}

impl Ctx<'_, '_, '_> {
    /// The events `axis` shows as lines across the plot, and labelled in
    /// the lane above it when the plot has one.
    fn events(&self, rect: Rect, axis: &Axis, lane: Option<&Lane>) -> Result<(), DrawError> {
        let placed: Vec<(i32, &Mark)> = self
            .marks
            .iter()
            .filter(|m| axis.shows(m.t_s))
            .map(|m| (axis.px(m.t_s, (rect.x0, rect.x1)), m))
            .collect();
        events::draw_lines(self.root, rect, &placed)?;
        match lane {
            Some(l) => events::draw_lane(self.root, rect, &placed, &l.slots),
            None => Ok(()),
        }
    }

    /// One line per version with a share above 0 somewhere, emphasised
    /// builds last (on top); the legend's entries, oldest first, and the
    /// series for hovering.
    fn versions(
        &self,
        chart: &mut super::Chart<'_, '_>,
        axis: &Axis,
        (times, versions, data): (&[f64], &[Version], &[Vec<f64>]),
    ) -> Result<(Vec<Entry>, Vec<HoverSeries>), DrawError> {
        let all = &self.report.curve.versions;
        let shown: Vec<(usize, &VersionStyle)> = versions
            .iter()
            .enumerate()
            .filter(|(i, _)| data[*i].iter().any(|&s| s > 0.0))
            .filter_map(|(i, v)| all.iter().position(|x| x == v).map(|k| (i, &self.styles[k])))
            .collect();
        let mut order = shown.clone();
        order.sort_by_key(|(_, s)| s.width);
        for &(i, s) in &order {
            let points = time_points(times, axis, &data[i]);
            chart.draw_series(LineSeries::new(points, s.colour.stroke_width(s.width)))?;
        }
        let entries = shown
            .iter()
            .map(|(_, s)| (s.label.clone(), s.colour, s.width))
            .collect();
        let series = shown
            .iter()
            .map(|&(i, s)| HoverSeries {
                omit_zero: true,
                ..HoverSeries::new(s.label.clone(), s.colour, "share", &data[i])
            })
            .collect();
        Ok((entries, series))
    }

    /// The hover entry of a full-width panel over the report's samples.
    fn push_hover(&mut self, rect: Rect, series: Vec<HoverSeries>) {
        let c = &self.report.curve;
        self.hover.push(HoverPanel {
            rect,
            origin: 0.0,
            origin_name: "start".into(),
            t0: 0.0,
            t1: self.report.scenario.duration_s,
            from: 0.0,
            every: c.every_s,
            n: c.times_s.len(),
            series,
        });
    }
}

/// A channel's (or the fleet's) share on each version.
fn share(
    ctx: &mut Ctx<'_, '_, '_>,
    area: &Area<'_>,
    name: &str,
    data: &[Vec<f64>],
    lane: Option<&Lane>,
) -> Result<(), DrawError> {
    let caption = match lane {
        Some(_) => {
            format!("share of the {name} on each version; above, the events (a bare version: that build landed)")
        }
        None => format!("share of the {name} on each version"),
    };
    let below = area.titled(&caption, ("sans-serif", CAPTION_FONT))?;
    let frame = Frame {
        top: lane.map_or(TOP_GAP, Lane::top),
        right: RIGHT,
        right_axis: false,
    };
    let mut chart = time_chart(&below, None, &ctx.axis, 0.0..SHARE_TOP, frame)?;
    share_mesh(&mut chart, &ctx.axis)?;
    let rect = plot_rect(&chart);
    ctx.events(rect, &ctx.axis, lane)?;
    let c = &ctx.report.curve;
    let (entries, series) = ctx.versions(&mut chart, &ctx.axis, (&c.times_s, &c.versions, data))?;
    super::legend(ctx.root, WIDTH - LEGEND_W, rect.y0 + 6, &entries)?;
    ctx.push_hover(rect, series);
    Ok(())
}

/// The share of the fleet powered on: outages and nights show as dips.
fn online(ctx: &mut Ctx<'_, '_, '_>, area: &Area<'_>) -> Result<(), DrawError> {
    let below = area.titled("share of the fleet powered on", ("sans-serif", CAPTION_FONT))?;
    let frame = Frame {
        top: TOP_GAP,
        right: RIGHT,
        right_axis: false,
    };
    let mut chart = time_chart(&below, None, &ctx.axis, 0.0..SHARE_TOP, frame)?;
    time_mesh(&mut chart.configure_mesh(), &ctx.axis)
        .y_labels(3)
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .draw()?;
    let rect = plot_rect(&chart);
    ctx.events(rect, &ctx.axis, None)?;
    let c = &ctx.report.curve;
    let points = time_points(&c.times_s, &ctx.axis, &c.online);
    chart.draw_series(
        AreaSeries::new(points, 0.0, ONLINE_COLOUR.mix(0.18)).border_style(ONLINE_COLOUR.stroke_width(2)),
    )?;
    super::legend(
        ctx.root,
        WIDTH - LEGEND_W,
        rect.y0 + 6,
        &[("powered on".into(), ONLINE_COLOUR, 2)],
    )?;
    let series = vec![HoverSeries::new("powered on", ONLINE_COLOUR, "share", &c.online)];
    ctx.push_hover(rect, series);
    Ok(())
}

/// The download storm: downloads in progress (left axis) and egress in
/// Mbit/s (right axis), each the most seen in its sample period. With no
/// bandwidth limit anywhere bytes move in no time and egress is not
/// measured: the panel then has no egress axis and no egress line.
fn storm(ctx: &mut Ctx<'_, '_, '_>, area: &Area<'_>) -> Result<(), DrawError> {
    let (report, axis) = (ctx.report, &ctx.axis);
    let (c, d) = (&report.curve, &report.downloads);
    let mbit = |bps: f64| bps * 8.0 / 1e6;
    let limit = d.egress_limit_bps.map(mbit);
    let measured = limit.is_some() || d.peak_egress_bps > 0.0;
    let below = area.titled(&storm_caption(report), ("sans-serif", CAPTION_FONT))?;
    let top_downloads = (c.downloads.iter().copied().max().unwrap_or(0).max(1) as f64) * 1.1;
    let frame = Frame {
        top: TOP_GAP,
        right: RIGHT,
        right_axis: measured,
    };
    let chart = time_chart(&below, None, axis, 0.0..top_downloads, frame)?;
    let downloads_f: Vec<f64> = c.downloads.iter().map(|&n| n as f64).collect();
    let downloads = time_points(&c.times_s, axis, &downloads_f);
    let mut entries = vec![("downloads".to_owned(), DOWNLOADS_COLOUR, 2)];
    let mut series = vec![HoverSeries::new("downloads", DOWNLOADS_COLOUR, "count", &downloads_f)];
    let rect;
    if measured {
        let egress_f: Vec<f64> = c.egress_bps.iter().map(|&b| mbit(b)).collect();
        let egress = time_points(&c.times_s, axis, &egress_f);
        let top = egress.iter().map(|p| p.1).fold(limit.unwrap_or(0.0), f64::max).max(1.0) * 1.1;
        let mut chart = chart.set_secondary_coord(axis.min..axis.max, 0f64..top);
        downloads_mesh(&mut chart.configure_mesh(), axis)?;
        chart
            .configure_secondary_axes()
            .y_desc("egress, Mbit/s")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        rect = plot_rect(&chart);
        ctx.events(rect, axis, None)?;
        chart.draw_series(LineSeries::new(downloads, DOWNLOADS_COLOUR.stroke_width(2)))?;
        chart.draw_secondary_series(LineSeries::new(egress, EGRESS_COLOUR.stroke_width(2)))?;
        if let Some(l) = limit {
            chart.draw_secondary_series(DashedLineSeries::new(
                vec![(axis.min, l), (axis.max, l)],
                6,
                4,
                EGRESS_COLOUR.mix(0.6).stroke_width(1),
            ))?;
        }
        entries.push(("egress".to_owned(), EGRESS_COLOUR, 2));
        series.push(HoverSeries::new("egress", EGRESS_COLOUR, "Mbit/s", &egress_f));
    } else {
        let mut chart = chart;
        downloads_mesh(&mut chart.configure_mesh(), axis)?;
        rect = plot_rect(&chart);
        ctx.events(rect, axis, None)?;
        chart.draw_series(LineSeries::new(downloads, DOWNLOADS_COLOUR.stroke_width(2)))?;
    }
    super::legend(ctx.root, WIDTH - LEGEND_W, rect.y0 + 6, &entries)?;
    ctx.push_hover(rect, series);
    Ok(())
}

/// The storm panel's mesh: the time axis and the downloads' axis.
fn downloads_mesh(mesh: &mut super::Mesh<'_, '_, '_>, axis: &Axis) -> Result<(), DrawError> {
    time_mesh(mesh, axis)
        .y_max_light_lines(2)
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

/// A promote or rollback up close: the share of the machines it moves on
/// each version, from just before it.
fn zoom(ctx: &mut Ctx<'_, '_, '_>, area: &Area<'_>, z: &Zoom, plan: &ZoomPlan, top: i32) -> Result<(), DrawError> {
    let below = area.titled(&zoom_caption(z), ("sans-serif", CAPTION_FONT))?;
    let frame = Frame {
        top,
        right: ZOOM_RIGHT,
        right_axis: false,
    };
    let axis = &plan.axis;
    let mut chart = time_chart(&below, None, axis, 0.0..SHARE_TOP, frame)?;
    share_mesh(&mut chart, axis)?;
    let rect = plot_rect(&chart);
    ctx.events(rect, axis, Some(&plan.lane))?;
    let c = &z.curve;
    let data = if z.shows == "stable" { &c.stable } else { &c.fleet };
    let (entries, series) = ctx.versions(&mut chart, axis, (&c.times_s, &c.versions, data))?;
    super::legend(ctx.root, rect.x1 + 10, rect.y0 + 6, &entries)?;
    ctx.hover.push(HoverPanel {
        rect,
        origin: z.at_s,
        origin_name: format!("the {}", z.action),
        t0: axis.seconds(axis.min),
        t1: axis.seconds(axis.max),
        from: c.times_s.first().copied().unwrap_or(z.at_s),
        every: c.every_s,
        n: c.times_s.len(),
        series,
    });
    Ok(())
}

/// What a zoomed panel shows and how long the move took: until 90 % of
/// the machines it moves had moved, or how many did and when the last did.
fn zoom_caption(z: &Zoom) -> String {
    let (whose, how) = if z.shows == "stable" {
        ("the stable channel", "on it")
    } else {
        ("the whole fleet", "off it")
    };
    let time = |s: f64| crate::clock::short(std::time::Duration::from_secs_f64(s));
    let settled = match (z.t90_s, z.last_s) {
        (Some(s), _) => format!("90 % {how} within {}", time(s)),
        (None, Some(s)) => format!("{} of {} {how}, the last after {}", z.moved, z.population, time(s)),
        (None, None) => format!("none of {} moved", z.population),
    };
    format!("{} {} up close: {whose}, {settled}", z.action, z.version)
}
