//! `rmmsim check`: the regression gate as CI runs it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{CheckArgs, UsageError, write_file};
use crate::check::{self, CheckError, CheckOptions, CheckRun, ScenarioResult};
use crate::scenario::ScenarioErrors;

/// Runs every scenario of the folder, prints each verdict (and how to
/// reproduce a failure), writes JUnit and the summary when asked; exit 1
/// when a scenario failed.
pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let options = CheckOptions {
        dir: args.dir.clone(),
        baselines: args.baselines.clone(),
        out: args.out.clone(),
        update_baselines: args.update_baselines,
        only: args.only.clone(),
        transport: args.transport,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let run = check::run(&options, |r| {
        let verdict = if r.passed() { "passed" } else { "FAILED" };
        let wall = r.report.as_ref().map_or(0.0, |rep| rep.wall.wall_s);
        eprintln!("  {}: {verdict} ({wall:.1} s)", r.name);
    })
    .map_err(|e| match e {
        CheckError::Files { errors, same_names } => UsageError::many(
            errors
                .iter()
                .flat_map(ScenarioErrors::lines)
                .chain(same_names.iter().map(ToString::to_string)),
        ),
        CheckError::Io(e) => UsageError::new(format!("{e:#}")),
    })?;
    for r in &run.results {
        print_result(&options, &run, r);
    }
    write_outputs(&args, &run)?;
    let failed = run.results.iter().filter(|r| !r.passed()).count();
    println!(
        "check: {} passed, {failed} failed in {:.0} s; reports in {}",
        run.results.len() - failed,
        run.wall_s,
        args.out.display()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One scenario's verdict: what failed and how to reproduce it, and with
/// `--update-baselines` what changed.
fn print_result(options: &CheckOptions, run: &CheckRun, r: &ScenarioResult) {
    let expectations = r.report.as_ref().map_or(0, |rep| rep.expectations.len());
    if r.passed() {
        let baseline = if run.updated_baselines {
            "baseline written"
        } else {
            "baseline held"
        };
        let s = if expectations == 1 { "" } else { "s" };
        println!("{}: passed ({expectations} expectation{s}, {baseline})", r.name);
    } else {
        println!("{}: FAILED", r.name);
        for f in &r.failures {
            println!("  {}", f.line());
        }
        println!("  reproduce: {}", check::repro(options, r));
    }
    if run.updated_baselines {
        let what = if r.changes.is_empty() {
            "unchanged".to_owned()
        } else {
            r.changes.join("\n    ")
        };
        println!(
            "  baseline {}: {what}",
            check::baseline_path(&options.baselines, &r.name).display()
        );
    }
}

/// JUnit XML and the pull-request summary, where asked for.
fn write_outputs(args: &CheckArgs, run: &CheckRun) -> anyhow::Result<()> {
    if let Some(path) = &args.junit {
        write_file(path, &check::junit(run))?;
    }
    if let Some(path) = &args.summary {
        let base = match &args.link_base {
            Some(url) => PathBuf::from(url),
            None => relative(path.parent().unwrap_or(Path::new(".")), &args.out),
        };
        write_file(path, &check::summary(run, &base))?;
    }
    Ok(())
}

/// `to` as seen from the folder `from` (both relative to the working folder).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let (from, to) = (abs(from), abs(to));
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in from.components().skip(common) {
        out.push("..");
    }
    for c in to.components().skip(common) {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}
