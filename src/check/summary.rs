//! The Markdown summary of a check, fit for a pull-request comment: a row
//! per scenario with its headline convergence, stranded machines and orphan
//! rows, the change against the baseline, and a link to its chart.

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use super::{CheckRun, ScenarioResult};
use crate::clock::short;
use crate::metrics::{ChannelConvergence, Report};
use crate::protocol::Version;

/// The rollout a scenario is about: the build and channel with the latest
/// reference event (the last promote or build landing; stable first on a
/// tie), a build rolled back included: a scenario that rolls a build back
/// is about that build, not about the one the fleet started on.
pub fn headline(report: &Report) -> Option<Headline<'_>> {
    report
        .builds
        .iter()
        .flat_map(|b| b.convergence.iter().map(move |c| (b, c)))
        .filter(|(_, c)| c.figures.population > 0)
        .max_by(|(_, a), (_, b)| {
            (a.reference_s, a.channel == crate::protocol::Channel::Stable)
                .partial_cmp(&(b.reference_s, b.channel == crate::protocol::Channel::Stable))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(b, c)| Headline {
            version: b.version,
            convergence: c,
            rolled_back_s: b.rolled_back_s,
        })
}

/// A scenario's headline rollout.
#[derive(Debug, Clone, Copy)]
pub struct Headline<'a> {
    /// The build.
    pub version: Version,
    /// Its convergence on the channel, from the reference event.
    pub convergence: &'a ChannelConvergence,
    /// When it was rolled back (`None`: it was not).
    pub rolled_back_s: Option<f64>,
}

impl Headline<'_> {
    /// `1.0.1 stable (from promote)`, the key its baseline is found by.
    fn key(&self) -> String {
        let c = self.convergence;
        format!("{} {} (from {})", self.version, c.channel, c.reference)
    }

    /// The key, and for a build rolled back when and how far it had got:
    /// `0.8.1 stable (from promote; rolled back 30m later, 84 of 200 reached it)`.
    fn label(&self) -> String {
        let c = self.convergence;
        match self.rolled_back_s {
            None => self.key(),
            Some(at) => format!(
                "{} {} (from {}; rolled back {} later, {} of {} reached it)",
                self.version,
                c.channel,
                c.reference,
                time(Some(at - c.reference_s)),
                c.figures.reached,
                c.figures.population
            ),
        }
    }
}

fn time(s: Option<f64>) -> String {
    s.map_or_else(|| "never".to_owned(), |s| short(Duration::from_secs_f64(s.max(0.0))))
}

/// A figure with its change from the baseline: `2m 30s ↑ +25%` (slower),
/// `1m ↓ −10%` (faster), `2m =`.
fn timed(now: Option<f64>, was: Option<Option<f64>>) -> String {
    let now_s = time(now);
    match (now, was) {
        (_, None) => now_s,
        (Some(a), Some(Some(b))) if (a - b).abs() < 0.5 => format!("{now_s} ="),
        (Some(a), Some(Some(b))) => {
            let pct = (a / b.max(1e-9) - 1.0) * 100.0;
            let arrow = if a > b { "↑" } else { "↓" };
            format!("{now_s} {arrow} {pct:+.0}%")
        }
        (None, Some(None)) => format!("{now_s} ="),
        (None, Some(Some(b))) => format!("{now_s} ↑ (was {})", time(Some(b))),
        (Some(_), Some(None)) => format!("{now_s} ↓ (was never)"),
    }
}

fn counted(now: usize, was: Option<usize>) -> String {
    match was {
        None => now.to_string(),
        Some(w) if w == now => format!("{now} ="),
        Some(w) if now > w => format!("{now} ↑ +{}", now - w),
        Some(w) => format!("{now} ↓ −{}", w - now),
    }
}

fn row(r: &ScenarioResult, link_base: &Path) -> Vec<String> {
    let mark = if r.passed() { "✅" } else { "❌" };
    let cells = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let Some(report) = &r.report else {
        let what = if r.is_bad_file() {
            "bad scenario file"
        } else {
            "run failed"
        };
        return cells(&[mark, &r.name, what, "", "", "", "", "", ""]);
    };
    let chart = link_base.join(&r.name).join("convergence.svg");
    let chart = format!("[chart]({})", chart.display());
    let Some(headline) = headline(report) else {
        let (stranded, orphans) = (
            report.stranded.len().to_string(),
            report.rows.server.orphaned.to_string(),
        );
        return cells(&[mark, &r.name, "no rollout", "", "", "", &stranded, &orphans, &chart]);
    };
    let base = r.baseline.as_ref();
    let key = headline.key();
    let was = base.and_then(|b| {
        b.convergence
            .iter()
            .find(|x| key == format!("{} {} (from {})", x.version, x.channel, x.reference))
    });
    let f = &headline.convergence.figures;
    vec![
        mark.to_owned(),
        r.name.clone(),
        headline.label(),
        timed(f.t50_s, was.map(|w| w.t50_s)),
        timed(f.t90_s, was.map(|w| w.t90_s)),
        timed(f.t99_s, was.map(|w| w.t99_s)),
        counted(report.stranded.len(), base.map(|b| b.stranded)),
        counted(report.rows.server.orphaned, base.map(|b| b.orphan_rows)),
        chart,
    ]
}

/// The Markdown. Chart links are `link_base/<name>/convergence.svg`.
pub fn summary(run: &CheckRun, link_base: &Path) -> String {
    let mut md = String::new();
    let failed = run.results.iter().filter(|r| !r.passed()).count();
    let passed = run.results.len() - failed;
    let verdict = if failed == 0 {
        "all passed".to_owned()
    } else {
        format!("{failed} failed")
    };
    let _ = writeln!(md, "## rmmsim check: {verdict}\n");
    let held = if run.updated_baselines {
        "and their figures were written as the new baselines"
    } else {
        "and stayed within their baselines' tolerance"
    };
    let _ = writeln!(
        md,
        "{passed} of {} scenarios held their expectations {held} ({:.0} s).\n",
        run.results.len(),
        run.wall_s
    );
    md += &crate::metrics::md_table(
        &[
            "",
            "scenario",
            "headline rollout",
            "t50",
            "t90",
            "t99",
            "stranded",
            "orphan rows",
            "",
        ],
        run.results.iter().map(|r| row(r, link_base)),
    );
    let _ = writeln!(
        md,
        "\nArrows compare with the committed baseline: ↑ slower or more, ↓ faster or fewer, = unchanged."
    );
    for r in run.results.iter().filter(|r| !r.passed()) {
        let _ = writeln!(md, "\n### {} failed\n", r.name);
        for f in &r.failures {
            let _ = writeln!(md, "- {}", f.line());
        }
    }
    if run.updated_baselines {
        let _ = writeln!(md, "\n### Baselines rewritten\n");
        for r in &run.results {
            let what = if r.changes.is_empty() {
                "unchanged".to_owned()
            } else {
                r.changes.join("; ")
            };
            let _ = writeln!(md, "- {}: {what}", r.name);
        }
    }
    md
}
