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
mod spec;

use std::fmt;
use std::path::Path;

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

/// Where in the text a byte offset is: 1-based line and column.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, col)
}

/// Reads and checks a scenario file.
pub fn load(path: &Path) -> Result<Plan, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        col: 0,
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&file, &text)
}

/// Checks a scenario given as text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Plan, ScenarioError> {
    let err = |offset: Option<usize>, key: String, message: String| {
        let (line, col) = offset.map_or((1, 1), |o| line_col(text, o));
        ScenarioError {
            file: file.to_owned(),
            line,
            col,
            key,
            message,
        }
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| err(e.span().map(|s| s.start), String::new(), e.message().to_owned()))?;
    let spec: spec::Spec = serde_path_to_error::deserialize(de).map_err(|e| {
        // Spanned values show up in the path as a private field; drop it.
        let key = e.path().to_string().replace(".$__serde_spanned_private_value", "");
        let key = if key == "." { String::new() } else { key };
        let inner = e.into_inner();
        err(inner.span().map(|s| s.start), key, inner.message().to_owned())
    })?;
    check::check(&spec, Some(text)).map_err(|e| err(Some(e.offset), e.key, e.message))
}
