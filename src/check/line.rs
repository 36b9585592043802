//! One scenario's outcome as a line of JSON: what `rmmsim run --json` and
//! `rmmsim check --json` print on stdout, one line per scenario, for a CI
//! step or a script to read. Its fields are documented in docs/ci.md and
//! stable: [`SCHEMA`] is raised on any incompatible change.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Failure, ScenarioResult};
use crate::metrics::ChannelConvergence;
use crate::protocol::Version;

/// The version of the line's shape.
pub const SCHEMA: u32 = 1;

/// One scenario's line.
#[derive(Debug, Serialize)]
pub struct ScenarioLine<'a> {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The scenario's name (a wrong file's stem, when it has none).
    pub scenario: &'a str,
    /// The scenario file.
    pub file: &'a Path,
    /// The seed it ran with (`None`: it never ran).
    pub seed: Option<u64>,
    /// `passed`, `failed` (an expectation, the gate or an invariant), or
    /// `error` (the file is wrong or the run broke: no figures).
    pub verdict: &'static str,
    /// What failed, each with its observed and allowed values.
    pub failures: &'a [Failure],
    /// The key figures (`None` without a report).
    pub figures: Option<Figures<'a>>,
    /// Where the reports are (`None` without a report).
    pub reports: Option<ReportPaths>,
    /// The command that reruns a scenario that did not pass.
    pub reproduce: Option<String>,
}

/// The figures a CI step is most likely to want; the rest are in `report.json`.
#[derive(Debug, Serialize)]
pub struct Figures<'a> {
    /// Every build's convergence, per channel and reference event.
    pub convergence: Vec<Convergence<'a>>,
    /// Machines stranded at the end.
    pub stranded: usize,
    /// Orphaned rows in the server's store at the end.
    pub orphan_rows: usize,
}

/// One build's convergence on one channel.
#[derive(Debug, Serialize)]
pub struct Convergence<'a> {
    /// The build.
    pub version: Version,
    /// When it was rolled back, seconds from the start (`None`: it was not).
    pub rolled_back_s: Option<f64>,
    /// Channel, reference event, population, reached and t50/t90/t99/t100.
    #[serde(flatten)]
    pub figures: &'a ChannelConvergence,
}

/// The files of a scenario's report.
#[derive(Debug, Serialize)]
pub struct ReportPaths {
    /// `report.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub md: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// `convergence.svg`.
    pub chart: PathBuf,
}

impl<'a> ScenarioLine<'a> {
    /// The line of a result; `reproduce` is printed only when it did not pass.
    pub fn of(result: &'a ScenarioResult, reproduce: impl FnOnce() -> String) -> Self {
        let report = result.report.as_ref();
        let verdict = match (result.passed(), report) {
            (true, _) => "passed",
            (false, Some(_)) => "failed",
            (false, None) => "error",
        };
        let figures = report.map(|r| Figures {
            convergence: (r.builds.iter())
                .flat_map(|b| {
                    b.convergence.iter().map(|c| Convergence {
                        version: b.version,
                        rolled_back_s: b.rolled_back_s,
                        figures: c,
                    })
                })
                .collect(),
            stranded: r.stranded.len(),
            orphan_rows: r.rows.server.orphaned,
        });
        let dir = &result.report_dir;
        Self {
            schema: SCHEMA,
            scenario: &result.name,
            file: &result.file,
            seed: (!result.is_bad_file()).then_some(result.seed),
            verdict,
            failures: &result.failures,
            figures,
            reports: report.map(|_| ReportPaths {
                json: dir.join("report.json"),
                md: dir.join("report.md"),
                html: dir.join("report.html"),
                chart: dir.join("convergence.svg"),
            }),
            reproduce: (!result.passed() && !result.is_bad_file()).then(reproduce),
        }
    }

    /// The line, without a line break.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
