//! `rmmsim check`: the regression gate as CI runs it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{CheckArgs, UsageError, Voice, write_file};
use crate::check::{self, CheckError, CheckOptions, CheckRun, ScenarioLine, ScenarioResult};
use crate::scenario::ScenarioErrors;

/// Runs every scenario of the folder, prints each verdict as it comes (and
/// how to reproduce a failure), writes JUnit and the summary when asked;
/// exit 1 when a scenario failed. Wrong scenario files stop it before
/// anything runs (exit 2), but still get their JUnit, summary and JSON.
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
    let voice = Voice::new(args.json);
    let run = match check::run(&options, |r| print_result(voice, &options, args.update_baselines, r)) {
        Ok(run) => run,
        Err(CheckError::Files { errors, same_names }) => {
            let run = CheckRun::bad_files(&errors, &same_names);
            for r in &run.results {
                voice.json(|| ScenarioLine::of(r, String::new).to_json());
            }
            write_outputs(&args, &run)?;
            let lines =
                (errors.iter().flat_map(ScenarioErrors::lines)).chain(same_names.iter().map(ToString::to_string));
            return Err(UsageError::many(lines).into());
        }
        Err(CheckError::Io(e)) => return Err(UsageError::new(format!("{e:#}")).into()),
    };
    write_outputs(&args, &run)?;
    let failed = run.results.iter().filter(|r| !r.passed()).count();
    voice.say(format_args!(
        "check: {} passed, {failed} failed in {:.0} s; reports in {}",
        run.results.len() - failed,
        run.wall_s,
        args.out.display()
    ));
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One scenario's verdict, once, as it finishes: what failed and how to
/// reproduce it, and with `--update-baselines` what changed; with `--json`
/// its line on stdout and the rest on stderr.
fn print_result(voice: Voice, options: &CheckOptions, updated: bool, r: &ScenarioResult) {
    voice.json(|| ScenarioLine::of(r, || check::repro(options, r)).to_json());
    let wall = r.report.as_ref().map_or(0.0, |rep| rep.wall.wall_s);
    if r.passed() {
        let expectations = r.report.as_ref().map_or(0, |rep| rep.expectations.len());
        let baseline = if updated { "baseline written" } else { "baseline held" };
        let s = if expectations == 1 { "" } else { "s" };
        voice.say(format_args!(
            "{}: passed ({expectations} expectation{s}, {baseline}) in {wall:.1} s",
            r.name
        ));
    } else {
        voice.say(format_args!("{}: FAILED in {wall:.1} s", r.name));
        for f in &r.failures {
            voice.say(format_args!("  {}", f.line()));
        }
        voice.say(format_args!("  reproduce: {}", check::repro(options, r)));
    }
    if updated {
        let what = if r.changes.is_empty() {
            "unchanged".to_owned()
        } else {
            r.changes.join("\n    ")
        };
        let path = check::baseline_path(&options.baselines, &r.name);
        voice.say(format_args!("  baseline {}: {what}", path.display()));
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
            None => relative(folder_of(path), &args.out),
        };
        write_file(path, &check::summary(run, &base))?;
    }
    Ok(())
}

/// The folder a file is in: `.` for a bare file name.
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A summary given as a bare file name is in the working folder: its
    /// links are relative to it, never absolute.
    #[test]
    fn links_are_relative_to_the_summarys_folder() {
        assert_eq!(
            relative(folder_of(Path::new("summary.md")), Path::new("reports")),
            Path::new("reports")
        );
        assert_eq!(
            relative(folder_of(Path::new("out/s.md")), Path::new("reports")),
            Path::new("../reports")
        );
        assert_eq!(
            relative(folder_of(Path::new("reports/s.md")), Path::new("reports")),
            Path::new(".")
        );
    }
}
