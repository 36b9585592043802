//! The promote health gate (U9): the beta fleet's outcomes on a version,
//! counted so that made-up enrolments cannot pass it (this project's rule,
//! update-model.md). Each machine counts once, by its latest outcome, and
//! only a machine whose row was enrolled no later than the build's rollout
//! row was published (the first scan that saw the beta build): rows made
//! after the build appeared are ignored, however many report success.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Core, CoreError};
use crate::protocol::{Platform, Version};
use crate::server::store::{RolloutRow, UpdateRow, UpdateStatus};

/// The health gate's figures for a promote (U9).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateCheck {
    /// Platforms the figures cover.
    pub platforms: Vec<Platform>,
    /// Machines whose latest counted outcome on the version is a success.
    pub successes: u64,
    /// Machines whose latest counted outcome on the version is a failure.
    pub failures: u64,
    /// failures / (successes + failures); 0 when there were none.
    pub failure_rate: f64,
    /// The gate's minimum of successes.
    pub min_successes: u64,
    /// The gate's maximum failure rate.
    pub max_failure_rate: f64,
    /// Whether the gate passes.
    pub passed: bool,
    /// Outcomes counted: one per machine (`successes + failures`).
    pub counted: u64,
    /// Outcomes on the version's rows not counted
    /// (`ignored_repeats + ignored_enrolled_after_publish`).
    pub ignored: u64,
    /// Earlier outcomes of a machine that has a later one.
    pub ignored_repeats: u64,
    /// Outcomes of agent rows enrolled after the build was published.
    pub ignored_enrolled_after_publish: u64,
}

impl Core {
    /// The gate's figures over the rollout rows of `version` on `scope`
    /// (every platform when `None`), from the update history.
    pub fn gate_check(&mut self, version: Version, scope: Option<&Platform>) -> Result<GateCheck, CoreError> {
        let rows: Vec<RolloutRow> = self
            .rollouts
            .values()
            .filter(|r| r.version == version && scope.is_none_or(|p| &r.platform == p))
            .cloned()
            .collect();
        let outcomes = if rows.is_empty() {
            Vec::new()
        } else {
            self.store.outcomes_to(version)?
        };
        let platforms = match scope {
            Some(p) => vec![p.clone()],
            None => rows.iter().map(|r| r.platform.clone()).collect(),
        };
        Ok(self.judge(platforms, &rows, &outcomes))
    }

    /// Counts `outcomes` (updates to the version, by id) against `rows`.
    fn judge(&self, platforms: Vec<Platform>, rows: &[RolloutRow], outcomes: &[UpdateRow]) -> GateCheck {
        let mut latest = BTreeMap::new();
        let (mut seen, mut enrolled_after) = (0, 0);
        for u in outcomes {
            let Some(row) = rows.iter().find(|r| r.platform == u.platform) else {
                continue;
            };
            let outcome = match (u.status, u.late_outcome) {
                (UpdateStatus::Succeeded | UpdateStatus::Failed, _) => u.status,
                (_, Some(late)) => late,
                (_, None) => continue,
            };
            seen += 1;
            match self.agents.get(&u.agent_id) {
                Some(agent) if agent.enrolled_at <= row.published_at => {
                    // By id: a later update's outcome replaces an earlier one.
                    latest.insert(agent.device_id.machine(), outcome);
                }
                _ => enrolled_after += 1,
            }
        }
        let successes = latest.values().filter(|&&o| o == UpdateStatus::Succeeded).count() as u64;
        let counted = latest.len() as u64;
        let failures = counted - successes;
        let failure_rate = if counted == 0 {
            0.0
        } else {
            failures as f64 / counted as f64
        };
        let gate = self.config.gate;
        GateCheck {
            platforms,
            successes,
            failures,
            failure_rate,
            min_successes: gate.min_successes,
            max_failure_rate: gate.max_failure_rate,
            passed: successes >= gate.min_successes && failure_rate <= gate.max_failure_rate,
            counted,
            ignored: seen - counted,
            ignored_repeats: seen - counted - enrolled_after,
            ignored_enrolled_after_publish: enrolled_after,
        }
    }
}
