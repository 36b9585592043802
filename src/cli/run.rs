//! `rmmsim run`: simulate scenario files and write their reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::{RunArgs, UsageError, Voice, progress};
use crate::check::{ScenarioLine, ScenarioResult};
use crate::repro::RunLine;
use crate::scenario::{self, Plan};
use crate::sim;
use crate::{clock, metrics};

/// Checks every file, then runs each scenario, printing its verdict (and
/// what failed, and how to reproduce it); with several, writes `index.html`
/// linking their reports; exit 1 when one failed.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let plans = load_plans(&args)?;
    let mut entries = Vec::new();
    for (file, plan) in &plans {
        entries.push(run_one(&args, file, plan)?);
    }
    if entries.len() > 1 {
        write_index(&args.out, &entries, Voice::new(args.json))?;
    }
    let failed = entries.iter().filter(|e| !e.passed).count();
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every file read, checked, seeded and scaled before anything runs; every
/// bad one is named with all its errors, and two files with one scenario
/// name are refused (the second's reports would replace the first's).
fn load_plans(args: &RunArgs) -> Result<Vec<(PathBuf, Plan)>, UsageError> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for file in &args.files {
        if file.is_dir() {
            errors.push(format!(
                "{0} is a folder, not a scenario file: to run every scenario in it, use `rmmsim check {0}`",
                file.display()
            ));
            continue;
        }
        match scenario::load(file) {
            Ok(mut plan) => {
                if let Some(seed) = args.seed {
                    plan.seed = seed;
                }
                plan.scale(args.scale);
                if plan.fleet_size() > scenario::MAX_FLEET {
                    errors.push(format!(
                        "{}: --scale {} makes the fleet larger than {} machines",
                        file.display(),
                        args.scale,
                        scenario::MAX_FLEET
                    ));
                    continue;
                }
                plans.push((file.clone(), plan));
            }
            Err(e) => errors.extend(e.lines()),
        }
    }
    let same = scenario::same_names(plans.iter().map(|(f, p)| (f.as_path(), p)));
    errors.extend(same.iter().map(ToString::to_string));
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(UsageError::many(errors))
    }
}

/// `index.html` in the output folder: every report of this run, linked, with its verdict.
fn write_index(out: &Path, entries: &[metrics::IndexEntry], voice: Voice) -> anyhow::Result<()> {
    let path = out.join("index.html");
    std::fs::write(&path, metrics::index_html(entries)).with_context(|| format!("writing {}", path.display()))?;
    voice.say(format_args!("index of {} reports -> {}", entries.len(), path.display()));
    Ok(())
}

/// Runs one scenario, writes its reports and prints its verdict (with
/// `--json`, its line on stdout and the rest on stderr); its line of the
/// index.
fn run_one(args: &RunArgs, file: &Path, plan: &Plan) -> anyhow::Result<metrics::IndexEntry> {
    let report =
        progress::execute(plan, args.transport, !args.quiet).with_context(|| format!("running {}", file.display()))?;
    let dir = sim::report_dir(&args.out, plan);
    metrics::write_reports(&dir, &report)?;
    let result = ScenarioResult::judged(file, plan, report, dir);
    let reproduce = || {
        let line = RunLine {
            file,
            seed: plan.seed,
            scale: args.scale,
            out: None,
            transport: args.transport,
        };
        line.to_string()
    };
    let voice = Voice::new(args.json);
    voice.json(|| ScenarioLine::of(&result, reproduce).to_json());
    let report = (result.report.as_ref()).context("a judged run always has its report")?;
    let verdict = if report.passed { "passed" } else { "FAILED" };
    voice.say(format_args!(
        "{}: {verdict}, {} machines over {} in {:.1} s ({:.0} heartbeats/s) -> {}",
        plan.name,
        report.scenario.fleet,
        clock::short(plan.duration),
        report.wall.wall_s,
        report.wall.heartbeats_per_wall_s,
        result.report_dir.join("report.md").display()
    ));
    for e in report.expectations.iter().filter(|e| !e.passed) {
        voice.say(format_args!(
            "  FAIL {}: observed {}, allowed {} ({}:{})",
            e.label,
            e.observed_text,
            e.allowed,
            file.display(),
            e.line
        ));
    }
    for v in &report.violations {
        voice.say(format_args!("  INVARIANT BROKEN: {v}"));
    }
    if !report.passed {
        voice.say(format_args!("  reproduce: {}", reproduce()));
    }
    let folder = (result.report_dir.strip_prefix(&args.out)).unwrap_or(&result.report_dir);
    Ok(metrics::IndexEntry::new(
        report,
        folder.to_string_lossy().replace('\\', "/"),
    ))
}
