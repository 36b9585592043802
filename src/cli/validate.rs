//! `rmmsim validate`: check scenario files without running them, as
//! `k6 inspect` does; for editors, pre-commit hooks and CI's first step.

use std::path::PathBuf;
use std::process::ExitCode;

use super::ValidateArgs;
use crate::check::scenario_files;
use crate::scenario::{self, Plan};

/// Prints every error of every bad file (on stderr, as `error:` lines) and
/// what each good one holds (on stdout); exit 0 when all are valid, 2
/// otherwise. Two files with one scenario name are an error too.
pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut bad = 0;
    let mut plans: Vec<(PathBuf, Plan)> = Vec::new();
    for file in files(&args.paths, &mut bad) {
        match scenario::load(&file) {
            Ok(plan) => {
                println!("{}: ok ({})", file.display(), holds(&plan));
                plans.push((file, plan));
            }
            Err(e) => {
                bad += 1;
                e.lines().iter().for_each(|line| eprintln!("error: {line}"));
            }
        }
    }
    for same in scenario::same_names(plans.iter().map(|(f, p)| (f.as_path(), p))) {
        bad += 1;
        eprintln!("error: {same}");
    }
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// The files named, a folder's `*.toml` in its place; a folder that cannot
/// be listed or holds none is an error (counted in `bad`).
fn files(paths: &[PathBuf], bad: &mut usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        match scenario_files(path) {
            Ok(found) if found.is_empty() => {
                *bad += 1;
                eprintln!("error: no scenario files (*.toml) in {}", path.display());
            }
            Ok(found) => out.extend(found),
            Err(e) => {
                *bad += 1;
                eprintln!("error: {e}");
            }
        }
    }
    out
}

/// `name `x`, 55 machines, 2 builds, 3 events, 1 expectation`: the events
/// are the file's `[[events]]` (a build's `published` is counted as a build).
fn holds(plan: &Plan) -> String {
    let published = plan.builds.iter().filter(|b| b.published.is_some()).count();
    format!(
        "`{}`, {}, {}, {}, {}",
        plan.name,
        count(plan.fleet_size(), "machine"),
        count(plan.builds.len(), "build"),
        count(plan.events.len() - published, "event"),
        count(plan.expects.len(), "expectation")
    )
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn counts_are_plural_but_for_one() {
        assert_eq!(count(0, "event"), "0 events");
        assert_eq!(count(1, "event"), "1 event");
        assert_eq!(count(2, "build"), "2 builds");
    }

    #[test]
    fn a_folder_stands_for_its_scenario_files() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.toml", "a.toml", "notes.md"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let lone = Path::new("x.toml").to_path_buf();
        let mut bad = 0;
        let found = files(&[lone.clone(), dir.path().to_owned()], &mut bad);
        assert_eq!(found, vec![lone, dir.path().join("a.toml"), dir.path().join("b.toml")]);
        assert_eq!(bad, 0);
        let empty = tempfile::tempdir().unwrap();
        assert!(files(&[empty.path().to_owned()], &mut bad).is_empty());
        assert_eq!(bad, 1);
    }
}
