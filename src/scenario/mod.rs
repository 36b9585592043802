//! Scenarios: `spec` mirrors the TOML as written; `plan` is the checked,
//! typed version the simulator runs. A bad file is refused with an error that
//! names the file, the line and the key, before anything runs.
//!
//! A scenario can also be built in code ([`PlanBuilder`]): the builder fills
//! the same `spec` and runs the same checks, so a plan built in code is held
//! to exactly what a file is; it can be written out as a file too.

pub mod builder;
mod check;
mod plan;
mod read;
mod spec;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use builder::PlanBuilder;
pub(crate) use plan::MAX_FLEET;
pub use plan::{
    Action, BuildPlan, ClientPlan, Counter, EventPlan, Expectation, GroupPlan, LogFilter, Metric, Plan, RegressionGate,
    SitePlan, StrandReason, Target,
};

/// A scenario that cannot be run, and where it is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file as given; for a plan built in code, its scenario name.
    pub file: String,
    /// 1-based line, 0 when there is none (the file could not be read, or
    /// the plan was built in code).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// The key, as a path: `fleet[2].site`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line != 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// Every error of one scenario, in file order: the first
/// [`MAX_ERRORS`], and how many more there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioErrors {
    /// At least one, at most [`MAX_ERRORS`], in file order (for a plan built
    /// in code, in the order the checks found them).
    pub errors: Vec<ScenarioError>,
    /// How many more were found and not listed.
    pub more: usize,
}

/// Most errors listed for one scenario; the rest are counted.
pub const MAX_ERRORS: usize = 20;

impl ScenarioErrors {
    /// One error.
    fn one(error: ScenarioError) -> Self {
        Self {
            errors: vec![error],
            more: 0,
        }
    }

    /// `problems` (at least one) of `file`, placed in `text` (none: a plan
    /// built in code, with no lines), in file order, each once.
    fn of(file: &str, text: Option<&str>, mut problems: Vec<check::Problem>) -> Self {
        problems.sort_by_key(|p| p.offset);
        let mut errors: Vec<ScenarioError> = Vec::new();
        for p in problems {
            let (line, col) = text.map_or((0, 0), |text| line_col(text, p.offset));
            let error = ScenarioError {
                file: file.to_owned(),
                line,
                col,
                key: p.key,
                message: p.message,
            };
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
        if errors.is_empty() {
            errors.push(ScenarioError {
                file: file.to_owned(),
                line: text.map_or(0, |_| 1),
                col: text.map_or(0, |_| 1),
                key: String::new(),
                message: "cannot be read as a scenario".into(),
            });
        }
        let more = errors.len().saturating_sub(MAX_ERRORS);
        errors.truncate(MAX_ERRORS);
        Self { errors, more }
    }

    /// One line per error, then `FILE: and N more errors` when some are
    /// not listed.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        if self.more > 0 {
            let file = self.errors.first().map_or("", |e| e.file.as_str());
            let s = if self.more == 1 { "" } else { "s" };
            lines.push(format!("{file}: and {} more error{s}", self.more));
        }
        lines
    }
}

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for ScenarioErrors {}

/// A key's path under its parent's, as errors and input diffs name keys:
/// `server.health_gate` and `min_successes` give
/// `server.health_gate.min_successes`; a key at the top is its own path.
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Where in the text a byte offset is: 1-based line and column.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, col)
}

/// Reads and checks a scenario file.
pub fn load(path: &Path) -> Result<Plan, ScenarioErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ScenarioErrors::one(ScenarioError {
            file: file.clone(),
            line: 0,
            col: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })
    })?;
    parse(&file, &text)
}

/// Checks a scenario given as text; `file` names it in errors. Every error
/// is found: the file's shape (as far as it can be read) and every check on
/// what was read.
pub fn parse(file: &str, text: &str) -> Result<Plan, ScenarioErrors> {
    let mut read = read::read(text);
    let mut problems = std::mem::take(&mut read.problems);
    if let Some(spec) = &read.spec {
        match check::check(spec, Some(text)) {
            Ok(plan) if problems.is_empty() => return Ok(plan),
            Ok(_) => {}
            Err(found) => problems.extend(found.into_iter().filter(|p| !read.hides(p))),
        }
    }
    Err(ScenarioErrors::of(file, Some(text), problems))
}

/// Two scenario files with one `name`: their reports (and baselines) would
/// land in one folder, the later over the earlier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}: scenario name `{name}` is also the name of {}: their reports would overwrite each other (rename one)",
    .second.display(),
    .first.display()
)]
pub struct SameName {
    /// The name both have.
    pub name: String,
    /// The file that has it first.
    pub first: PathBuf,
    /// A later file with the same name.
    pub second: PathBuf,
}

/// Every later file whose scenario has the name of an earlier one.
pub fn same_names<'a>(plans: impl IntoIterator<Item = (&'a Path, &'a Plan)>) -> Vec<SameName> {
    let mut first: BTreeMap<&str, &Path> = BTreeMap::new();
    let mut same = Vec::new();
    for (file, plan) in plans {
        match first.get(plan.name.as_str()) {
            Some(earlier) => same.push(SameName {
                name: plan.name.clone(),
                first: earlier.to_path_buf(),
                second: file.to_path_buf(),
            }),
            None => {
                first.insert(&plan.name, file);
            }
        }
    }
    same
}
