//! `rmmsim compare`: two reports side by side.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::{CompareArgs, UsageError, progress, write_file};
use crate::metrics::{self, Report};
use crate::scenario::{self, Plan};

/// One side: a scenario file (checked, run later) or a report.
enum Side {
    /// A scenario file, with its name as the side's name.
    Scenario(String, Box<Plan>),
    /// A report.json, or a report folder's.
    Report(String, Box<Report>),
}

/// Writes compare.md and compare.svg and prints the table. A side that
/// cannot be read (both sides' errors are named, all of a scenario file's)
/// or run is bad input: nothing is written.
pub fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let (a, b) = match (side(&args.a, &args), side(&args.b, &args)) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let errors = [a.err(), b.err()].into_iter().flatten().flatten();
            return Err(UsageError::many(errors).into());
        }
    };
    let bad = |e: anyhow::Error| UsageError::new(format!("{e:#}"));
    let (a, b) = (report_of(a, &args).map_err(bad)?, report_of(b, &args).map_err(bad)?);
    let names = (a.0.as_str(), b.0.as_str());
    let md = metrics::compare_markdown(&a.1, &b.1, names, args.all);
    let svg = metrics::compare_svg(&a.1, &b.1, names).context("drawing compare.svg")?;
    write_file(&args.out.join("compare.md"), &md)?;
    write_file(&args.out.join("compare.svg"), &svg)?;
    println!("{md}");
    eprintln!("written to {}", args.out.join("compare.md").display());
    Ok(ExitCode::SUCCESS)
}

/// A side read: a scenario file checked (with the seed of the command
/// line), or a report.json or report folder read; what is wrong, a line each.
fn side(path: &Path, args: &CompareArgs) -> Result<Side, Vec<String>> {
    if path.extension().is_some_and(|e| e == "toml") {
        let mut plan = scenario::load(path).map_err(|e| e.lines())?;
        if let Some(seed) = args.seed {
            plan.seed = seed;
        }
        return Ok(Side::Scenario(path.display().to_string(), Box::new(plan)));
    }
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_owned()
    };
    let read = || -> anyhow::Result<Report> {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not an rmmsim report.json", file.display()))
    };
    match read() {
        Ok(report) => Ok(Side::Report(file.display().to_string(), Box::new(report))),
        Err(e) => Err(vec![format!("{e:#}")]),
    }
}

/// A side's report, running its scenario if it is one.
fn report_of(side: Side, args: &CompareArgs) -> anyhow::Result<(String, Report)> {
    match side {
        Side::Report(name, report) => Ok((name, *report)),
        Side::Scenario(name, plan) => {
            eprintln!("running {name} ...");
            let report = progress::execute(&plan, args.transport, true).with_context(|| format!("running {name}"))?;
            Ok((name, report))
        }
    }
}
