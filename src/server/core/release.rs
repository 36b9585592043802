//! Promote (U9) and rollback (U10): the two changes that edit the
//! downloads folder and the rows together, made crash-consistent by an
//! intent row (design.md, Crash consistency).
//!
//! Each one checks first, then commits its intent (a rollback commits its
//! block, rollout rows and cancelled updates in the same transaction), then
//! edits the files, then commits the transaction that deletes the intent.
//! The file edits and that last commit are one `finish_` function, which is
//! idempotent: [`Core::open`] calls it for every intent a crash left, so a
//! change that began is always completed, never undone.

use serde::Serialize;
use tracing::{info, warn};

use super::gate::GateCheck;
use super::{Core, CoreError};
use crate::clock::Timestamp;
use crate::protocol::{AgentId, Channel, ErrorCode, Platform, Version};
use crate::server::failpoint::{Op, Step};
use crate::server::publish;
use crate::server::scanner;
use crate::server::store::{
    BlockedRow, Change, IntentKind, IntentRow, RolloutRow, RolloutStatus, UpdateReason, UpdateRow, UpdateStatus,
};

/// What a promote did.
#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    /// The version promoted.
    pub version: Version,
    /// The build files whose `.channel` was rewritten from beta to stable:
    /// every platform, every name form, offered by the scan or not.
    pub sidecars_flipped: Vec<String>,
    /// The gate as evaluated.
    pub gate: GateCheck,
    /// True when the gate failed and `force` overrode it.
    pub forced: bool,
    /// The rollout rows now promoted.
    pub rollouts: Vec<RolloutRow>,
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    /// The version blocked.
    pub version: Version,
    /// The build files whose `.channel` was removed: every platform, every
    /// name form, offered by the scan or not.
    pub sidecars_removed: Vec<String>,
    /// Pending updates to the version that were ended.
    pub updates_cancelled: usize,
    /// Agent rows running the version.
    pub agents_running: usize,
    /// Connected agents sent a downgrade now; the rest get it on their next heartbeat.
    pub downgrades_pushed: Vec<AgentId>,
    /// The rollout rows now rolled back.
    pub rollouts: Vec<RolloutRow>,
}

impl Core {
    /// U9: flips every `.channel` of `version` in the downloads folder from
    /// beta to stable and rescans: every platform and every name form that
    /// carries the version ([`scanner::sidecars_of`]), including builds the
    /// last scan skipped, so one that is completed later (its `.sha256`
    /// lands) is stable too. `scope` only narrows the gate and the rollout
    /// rows; the gate must pass unless `force`. The version must be one the
    /// last scan offers. The intent is committed before the first file
    /// changes and deleted with the promoted rows: a promote that a crash
    /// interrupts is finished at startup; one that fails on an error here
    /// keeps its intent, and running it again (or a restart) finishes it.
    pub fn promote(&mut self, version: Version, scope: Option<&Platform>, force: bool) -> Result<Promotion, CoreError> {
        if self.catalog.builds_of(version).next().is_none() {
            return Err(CoreError::not_found("version", version));
        }
        if self.blocked_set.contains(&version) {
            return Err(CoreError::conflict(
                ErrorCode::VersionBlocked,
                format!("{version} is blocked (rolled back)"),
            ));
        }
        let beta_files = self.beta_sidecars(version)?;
        let beta_rows = self.beta_rows(version, scope).count();
        if beta_files.is_empty() && beta_rows == 0 && !self.intents.contains_key(&version) {
            return Err(CoreError::conflict(
                ErrorCode::AlreadyPromoted,
                format!("{version} is already stable"),
            ));
        }
        let gate = self.gate_check(version, scope)?;
        if !gate.passed && !force {
            let message = refusal(version, &gate);
            let details = serde_json::to_value(&gate).ok();
            return Err(CoreError::Conflict {
                code: ErrorCode::HealthGate,
                message,
                details,
            });
        }
        let intent = IntentRow {
            version,
            kind: IntentKind::Promote,
            scope: scope.cloned(),
            created_at: self.now(),
        };
        self.begin(Op::Promote, vec![Change::Intent(intent)])?;
        let (sidecars_flipped, rows) = self.finish_promote(version, scope)?;
        self.rescan()?;
        self.check_all();
        info!(
            "promoted {version}: {} sidecars flipped, forced: {}",
            sidecars_flipped.len(),
            !gate.passed
        );
        Ok(Promotion {
            version,
            sidecars_flipped,
            forced: !gate.passed,
            gate,
            rollouts: rows,
        })
    }

    /// The build files whose `.channel` of `version` says beta.
    fn beta_sidecars(&self, version: Version) -> Result<Vec<String>, CoreError> {
        Ok(scanner::sidecars_of(&self.config.downloads, version)?
            .into_iter()
            .filter(|s| s.channel == Channel::Beta)
            .map(|s| s.file)
            .collect())
    }

    /// The beta rollout rows of `version` on `scope` (every platform when `None`).
    fn beta_rows(&self, version: Version, scope: Option<&Platform>) -> impl Iterator<Item = &RolloutRow> {
        self.rollouts.values().filter(move |r| {
            r.version == version && r.status == RolloutStatus::Beta && scope.is_none_or(|p| &r.platform == p)
        })
    }

    /// Commits the first transaction of a promote or rollback, the one that
    /// holds its intent; from here on a scan begun earlier is stale.
    fn begin(&mut self, op: Op, changes: Vec<Change>) -> Result<(), CoreError> {
        self.write(changes)?;
        self.folder_edits += 1;
        self.failpoint(op, Step::AfterIntent);
        Ok(())
    }

    /// A promote's file edits and last commit: every beta `.channel` of
    /// `version` rewritten to stable, then its beta rows on `scope` promoted
    /// in the transaction that deletes the intent. What it finds already
    /// done it leaves alone, so it finishes a promote cut short anywhere.
    fn finish_promote(
        &mut self,
        version: Version,
        scope: Option<&Platform>,
    ) -> Result<(Vec<String>, Vec<RolloutRow>), CoreError> {
        let files = self.beta_sidecars(version)?;
        for (n, file) in (1..).zip(&files) {
            publish::set_sidecar(&self.config.downloads, file, Channel::Stable)?;
            self.failpoint(Op::Promote, Step::AfterSidecar(n));
        }
        let now = self.now();
        let rows: Vec<RolloutRow> = self
            .beta_rows(version, scope)
            .map(|r| RolloutRow {
                status: RolloutStatus::Promoted,
                promoted_at: Some(now),
                ..r.clone()
            })
            .collect();
        let changes = rows.iter().cloned().map(Change::Rollout);
        self.write(changes.chain([Change::IntentDone(version)]).collect())?;
        self.failpoint(Op::Promote, Step::AfterCommit);
        Ok((files, rows))
    }

    /// U10: blocks `version` for good, removes every `.channel` of it in the
    /// downloads folder (every platform and name form, as promote finds
    /// them), rescans, and moves connected agents running it to their
    /// channel's latest now (the rest move on their next heartbeat, U3). The
    /// version must be one the last scan offers. The block, the rows and the
    /// intent are one transaction before the first file changes; the intent
    /// is deleted once every sidecar is gone. A rollback of a blocked version
    /// whose intent is still there (a sidecar could not be removed) finishes
    /// it instead of being refused.
    pub fn rollback(&mut self, version: Version) -> Result<Rollback, CoreError> {
        if self.blocked_set.contains(&version) {
            if self
                .intents
                .get(&version)
                .is_some_and(|i| i.kind == IntentKind::Rollback)
            {
                return self.resume_rollback(version);
            }
            return Err(CoreError::conflict(
                ErrorCode::AlreadyRolledBack,
                format!("{version} is already blocked"),
            ));
        }
        if self.catalog.builds_of(version).next().is_none() {
            return Err(CoreError::not_found("version", version));
        }
        // Listed before anything changes, so a folder that cannot be read
        // changes nothing.
        scanner::sidecars_of(&self.config.downloads, version)?;
        let now = self.now();
        let mut changes = vec![
            Change::Blocked(BlockedRow {
                version,
                blocked_at: now,
            }),
            Change::Intent(IntentRow {
                version,
                kind: IntentKind::Rollback,
                scope: None,
                created_at: now,
            }),
        ];
        let rows: Vec<RolloutRow> = self
            .rollouts
            .values()
            .filter(|r| r.version == version)
            .map(|r| RolloutRow {
                status: RolloutStatus::RolledBack,
                rolled_back_at: Some(now),
                ..r.clone()
            })
            .collect();
        changes.extend(rows.iter().cloned().map(Change::Rollout));
        let cancelled: Vec<UpdateRow> = self
            .pending
            .values()
            .filter(|p| p.to_version == version)
            .cloned()
            .collect();
        let updates_cancelled = cancelled.len();
        for p in cancelled {
            changes.extend(self.finish(
                p,
                UpdateStatus::Superseded,
                Some(format!("{version} was rolled back")),
                now,
            ));
        }
        self.begin(Op::Rollback, changes)?;
        let sidecars_removed = self.finish_rollback(version)?;
        self.after_rollback(version, sidecars_removed, updates_cancelled, rows, now)
    }

    /// Finishes a rollback an error cut short (its version is blocked, its
    /// intent still there).
    fn resume_rollback(&mut self, version: Version) -> Result<Rollback, CoreError> {
        let now = self.now();
        let sidecars_removed = self.finish_rollback(version)?;
        let rows = self
            .rollouts
            .values()
            .filter(|r| r.version == version)
            .cloned()
            .collect();
        self.after_rollback(version, sidecars_removed, 0, rows, now)
    }

    /// A rollback's file edits and last commit: every `.channel` of
    /// `version` removed, then the intent deleted. Idempotent.
    fn finish_rollback(&mut self, version: Version) -> Result<Vec<String>, CoreError> {
        let mut removed = Vec::new();
        for (n, sidecar) in (1..).zip(scanner::sidecars_of(&self.config.downloads, version)?) {
            if publish::remove_sidecar(&self.config.downloads, &sidecar.file)? {
                removed.push(sidecar.file);
            }
            self.failpoint(Op::Rollback, Step::AfterSidecar(n));
        }
        self.write(vec![Change::IntentDone(version)])?;
        self.failpoint(Op::Rollback, Step::AfterCommit);
        Ok(removed)
    }

    /// What follows a rollback's files: the rescan, the downgrades pushed.
    fn after_rollback(
        &mut self,
        version: Version,
        sidecars_removed: Vec<String>,
        updates_cancelled: usize,
        rollouts: Vec<RolloutRow>,
        now: Timestamp,
    ) -> Result<Rollback, CoreError> {
        self.rescan()?;
        let (agents_running, downgrades_pushed) = self.push_downgrades(version, now)?;
        self.check_all();
        info!(
            "rolled back {version}: {agents_running} agents on it, {} downgrades pushed",
            downgrades_pushed.len()
        );
        Ok(Rollback {
            version,
            sidecars_removed,
            updates_cancelled,
            agents_running,
            downgrades_pushed,
            rollouts,
        })
    }

    /// Finishes every promote and rollback a crash interrupted (called by
    /// [`Core::open`] before its first scan): after it the files and the
    /// rows agree. Completing rather than undoing: the intent is written
    /// only once the change was checked (the gate passed), and a rollback's
    /// block is already committed with it.
    pub(super) fn finish_intents(&mut self) -> Result<(), CoreError> {
        let intents: Vec<IntentRow> = self.intents.values().cloned().collect();
        for intent in intents {
            let version = intent.version;
            match intent.kind {
                IntentKind::Promote => {
                    let (files, rows) = self.finish_promote(version, intent.scope.as_ref())?;
                    warn!(
                        "finished the promote of {version} a stop interrupted: {} sidecars flipped, {} rollout rows promoted",
                        files.len(),
                        rows.len()
                    );
                }
                IntentKind::Rollback => {
                    let files = self.finish_rollback(version)?;
                    warn!(
                        "finished the rollback of {version} a stop interrupted: {} sidecars removed",
                        files.len()
                    );
                }
            }
        }
        Ok(())
    }

    /// U10, U5: sends every connected agent running the (now blocked)
    /// `version` its channel's newest allowed build. Returns how many rows
    /// run it and which were sent a downgrade.
    fn push_downgrades(&mut self, version: Version, now: Timestamp) -> Result<(usize, Vec<AgentId>), CoreError> {
        let running: Vec<(AgentId, Version)> = self
            .agents
            .values()
            .filter(|a| a.version == version)
            .map(|a| (a.id, a.version))
            .collect();
        let mut downgrades = Vec::new();
        let mut changes = Vec::new();
        for &(id, current) in &running {
            if !self.is_online(id) {
                continue;
            }
            let Some(row) = self.decide(id, current, UpdateReason::Rollback, now) else {
                continue;
            };
            // One pending update per agent: keep one that already goes there,
            // end one that goes elsewhere.
            match self.pending.get(&id).cloned() {
                Some(p) if p.to_version == row.to_version => continue,
                Some(p) => {
                    let why = Some(format!("replaced by the downgrade off {version}"));
                    changes.extend(self.finish(p, UpdateStatus::Superseded, why, now));
                }
                None => {}
            }
            changes.push(Change::Update(row.clone()));
            downgrades.push(row);
        }
        self.write(changes)?;
        let mut pushed = Vec::new();
        for row in &downgrades {
            if self.offer_for(row).is_some_and(|offer| self.push(row.agent_id, offer)) {
                pushed.push(row.agent_id);
            }
        }
        Ok((running.len(), pushed))
    }
}

/// Why the health gate refused a promote, for people: the beta figures,
/// and each new error signature over the limit with its rate (U13).
fn refusal(version: Version, gate: &GateCheck) -> String {
    let mut message = format!(
        "health gate refused {version}: {} successes (at least {} needed), failure rate {:.2} (at most {:.2}), \
         over {} machines; {} outcomes ignored",
        gate.successes, gate.min_successes, gate.failure_rate, gate.max_failure_rate, gate.counted, gate.ignored
    );
    let over: Vec<String> = gate
        .new_errors
        .iter()
        .filter(|e| e.over)
        .map(|e| match e.rate_per_machine_hour {
            Some(rate) => format!("#{} `{}` {rate:.2}/machine-hour", e.id, e.signature),
            None => format!(
                "#{} `{}` {} times in no measured machine-hours",
                e.id, e.signature, e.count
            ),
        })
        .collect();
    if let (false, Some(max)) = (over.is_empty(), gate.max_new_error_rate) {
        message.push_str(&format!(
            "; error signatures new in {version} over {max:.2}/machine-hour ({:.2} machine-hours on it): {}",
            gate.machine_hours,
            over.join(", ")
        ));
    }
    message.push_str("; pass force to override");
    message
}
