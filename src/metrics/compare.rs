//! Two reports side by side: the figures in one table and both curves in
//! one chart, for "what does this policy change do" questions.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::Duration;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Convergence;
use super::inputs::InputChange;
use super::recorder::TimelineEntry;
use super::report::Report;
use super::svg::{Area, Axis, Chart, legend, share_axes, version_colour};
use crate::agent::LogLevel;
use crate::clock::short;
use crate::protocol::{Channel, Version};
use crate::scenario::LogFilter;

fn time(s: Option<f64>) -> String {
    s.map_or_else(|| "never".to_owned(), |s| short(Duration::from_secs_f64(s.max(0.0))))
}

fn delta_time(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if (a - b).abs() < 0.5 => "=".into(),
        (Some(a), Some(b)) => format!(
            "{}{} ({:+.0}%)",
            if b > a { "+" } else { "-" },
            time(Some((b - a).abs())),
            (b / a.max(1e-9) - 1.0) * 100.0
        ),
        (None, None) => "=".into(),
        (Some(_), None) => "B never".into(),
        (None, Some(_)) => "only B".into(),
    }
}

fn delta(a: f64, b: f64) -> String {
    if (a - b).abs() < 1e-9 {
        "=".into()
    } else {
        format!("{:+}", b - a)
    }
}

/// Both runs' figures and what set them apart: the inputs that differ, then
/// one table of figures (rows equal on both sides left out unless `all`),
/// what the counters mean, and the chart. `names` label the two sides.
pub fn compare_markdown(a: &Report, b: &Report, names: (&str, &str), all: bool) -> String {
    let mut md = String::new();
    let (na, nb) = names;
    let _ = writeln!(md, "# {na} vs {nb}\n");
    let _ = writeln!(
        md,
        "- **A** {na}: {} machines, seed {}, {}\n- **B** {nb}: {} machines, seed {}, {}\n",
        a.scenario.fleet,
        a.scenario.seed,
        a.scenario.transport,
        b.scenario.fleet,
        b.scenario.seed,
        b.scenario.transport
    );
    md += "## Inputs that differ\n\n";
    match input_changes(a, b) {
        Ok(changes) if changes.is_empty() => md += "None: both runs had the same scenario and transport.\n",
        Ok(changes) => {
            for c in changes {
                let _ = writeln!(md, "- `{}` {}", c.key, c.change());
            }
        }
        Err(why) => md += &format!("{why}\n"),
    }
    md += "\n## Figures\n\n";
    md += &figures_table(a, b, all);
    let _ = writeln!(md, "\n{}", super::sentences::counters_meaning());
    let _ = writeln!(
        md,
        "\n![both curves](compare.svg)\n\nIn the chart A's curves are solid and B's dashed, one colour per version; \
         events are marked `A:` or `B:`, or `A+B:` when both runs had them at the same time (B's alone dashed)."
    );
    md
}

/// The keys the two runs' scenarios set differently, and the transport if
/// it differs; why not, when a side's report does not record its inputs.
fn input_changes(a: &Report, b: &Report) -> Result<Vec<InputChange>, String> {
    for (side, r) in [("A", a), ("B", b)] {
        if r.scenario.inputs.is_null() {
            return Err(format!(
                "Not compared: {side}'s report.json does not record its scenario's inputs (an older rmmsim wrote it); \
                 compare the scenario files to see them."
            ));
        }
    }
    let mut changes = super::inputs::diff(&a.scenario.inputs, &b.scenario.inputs);
    if a.scenario.transport != b.scenario.transport {
        changes.push(InputChange::new(
            "transport",
            a.scenario.transport.as_str(),
            b.scenario.transport.as_str(),
        ));
    }
    Ok(changes)
}

/// Every figure's row, or only those that differ unless `all`, with a line
/// saying how many were left out.
fn figures_table(a: &Report, b: &Report, all: bool) -> String {
    let mut rows = convergence_rows(a, b);
    for (name, x, y) in count_rows(a, b) {
        rows.push(vec![name.to_owned(), x.to_string(), y.to_string(), delta(x, y)]);
    }
    rows.extend(final_version_rows(a, b));
    rows.extend(log_rows(a, b));
    let total = rows.len();
    if !all {
        rows.retain(|r| r[3] != "=");
    }
    let hidden = total - rows.len();
    let mut md = if rows.is_empty() {
        "Every figure is the same on both sides.\n".to_owned()
    } else {
        super::md_table_aligned(&["figure", "A", "B", "B − A"], 1, rows)
    };
    if hidden > 0 {
        let _ = writeln!(
            md,
            "\n{} equal on both sides not shown (`--all` shows them).",
            super::sentences::plural(hidden, "row")
        );
    }
    md
}

/// A convergence series: a build, the channel, and what its times count from.
type SeriesKey = (Version, Channel, String);

/// The convergence series of a report.
fn series(r: &Report) -> BTreeSet<SeriesKey> {
    r.builds
        .iter()
        .flat_map(|b| {
            b.convergence
                .iter()
                .map(move |c| (b.version, c.channel, c.reference.clone()))
        })
        .collect()
}

/// One series' figures in a report, if it has the series.
fn figures(r: &Report, k: &SeriesKey) -> Option<Convergence> {
    r.builds
        .iter()
        .filter(|b| b.version == k.0)
        .flat_map(|b| b.convergence.iter())
        .find(|c| c.channel == k.1 && c.reference == k.2)
        .map(|c| c.figures.clone())
}

/// t50, t90 and t99 of every series either report has (a time neither reached is left out).
fn convergence_rows(a: &Report, b: &Report) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for k in series(a).union(&series(b)) {
        let (fa, fb) = (figures(a, k), figures(b, k));
        for (name, pick) in [("t50", 0usize), ("t90", 1), ("t99", 2)] {
            let get = |f: &Option<Convergence>| f.as_ref().and_then(|f| [f.t50_s, f.t90_s, f.t99_s][pick]);
            let (x, y) = (get(&fa), get(&fb));
            if x.is_none() && y.is_none() {
                continue;
            }
            rows.push(vec![
                format!("{name} {} {} (from {})", k.0, k.1, k.2),
                time(x),
                time(y),
                delta_time(x, y),
            ]);
        }
    }
    rows
}

/// The counted figures: (row name, A, B).
fn count_rows(a: &Report, b: &Report) -> [(&'static str, f64, f64); 9] {
    [
        ("stranded machines", a.stranded.len() as f64, b.stranded.len() as f64),
        (
            "orphan rows",
            a.rows.server.orphaned as f64,
            b.rows.server.orphaned as f64,
        ),
        (
            "stable lag, most builds",
            a.stable_lag.max_builds as f64,
            b.stable_lag.max_builds as f64,
        ),
        ("heartbeats", a.server.heartbeats as f64, b.server.heartbeats as f64),
        ("updates sent", a.server.dispatches as f64, b.server.dispatches as f64),
        (
            "updates re-sent",
            a.server.redispatches as f64,
            b.server.redispatches as f64,
        ),
        (
            "updates succeeded",
            a.server.successes as f64,
            b.server.successes as f64,
        ),
        ("updates failed", a.server.failures as f64, b.server.failures as f64),
        ("downloads", a.server.downloads as f64, b.server.downloads as f64),
    ]
}

/// Machines on each version at the end, for every version either report ends with.
fn final_version_rows(a: &Report, b: &Report) -> Vec<Vec<String>> {
    let versions: BTreeSet<Version> = a
        .final_versions
        .keys()
        .chain(b.final_versions.keys())
        .copied()
        .collect();
    versions
        .into_iter()
        .map(|v| {
            let x = a.final_versions.get(&v).copied().unwrap_or(0) as f64;
            let y = b.final_versions.get(&v).copied().unwrap_or(0) as f64;
            vec![
                format!("machines on {v} at the end"),
                x.to_string(),
                y.to_string(),
                delta(x, y),
            ]
        })
        .collect()
}

/// What agents logged (U13), when either report has a log section: lines,
/// and per version the lines per machine-hour and those of new error
/// signatures.
fn log_rows(a: &Report, b: &Report) -> Vec<Vec<String>> {
    if a.logs.is_none() && b.logs.is_none() {
        return Vec::new();
    }
    let lines = |r: &Report| r.logs.as_ref().map_or(0, |l| l.lines) as f64;
    let mut rows = vec![number_row("log lines".into(), Some(lines(a)), Some(lines(b)))];
    let versions: BTreeSet<Version> = [a, b]
        .iter()
        .flat_map(|r| r.logs.iter().flat_map(|l| l.versions.iter().map(|v| v.version)))
        .collect();
    let new_errors = LogFilter {
        level: Some(LogLevel::Error),
        new_in: None,
    };
    for v in versions {
        let all = |r: &Report| r.logs.as_ref().and_then(|l| l.rate(v, &LogFilter::default()));
        rows.push(number_row(format!("log lines per machine-hour on {v}"), all(a), all(b)));
        let new = |r: &Report| {
            let filter = LogFilter {
                new_in: Some(v),
                ..new_errors
            };
            r.logs.as_ref().and_then(|l| l.rate(v, &filter))
        };
        rows.push(number_row(
            format!("new error lines per machine-hour on {v}"),
            new(a),
            new(b),
        ));
    }
    rows
}

/// A row of numbers to three places (`—`: none).
fn number_row(name: String, a: Option<f64>, b: Option<f64>) -> Vec<String> {
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let show = |x: Option<f64>| x.map_or_else(|| "—".to_owned(), |x| round(x).to_string());
    let diff = match (a, b) {
        (Some(x), Some(y)) if round(y - x) == 0.0 => "=".to_owned(),
        (Some(x), Some(y)) => format!("{:+}", round(y - x)),
        _ => "—".to_owned(),
    };
    vec![name, show(a), show(b), diff]
}

/// Both reports' fleet curves in one chart, one colour per version, A
/// solid and B dashed, with both runs' events marked; the caption and the
/// legend say which line style is which run.
pub fn compare_svg(a: &Report, b: &Report, names: (&str, &str)) -> Result<String, super::SvgError> {
    let mut out = String::new();
    draw(a, b, names, &mut out)?;
    Ok(out)
}

fn draw(a: &Report, b: &Report, names: (&str, &str), out: &mut String) -> Result<(), super::svg::DrawError> {
    let axis = Axis::for_span(a.scenario.duration_s.max(b.scenario.duration_s));
    let versions: Vec<Version> = a
        .curve
        .versions
        .iter()
        .chain(&b.curve.versions)
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let root = SVGBackend::with_string(out, (1280, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "share of the fleet on each version; solid: A ({}), dashed: B ({})",
        names.0, names.1
    );
    let mut chart = share_axes(&root, title, 18, &axis)?;
    draw_marks(&mut chart, &marks(a, b), &axis)?;
    let stride = |r: &Report| r.curve.times_s.len().div_ceil(1500).max(1);
    for (i, v) in versions.iter().enumerate() {
        let colour = version_colour(i, versions.len());
        for (r, dashed) in [(a, false), (b, true)] {
            let Some(k) = r.curve.versions.iter().position(|x| x == v) else {
                continue;
            };
            let points: Vec<(f64, f64)> = r
                .curve
                .times_s
                .iter()
                .zip(&r.curve.fleet[k])
                .step_by(stride(r))
                .map(|(t, s)| (axis.x(*t), *s))
                .collect();
            if dashed {
                chart.draw_series(DashedLineSeries::new(points, 6, 4, colour.stroke_width(2)))?;
            } else {
                chart.draw_series(LineSeries::new(points, colour.stroke_width(2)))?;
            }
        }
    }
    let entries: Vec<(String, RGBColor, u32)> = versions
        .iter()
        .enumerate()
        .map(|(k, v)| (v.to_string(), version_colour(k, versions.len()), 3))
        .collect();
    legend(&root, 1280 - 130, 40, &entries)?;
    styles_legend(&root, entries.len())?;
    root.present()?;
    Ok(())
}

/// Below the versions' legend: which line style is which run.
fn styles_legend(area: &Area<'_>, below: usize) -> Result<(), super::svg::DrawError> {
    let (w, _) = area.dim_in_pixel();
    let x0 = w as i32 - 130;
    let grey = RGBColor(80, 80, 80);
    for (k, (label, dashed)) in [("A: solid", false), ("B: dashed", true)].into_iter().enumerate() {
        let y = 40 + 15 * (below + 1 + k) as i32;
        let dashes: Vec<(i32, i32)> = if dashed { vec![(0, 6), (10, 16)] } else { vec![(0, 22)] };
        for (from, to) in dashes {
            area.draw(&PathElement::new(
                vec![(x0 + from, y), (x0 + to, y)],
                grey.stroke_width(3),
            ))?;
        }
        area.draw(&Text::new(label, (x0 + 28, y - 6), ("sans-serif", 12).into_font()))?;
    }
    Ok(())
}

/// An event's colour on the overlaid chart, where the two runs' marks are
/// told apart by dashes: promotes green, rollbacks red, builds landing grey,
/// anything else blue.
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

/// An event on the overlaid chart: when, its label, and how it is drawn.
#[derive(Debug, Clone, PartialEq)]
struct EventMark {
    at_s: f64,
    /// `A: promote 1.0.1`, `A+B: rollback 0.8.1`, `B: promote 1.0.1 (refused)`.
    label: String,
    colour: RGBColor,
    /// B's alone are dashed, A's and both runs' solid.
    dashed: bool,
    /// Builds landing are labelled at the bottom, the rest at the top.
    publish: bool,
}

/// Both timelines' events: one mark for an event both runs had at the same
/// second with the same fate, else one per run.
fn marks(a: &Report, b: &Report) -> Vec<EventMark> {
    let key = |e: &TimelineEntry| {
        (
            e.at_s.round() as i64,
            e.action.clone(),
            e.outcome.starts_with("refused"),
        )
    };
    let in_a: BTreeSet<_> = a.timeline.iter().map(key).collect();
    let in_b: BTreeSet<_> = b.timeline.iter().map(key).collect();
    let mark = |e: &TimelineEntry, runs: &str| {
        let refused = e.outcome.starts_with("refused");
        EventMark {
            at_s: e.at_s,
            label: format!("{runs}: {}{}", e.action, if refused { " (refused)" } else { "" }),
            colour: if refused {
                RGBColor(230, 120, 0)
            } else {
                event_colour(&e.action)
            },
            dashed: runs == "B",
            publish: e.action.starts_with("publish"),
        }
    };
    let mut marks: Vec<EventMark> = a
        .timeline
        .iter()
        .map(|e| mark(e, if in_b.contains(&key(e)) { "A+B" } else { "A" }))
        .chain(
            b.timeline
                .iter()
                .filter(|e| !in_a.contains(&key(e)))
                .map(|e| mark(e, "B")),
        )
        .collect();
    marks.sort_by(|x, y| x.at_s.total_cmp(&y.at_s));
    marks
}

/// Each mark as a vertical line with its label; a label takes the first
/// row (from the top, or from the bottom for builds landing) that no label
/// near it in time uses.
fn draw_marks(chart: &mut Chart<'_, '_>, marks: &[EventMark], axis: &Axis) -> Result<(), super::svg::DrawError> {
    let mut rows: Vec<(f64, bool, usize)> = Vec::new();
    let near = axis.max * 0.12;
    for m in marks {
        let x = axis.x(m.at_s);
        let line = vec![(x, 0.0), (x, 1.05)];
        if m.dashed {
            chart.draw_series(DashedLineSeries::new(line, 4, 4, m.colour.stroke_width(1)))?;
        } else {
            chart.draw_series(LineSeries::new(line, m.colour.stroke_width(1)))?;
        }
        let taken = |r: usize| {
            rows.iter()
                .any(|&(px, pb, pr)| pb == m.publish && pr == r && (px - x).abs() < near)
        };
        let row = (0..).find(|&r| !taken(r)).unwrap_or(0);
        rows.push((x, m.publish, row));
        let (y, vpos) = if m.publish {
            (0.04 + 0.07 * row as f64, VPos::Bottom)
        } else {
            (1.0 - 0.07 * row as f64, VPos::Top)
        };
        let anchor = if x > axis.max * 0.75 { HPos::Right } else { HPos::Left };
        let font = ("sans-serif", 11)
            .into_font()
            .color(&m.colour)
            .pos(Pos::new(anchor, vpos));
        chart.draw_series(std::iter::once(Text::new(format!(" {} ", m.label), (x, y), font)))?;
    }
    Ok(())
}
