//! Two reports side by side: the figures in one table and both curves in
//! one chart, for "what does this policy change do" questions.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::Duration;

use plotters::prelude::*;

use super::Convergence;
use super::report::Report;
use super::svg::{Axis, PALETTE, legend, share_axes};
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

/// The figures of `a` and `b` in one Markdown table; `names` label the columns.
pub fn compare_markdown(a: &Report, b: &Report, names: (&str, &str)) -> String {
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
    let mut rows = convergence_rows(a, b);
    for (name, x, y) in count_rows(a, b) {
        rows.push(vec![name.to_owned(), x.to_string(), y.to_string(), delta(x, y)]);
    }
    rows.extend(final_version_rows(a, b));
    rows.extend(log_rows(a, b));
    md += &super::md_table_aligned(&["figure", "A", "B", "B − A"], 1, rows);
    let _ = writeln!(md, "\n![both curves](compare.svg)");
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
fn count_rows(a: &Report, b: &Report) -> [(&'static str, f64, f64); 8] {
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

/// Both reports' fleet curves in one chart: A solid, B dashed, one colour per version.
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
        "share of the fleet on each version: {} (solid) vs {} (dashed)",
        names.0, names.1
    );
    let mut chart = share_axes(&root, title, 18, &axis)?;
    let stride = |r: &Report| r.curve.times_s.len().div_ceil(1500).max(1);
    for (i, v) in versions.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
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
    let entries: Vec<(String, RGBColor)> = versions
        .iter()
        .enumerate()
        .map(|(k, v)| (v.to_string(), PALETTE[k % PALETTE.len()]))
        .collect();
    legend(&root, &entries)?;
    root.present()?;
    Ok(())
}
