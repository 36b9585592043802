//! `rmmsim compare`: two reports side by side.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::{CompareArgs, UsageError, progress, write_file};
use crate::metrics::{self, Report};
use crate::scenario;

/// Writes compare.md and compare.svg and prints the table. A side that
/// cannot be read (or run) is bad input: nothing is written.
pub fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let (a, b) = match (report_from(&args.a, &args), report_from(&args.b, &args)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Err(UsageError::new(format!("{e:#}")).into()),
    };
    let names = (a.0.as_str(), b.0.as_str());
    let md = metrics::compare_markdown(&a.1, &b.1, names, args.all);
    let svg = metrics::compare_svg(&a.1, &b.1, names).context("drawing compare.svg")?;
    write_file(&args.out.join("compare.md"), &md)?;
    write_file(&args.out.join("compare.svg"), &svg)?;
    println!("{md}");
    eprintln!("written to {}", args.out.join("compare.md").display());
    Ok(ExitCode::SUCCESS)
}

/// A report from a report.json, a report folder, or a scenario file (run now).
fn report_from(path: &Path, args: &CompareArgs) -> anyhow::Result<(String, Report)> {
    if path.extension().is_some_and(|e| e == "toml") {
        let mut plan = scenario::load(path)?;
        if let Some(seed) = args.seed {
            plan.seed = seed;
        }
        eprintln!("running {} ...", path.display());
        let report = progress::execute(&plan, args.transport, true)?;
        return Ok((path.display().to_string(), report));
    }
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_owned()
    };
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let report =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not an rmmsim report.json", file.display()))?;
    Ok((file.display().to_string(), report))
}
