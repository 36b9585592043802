//! Measurement: the recorder (ground truth), convergence arithmetic, and the
//! report in its forms (JSON, Markdown, SVG).

mod analysis;
mod compare;
mod convergence;
mod document;
mod hover;
mod inputs;
mod logs;
mod offered;
mod page;
mod recorder;
mod report;
mod sentences;
mod svg;
mod zoom;

use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) use compare::{compare_markdown, compare_svg};
pub use convergence::Convergence;
pub(crate) use document::{md_table, md_table_aligned};
pub use logs::{Logs, LogsSeen, SignatureOnVersion, VersionLogs};
pub use offered::OffReason;
pub use page::{IndexEntry, html, index_html, markdown};
pub use recorder::{AgentCounters, MachineTrack, Recorder, TimelineEntry};
pub use report::{
    BuildReport, ChannelConvergence, Curve, Downloads, ExpectationResult, MachineEnd, OffChannel, Orphan, PlatformLag,
    Report, RowCounts, Rows, StableLag, Stranded, Wall, build_report,
};
pub use svg::{SvgError, convergence_svg};
pub use zoom::Zoom;

use crate::protocol::Version;
use crate::server::catalog::Catalog;
use crate::server::core::Counters;
use crate::server::store::{AgentRow, RolloutRow};

/// Everything a simulation produced, for the report.
#[derive(Debug)]
pub struct Outcome {
    /// Ground truth.
    pub recorder: Recorder,
    /// Broken promises of the update model found during the run.
    pub violations: Vec<String>,
    /// Agent rows as the server's store holds them at the end.
    pub store_rows: Vec<AgentRow>,
    /// The server's counters, summed over restarts.
    pub counters: Counters,
    /// The last scan.
    pub catalog: Catalog,
    /// Blocked versions at the end.
    pub blocked: Vec<Version>,
    /// Rollout rows at the end.
    pub rollouts: Vec<RolloutRow>,
    /// When each build was published (from the start).
    pub published: BTreeMap<Version, Duration>,
    /// Successful promotes.
    pub promoted: BTreeMap<Version, Duration>,
    /// Rollbacks.
    pub rolled_back: BTreeMap<Version, Duration>,
    /// Wall-clock time of the run.
    pub wall: Duration,
    /// The transport used, by name.
    pub transport: String,
    /// The download storm: bytes, concurrency and egress.
    pub storm: crate::agent::StormFigures,
    /// The server's log signatures at the end (U13).
    pub logs: LogsSeen,
}

/// Measures the wall-clock time of a run: the one place a simulation reads
/// the real clock, and only to report its own speed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallTimer(std::time::Instant);

impl WallTimer {
    /// Starts measuring.
    #[allow(clippy::disallowed_methods)]
    pub fn start() -> Self {
        Self(std::time::Instant::now())
    }

    /// Time since start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Writes `report.json`, `report.md`, `report.html` and `convergence.svg` into `dir`.
pub(crate) fn write_reports(dir: &std::path::Path, report: &Report) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(dir.join("report.json"), json + "\n").context("writing report.json")?;
    std::fs::write(dir.join("report.md"), markdown(report)).context("writing report.md")?;
    std::fs::write(dir.join("report.html"), html(report)).context("writing report.html")?;
    let svg = convergence_svg(report).context("drawing convergence.svg")?;
    std::fs::write(dir.join("convergence.svg"), svg).context("writing convergence.svg")?;
    Ok(())
}
