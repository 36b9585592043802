//! The promote health gate (U9): the beta fleet's outcomes on a version,
//! counted so that made-up enrolments cannot pass it (this project's rule,
//! update-model.md). Each machine counts once, by its latest outcome, and
//! only a machine whose row was enrolled no later than the build's rollout
//! row was published (the first scan that saw the beta build): rows made
//! after the build appeared are ignored, however many report success.
//!
//! With [`HealthGate::max_new_error_rate`](super::HealthGate) set (this
//! project's addition, beyond the source; off by default), the gate also
//! reads the field (U13): every `error` signature first seen on the
//! candidate version, logged on it more often per machine-hour on it than
//! the limit, refuses the promote. Signatures carry no platform, so this
//! part covers every platform whatever the promote's scope.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Core, CoreError};
use crate::protocol::{Platform, Version};
use crate::server::store::{RolloutRow, SignatureId, UpdateRow, UpdateStatus};

/// An `error` signature first seen on the gated version, and how often it
/// is logged there (U13).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewError {
    /// The signature's id (`GET /api/logs/signatures/{id}`).
    pub id: SignatureId,
    /// The normalised message.
    pub signature: String,
    /// Times logged on the version.
    pub count: u64,
    /// Agent rows that logged it on the version.
    pub machines: u64,
    /// `count` / machine-hours on the version; `None` while agents have
    /// spent no measured time on it (then any count exceeds a limit).
    pub rate_per_machine_hour: Option<f64>,
    /// Whether the rate is over the gate's `max_new_error_rate`.
    pub over: bool,
}

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
    /// The gate's limit on new errors per machine-hour; `None`: not checked.
    pub max_new_error_rate: Option<f64>,
    /// Machine-hours agents spent connected on the version (every platform).
    pub machine_hours: f64,
    /// Every `error` signature first seen on the version, by id, with its
    /// rate; when the limit is set, any `over` it refuses the promote.
    pub new_errors: Vec<NewError>,
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
        let mut check = self.judge(platforms, &rows, &outcomes);
        check.machine_hours = self.machine_hours_on(version);
        check.new_errors = self.new_errors(version)?;
        check.passed &= check.new_errors.iter().all(|e| !e.over);
        Ok(check)
    }

    /// The `error` signatures first seen on `version`, each with its rate
    /// per machine-hour on it, judged against the gate's limit.
    fn new_errors(&mut self, version: Version) -> Result<Vec<NewError>, CoreError> {
        let filter = super::SignatureFilter {
            level: Some("error".into()),
            new_in: Some(version),
            ..Default::default()
        };
        let hours = self.machine_hours_on(version);
        let limit = self.config.gate.max_new_error_rate;
        let mut found = Vec::new();
        for sig in self.log_signatures(&filter)? {
            let on = self
                .signature_versions(sig.id)?
                .into_iter()
                .find(|r| r.version == version);
            let Some(on) = on else { continue };
            let rate = (hours > 0.0).then(|| on.count as f64 / hours);
            found.push(NewError {
                id: sig.id,
                signature: sig.signature,
                count: on.count,
                machines: on.machines,
                rate_per_machine_hour: rate,
                over: limit.is_some_and(|max| rate.is_none_or(|r| r > max)),
            });
        }
        Ok(found)
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
            max_new_error_rate: gate.max_new_error_rate,
            machine_hours: 0.0,
            new_errors: Vec::new(),
        }
    }
}
