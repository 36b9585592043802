//! `rmmsim check`: run every scenario of a folder, on every core, and hold
//! each to its expectations and to its committed baseline; write JUnit XML
//! and a Markdown summary for CI.

mod baseline;
mod junit;
mod line;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use serde::Serialize;

pub use baseline::Baseline;
pub use junit::junit;
pub use line::ScenarioLine;
pub use summary::summary;

use crate::metrics::{Report, WallTimer, write_reports};
use crate::repro::{CheckLine, RunLine};
use crate::scenario::{self, Plan, SameName, ScenarioErrors};
use crate::sim::{self, SimOptions, TransportKind};

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The scenario folder.
    pub dir: PathBuf,
    /// Where baselines are read from and written to.
    pub baselines: PathBuf,
    /// Where each scenario's reports go (`<out>/<name>/`).
    pub out: PathBuf,
    /// Accept this run's figures as the new baselines.
    pub update_baselines: bool,
    /// Only these scenarios (by name); all when empty.
    pub only: Vec<String>,
    pub transport: TransportKind,
    /// Scenarios run at once.
    pub jobs: usize,
}

/// What kind of thing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// An `[[expect]]` of the scenario.
    Expectation,
    /// The regression gate against the baseline, or a missing baseline.
    Gate,
    /// An update-model invariant the observer saw broken.
    Invariant,
    /// The run itself broke (or its reports could not be written).
    Error,
    /// The scenario file is wrong: nothing ran.
    File,
}

impl FailureKind {
    /// `expectation`, `gate`, `invariant`, `error` or `file`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expectation => "expectation",
            Self::Gate => "gate",
            Self::Invariant => "invariant",
            Self::Error => "error",
            Self::File => "file",
        }
    }

    /// The JUnit element it is reported as: a run that broke (or never
    /// started) is an `<error>`, anything the run measured is a `<failure>`.
    pub fn junit_element(self) -> &'static str {
        match self {
            Self::Error | Self::File => "error",
            Self::Expectation | Self::Gate | Self::Invariant => "failure",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that failed: an expectation, the gate, or an invariant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// What kind.
    pub kind: FailureKind,
    /// What was measured.
    pub figure: String,
    /// Its value.
    pub observed: String,
    /// What was allowed.
    pub allowed: String,
    /// By how much, or why.
    pub detail: String,
}

impl Failure {
    /// One line for people.
    pub fn line(&self) -> String {
        let detail = if self.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.detail)
        };
        format!(
            "{} {}: observed {}, allowed {}{detail}",
            self.kind, self.figure, self.observed, self.allowed
        )
    }
}

/// One scenario's verdict.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub name: String,
    pub file: PathBuf,
    pub seed: u64,
    /// The run's report (none when the run itself broke).
    pub report: Option<Report>,
    /// The baseline it was held to (with `--update-baselines`: the one replaced).
    pub baseline: Option<Baseline>,
    /// What failed.
    pub failures: Vec<Failure>,
    /// With `--update-baselines`: how the baseline changed.
    pub changes: Vec<String>,
    /// Where its reports are.
    pub report_dir: PathBuf,
}

impl ScenarioResult {
    /// Held everything.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// A finished run of `plan` from `file`, judged by its own expectations
    /// and the model's invariants (what `rmmsim run` holds it to).
    pub fn judged(file: &Path, plan: &Plan, report: Report, report_dir: PathBuf) -> Self {
        Self {
            name: plan.name.clone(),
            file: file.to_owned(),
            seed: plan.seed,
            failures: broken_promises(&report, file).collect(),
            report: Some(report),
            baseline: None,
            changes: Vec::new(),
            report_dir,
        }
    }

    /// A scenario file that could not be read or checked: nothing ran. It
    /// is named after its file (its name may be what is wrong).
    fn bad_file(file: &str) -> Self {
        let path = PathBuf::from(file);
        let name = path
            .file_stem()
            .map_or_else(|| file.to_owned(), |s| s.to_string_lossy().into_owned());
        Self {
            name,
            file: path,
            seed: 0,
            report: None,
            baseline: None,
            failures: Vec::new(),
            changes: Vec::new(),
            report_dir: PathBuf::new(),
        }
    }

    /// Whether it never ran because its file is wrong.
    pub fn is_bad_file(&self) -> bool {
        self.failures.iter().any(|f| f.kind == FailureKind::File)
    }
}

/// A whole check.
#[derive(Debug, Clone)]
pub struct CheckRun {
    /// Per scenario, in file-name order.
    pub results: Vec<ScenarioResult>,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Whether baselines were rewritten.
    pub updated_baselines: bool,
}

impl CheckRun {
    /// The check that stopped at its wrong scenario files: one result per
    /// file, each a [`FailureKind::File`], so JUnit and the summary show
    /// them as a CI's other failures.
    pub fn bad_files(errors: &[ScenarioErrors], same_names: &[SameName]) -> Self {
        let file_failure = |observed: String| Failure {
            kind: FailureKind::File,
            figure: "scenario file".into(),
            observed,
            allowed: "a valid scenario file".into(),
            detail: String::new(),
        };
        let mut results: Vec<ScenarioResult> = Vec::new();
        for e in errors {
            let Some(first) = e.errors.first() else { continue };
            let mut result = ScenarioResult::bad_file(&first.file);
            result.failures = e.lines().into_iter().map(file_failure).collect();
            results.push(result);
        }
        for same in same_names {
            let mut result = ScenarioResult::bad_file(&same.second.display().to_string());
            result.failures.push(file_failure(same.to_string()));
            results.push(result);
        }
        Self {
            results,
            wall_s: 0.0,
            updated_baselines: false,
        }
    }
}

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Scenario files that are wrong (each with all its errors), or that
    /// share a scenario name: nothing ran.
    #[error("{}", .errors.iter().map(ToString::to_string).chain(.same_names.iter().map(ToString::to_string)).collect::<Vec<_>>().join("\n"))]
    Files {
        /// Each bad file's errors.
        errors: Vec<ScenarioErrors>,
        /// Files whose scenario has the name of an earlier one.
        same_names: Vec<SameName>,
    },
    /// The scenario folder could not be read, or holds nothing to check.
    /// (A baseline or a report that cannot be read or written fails its
    /// scenario instead: a [`FailureKind::Error`].)
    #[error(transparent)]
    Io(#[from] FolderError),
}

/// What is wrong with the scenario folder.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// It could not be listed.
    #[error("reading scenario folder {}: {error}", dir.display())]
    Read {
        dir: PathBuf,
        /// Why (in the message, so the one line says it all).
        error: std::io::Error,
    },
    /// It holds no scenario file.
    #[error("no scenarios to check in {}", .0.display())]
    Empty(PathBuf),
    /// `--only` names a scenario the folder does not hold.
    #[error(
        "no scenario named {} in {}; it holds: {}",
        .unknown.join(", "),
        .dir.display(),
        .known.join(", ")
    )]
    UnknownOnly {
        dir: PathBuf,
        /// The names it does not hold.
        unknown: Vec<String>,
        /// The names it holds, sorted.
        known: Vec<String>,
    },
}

/// The scenario files (`*.toml`) of a folder, sorted.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, FolderError> {
    let entries = std::fs::read_dir(dir).map_err(|error| FolderError::Read {
        dir: dir.to_owned(),
        error,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// The baseline file of a scenario.
pub fn baseline_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn read_baseline(path: &Path) -> anyhow::Result<Option<Baseline>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading baseline {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading baseline {}", path.display())),
    }
}

/// Runs the check. Every file is read and validated before anything runs.
pub fn run(options: &CheckOptions, mut progress: impl FnMut(&ScenarioResult) + Send) -> Result<CheckRun, CheckError> {
    let timer = WallTimer::start();
    let plans = load_plans(options)?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ScenarioResult>>> = Mutex::new(vec![None; plans.len()]);
    let progress = Mutex::new(&mut progress);
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.clamp(1, plans.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((file, plan)) = plans.get(i) else { return };
                    let result = check_one(options, file, plan);
                    (progress.lock().unwrap_or_else(|p| p.into_inner()))(&result);
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect();
    Ok(CheckRun {
        results,
        wall_s: timer.elapsed().as_secs_f64(),
        updated_baselines: options.update_baselines,
    })
}

/// Every scenario of the folder that `--only` names (all when it names
/// none), in file-name order; every wrong file, or an unknown name, first.
fn load_plans(options: &CheckOptions) -> Result<Vec<(PathBuf, Plan)>, CheckError> {
    let mut plans: Vec<(PathBuf, Plan)> = Vec::new();
    let mut errors = Vec::new();
    for file in scenario_files(&options.dir)? {
        match scenario::load(&file) {
            Ok(plan) => plans.push((file, plan)),
            Err(e) => errors.push(e),
        }
    }
    let same_names = scenario::same_names(plans.iter().map(|(f, p)| (f.as_path(), p)));
    if !errors.is_empty() || !same_names.is_empty() {
        return Err(CheckError::Files { errors, same_names });
    }
    if plans.is_empty() {
        return Err(FolderError::Empty(options.dir.clone()).into());
    }
    let unknown: Vec<String> = (options.only.iter())
        .filter(|name| !plans.iter().any(|(_, p)| &p.name == *name))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        let mut known: Vec<String> = plans.iter().map(|(_, p)| p.name.clone()).collect();
        known.sort();
        let dir = options.dir.clone();
        return Err(FolderError::UnknownOnly { dir, unknown, known }.into());
    }
    plans.retain(|(_, p)| options.only.is_empty() || options.only.contains(&p.name));
    Ok(plans)
}

/// Runs one scenario, writes its reports, and judges it.
fn check_one(options: &CheckOptions, file: &Path, plan: &Plan) -> ScenarioResult {
    let mut result = ScenarioResult {
        name: plan.name.clone(),
        file: file.to_owned(),
        seed: plan.seed,
        report: None,
        baseline: None,
        failures: Vec::new(),
        changes: Vec::new(),
        report_dir: sim::report_dir(&options.out, plan),
    };
    let sim_options = SimOptions {
        transport: options.transport,
        progress: None,
    };
    let report = match sim::execute(plan, &sim_options) {
        Ok(r) => r,
        Err(e) => {
            result.failures.push(Failure::error(e));
            return result;
        }
    };
    if let Err(e) = write_reports(&result.report_dir, &report) {
        result.failures.push(Failure::error(e));
    }
    result.failures.extend(broken_promises(&report, file));
    hold_to_baseline(options, plan, &report, &mut result);
    result.report = Some(report);
    result
}

impl Failure {
    /// The run, or writing what it produced, broke.
    fn error(e: anyhow::Error) -> Self {
        Self {
            kind: FailureKind::Error,
            figure: "run".into(),
            observed: format!("{e:#}"),
            allowed: "a complete run".into(),
            detail: String::new(),
        }
    }
}

/// The report's failed expectations, then its broken invariants.
fn broken_promises<'a>(report: &'a Report, file: &'a Path) -> impl Iterator<Item = Failure> + 'a {
    let expectations = report.expectations.iter().filter(|e| !e.passed).map(move |e| Failure {
        kind: FailureKind::Expectation,
        figure: e.label.clone(),
        observed: e.observed_text.clone(),
        allowed: e.allowed.clone(),
        detail: format!("{}:{}", file.display(), e.line),
    });
    let invariants = report.violations.iter().map(|v| Failure {
        kind: FailureKind::Invariant,
        figure: "update model".into(),
        observed: v.clone(),
        allowed: "never".into(),
        detail: String::new(),
    });
    expectations.chain(invariants)
}

/// Holds the run to its committed baseline (a missing one fails the gate),
/// or, with `--update-baselines`, writes this run's figures in its place.
fn hold_to_baseline(options: &CheckOptions, plan: &Plan, report: &Report, result: &mut ScenarioResult) {
    let now = Baseline::of(report);
    let path = baseline_path(&options.baselines, &plan.name);
    match read_baseline(&path) {
        Err(e) => result.failures.push(Failure::error(e)),
        Ok(old) if options.update_baselines => {
            result.changes = match &old {
                Some(old) => old.changes(&now),
                None => vec!["new baseline".into()],
            };
            if let Err(e) = write_baseline(&options.baselines, &path, &now) {
                result.failures.push(Failure::error(e));
            }
            // The summary's arrows show the change from the old figures.
            result.baseline = old;
        }
        Ok(None) => result.failures.push(Failure {
            kind: FailureKind::Gate,
            figure: "baseline".into(),
            observed: "none".into(),
            allowed: format!("a committed baseline at {}", path.display()),
            detail: format!(
                "run {} --update-baselines and commit the file",
                check_line(options, &plan.name)
            ),
        }),
        Ok(Some(old)) => {
            result.failures.extend(old.compare(&now, plan.regression));
            result.baseline = Some(old);
        }
    }
}

fn write_baseline(dir: &Path, path: &Path, baseline: &Baseline) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(path, serde_json::to_string_pretty(baseline).unwrap_or_default() + "\n"))
        .with_context(|| format!("writing {}", path.display()))
}

/// The command that reruns one scenario's check.
pub fn repro(options: &CheckOptions, result: &ScenarioResult) -> String {
    let alone = RunLine {
        file: &result.file,
        seed: result.seed,
        scale: 1.0,
        out: Some(&options.out),
        transport: options.transport,
    };
    format!("{}   (the run alone: {alone})", check_line(options, &result.name))
}

/// `rmmsim check` of one scenario with the options of this run that matter.
fn check_line<'a>(options: &'a CheckOptions, name: &'a str) -> CheckLine<'a> {
    CheckLine {
        dir: &options.dir,
        only: name,
        baselines: &options.baselines,
        out: &options.out,
        transport: options.transport,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: PathBuf) -> CheckOptions {
        CheckOptions {
            baselines: dir.join("baselines"),
            out: dir.join("out"),
            dir,
            update_baselines: false,
            only: Vec::new(),
            transport: TransportKind::WsMem,
            jobs: 1,
        }
    }

    #[test]
    fn a_folder_that_cannot_be_checked_says_why() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("missing");
        let err = run(&options(missing.clone()), |_| {}).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(&err, CheckError::Io(FolderError::Read { dir, error })
                if *dir == missing && error.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert!(
            message.starts_with(&format!("reading scenario folder {}: ", missing.display())),
            "{message}"
        );
        let err = run(&options(root.path().to_owned()), |_| {}).unwrap_err();
        assert!(
            matches!(&err, CheckError::Io(FolderError::Empty(dir)) if dir == root.path()),
            "{err:?}"
        );
    }
}
