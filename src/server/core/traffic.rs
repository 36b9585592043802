//! What agents cause: `hello`, heartbeats and update results (U1, U3, U4,
//! U12), and the connections updates are pushed over (U5).

use tracing::{debug, info, warn};

use super::{Connection, Core, CoreError};
use crate::clock::Timestamp;
use crate::protocol::{AgentId, Channel, ErrorCode, Hello, Platform, UpdateId, UpdateOffer, UpdateResult, Version};
use crate::server::rules;
use crate::server::store::{AgentRow, Change, RolloutRow, UpdateReason, UpdateRow, UpdateStatus};

/// Longest hostname kept; longer ones are refused rather than cut.
const MAX_HOSTNAME: usize = 255;

impl Core {
    /// Admits an agent by its site key and registers it under its device id
    /// exactly (U12): an id never seen makes a new row. Ends a pending update
    /// the agent has come back from.
    pub fn hello(&mut self, hello: &Hello) -> Result<AgentId, CoreError> {
        let &site_id = self.site_keys.get(&hello.site_key).ok_or(CoreError::UnknownSiteKey)?;
        let platform = Platform::new(&hello.os, &hello.arch)
            .map_err(|e| CoreError::invalid(ErrorCode::InvalidMessage, e.to_string()))?;
        if hello.hostname.is_empty() || hello.hostname.len() > MAX_HOSTNAME {
            return Err(CoreError::invalid(
                ErrorCode::InvalidMessage,
                "hostname must be 1 to 255 bytes",
            ));
        }
        let now = self.now();
        let row = match self.agent_by_device(&hello.device_id) {
            Some(existing) => AgentRow {
                site_id,
                hostname: hello.hostname.clone(),
                platform,
                version: hello.version,
                last_seen: now,
                ..existing.clone()
            },
            None => AgentRow {
                id: AgentId(self.agents.keys().next_back().map_or(1, |id| id.0 + 1)),
                device_id: hello.device_id,
                site_id,
                hostname: hello.hostname.clone(),
                platform,
                version: hello.version,
                channel: None,
                enrolled_at: now,
                last_seen: now,
            },
        };
        let id = row.id;
        let mut changes = vec![Change::Agent(row)];
        if let Some(p) = self.pending.get(&id).filter(|p| p.to_version == hello.version).cloned() {
            changes.extend(self.finish(p, UpdateStatus::Succeeded, None, now));
        }
        self.write(changes)?;
        self.counters.hellos += 1;
        Ok(id)
    }

    /// U1: a heartbeat. Ends or re-sends the pending update (U4), else asks
    /// U3 whether the agent needs one and dispatches it.
    pub fn heartbeat(&mut self, id: AgentId, version: Version) -> Result<Option<UpdateOffer>, CoreError> {
        let now = self.now();
        let row = self.agents.get(&id).ok_or_else(|| CoreError::not_found("agent", id))?;
        let moved = (row.version != version).then(|| AgentRow {
            version,
            last_seen: now,
            ..row.clone()
        });
        // Most heartbeats change nothing but last_seen: no allocation for them.
        let mut changes = Vec::new();
        let mut offer = None;
        if let Some(p) = self.pending.get(&id).cloned() {
            let resend = self.offer_for(&p);
            if version == p.to_version {
                changes.extend(self.finish(p, UpdateStatus::Succeeded, None, now));
            } else if version == p.from_version && resend.is_some() && self.still_allowed(&p) {
                // U4: still on the old version, so the same update goes again.
                info!(
                    "[RE-DISPATCH] agent {} ({}) update {} to {} (send #{})",
                    id,
                    self.agents[&id].device_id,
                    p.id,
                    p.to_version,
                    p.dispatches + 1
                );
                offer = resend;
                changes.push(Change::Update(UpdateRow {
                    dispatches: p.dispatches + 1,
                    ..p
                }));
            } else {
                let why = if resend.is_none() {
                    "its build is gone"
                } else if version == p.from_version {
                    "its channel no longer allows it"
                } else {
                    "the agent moved to another version"
                };
                changes.extend(self.finish(p, UpdateStatus::Superseded, Some(why.into()), now));
            }
        }
        if offer.is_none() {
            if let Some(row) = self.decide(id, version, UpdateReason::Heartbeat, now) {
                offer = self.offer_for(&row);
                changes.push(Change::Update(row));
            }
        }
        changes.splice(0..0, moved.map(Change::Agent));
        self.write(changes)?;
        // last_seen alone is written in batches (see `flush`); memory is
        // always current, so every read sees it. Stamped once the batch is
        // committed: a heartbeat whose commit fails changes nothing.
        if let Some(row) = self.agents.get_mut(&id) {
            row.last_seen = now;
        }
        self.unflushed.insert(id);
        self.counters.heartbeats += 1;
        Ok(offer)
    }

    /// U4: an agent reports how an update went. The report may come from the
    /// row the update was sent to or, after a restart that crossed the
    /// identity boundary (U12), from the new row of the same machine.
    pub fn update_result(&mut self, id: AgentId, result: &UpdateResult) -> Result<(), CoreError> {
        let machine = |core: &Self, a: AgentId| core.agents.get(&a).map(|r| r.device_id.machine());
        let Some(&owner) = self.pending_ids.get(&result.update_id) else {
            let finished = self.store.update(result.update_id)?;
            return match finished {
                Some(u) if u.agent_id == id || machine(self, u.agent_id) == machine(self, id) => {
                    self.late_result(u, result)
                }
                _ => Err(CoreError::UnknownUpdate(result.update_id)),
            };
        };
        if owner != id && machine(self, owner) != machine(self, id) {
            return Err(CoreError::UnknownUpdate(result.update_id));
        }
        let p = self.pending[&owner].clone();
        let now = self.now();
        let (status, why) = reported_outcome(&p, result);
        let changes = self.finish(p, status, why, now);
        self.write(changes)
    }

    /// A report on an update that has already ended. The server ends an
    /// update as superseded without asking the agent, which may be
    /// downloading or installing it at that moment and carry on: what it
    /// reports then really happened, so it counts on the rollout row of the
    /// version it attempted, once (this project's choice; see
    /// `update-model.md`). The update keeps its status. Any other late
    /// report (the update had already succeeded or failed, or this one was
    /// already counted) is ignored.
    fn late_result(&mut self, u: UpdateRow, result: &UpdateResult) -> Result<(), CoreError> {
        if u.status != UpdateStatus::Superseded || u.late_outcome.is_some() {
            debug!("update {} already ended; report ignored", u.id);
            return Ok(());
        }
        let (outcome, _) = reported_outcome(&u, result);
        // The install may have been counted already: a later update of the
        // same row to the same version ends as succeeded when the agent comes
        // back on it, whichever offer it installed.
        let counted = outcome == UpdateStatus::Succeeded
            && self
                .store
                .updates_of(u.agent_id)?
                .iter()
                .any(|l| l.id > u.id && l.to_version == u.to_version && l.status == UpdateStatus::Succeeded);
        let mut changes = Vec::with_capacity(2);
        if !counted {
            changes.extend(self.tally(&u, outcome).map(Change::Rollout));
        }
        changes.insert(
            0,
            Change::Update(UpdateRow {
                late_outcome: Some(outcome),
                ..u
            }),
        );
        self.write(changes)
    }

    /// U13 will group these by signature; for now they are counted and logged.
    pub fn log(&mut self, id: AgentId, level: &str, message: &str) {
        self.counters.logs += 1;
        debug!(agent = %id, level, "agent log: {message}");
    }

    /// Registers the connection an admitted agent talks over.
    pub fn connect(&mut self, id: AgentId, conn: Connection) {
        self.connections.insert(id, conn);
    }

    /// Forgets a connection, unless the agent has already reconnected on another.
    pub fn disconnect(&mut self, id: AgentId, conn_id: u64) {
        if self.connections.get(&id).is_some_and(|c| c.id == conn_id) {
            self.connections.remove(&id);
        }
    }

    /// Whether a pending update may still be re-sent (U4) to its agent. An
    /// update the server decided (heartbeat, rollback) goes no further once
    /// the agent's channel forbids its build: a stable agent is never sent a
    /// beta build (U7). A manual update (U5) is the administrator's choice.
    fn still_allowed(&self, p: &UpdateRow) -> bool {
        if p.reason == UpdateReason::Manual {
            return true;
        }
        let channel = self.agents.get(&p.agent_id).map(|a| self.channel_of(a));
        let build = self.catalog.find(&p.platform, p.to_version);
        channel == Some(Channel::Beta) || build.is_some_and(|b| b.channel == Channel::Stable)
    }

    /// Forgets every connection (the server is shutting down).
    pub fn disconnect_all(&mut self) {
        self.connections.clear();
    }

    /// Pushes an `update` to a connected agent (U5). False if it is offline,
    /// or its session has not taken the frames pushed before: then the push
    /// is dropped and counted, and the update, still pending, is re-sent on
    /// the agent's next heartbeat (U4).
    pub(super) fn push(&mut self, id: AgentId, offer: UpdateOffer) -> bool {
        let Some(c) = self.connections.get(&id) else {
            return false;
        };
        match c.outbox.try_send(crate::protocol::ServerMessage::Update(offer)) {
            Ok(()) => true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                self.push_overflows += 1;
                warn!("push to agent {id} dropped: its session has not taken the earlier ones");
                false
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// U2 + U7 + U3 for one agent: a new pending update, if it needs one.
    pub(super) fn decide(
        &mut self,
        id: AgentId,
        version: Version,
        reason: UpdateReason,
        now: Timestamp,
    ) -> Option<UpdateRow> {
        let agent = self.agents.get(&id)?;
        let channel = self.channel_of(agent);
        let target = self
            .targets
            .get(&self.catalog, &self.blocked_set, &agent.platform, channel);
        let to = rules::needs_update(version, target, &self.blocked_set)?;
        let row = pending_row(self.next_update_id(), agent, version, to, channel, reason, now);
        Some(self.issue(row))
    }

    /// Takes the id a new pending row was built with and counts the dispatch.
    pub(super) fn issue(&mut self, row: UpdateRow) -> UpdateRow {
        self.max_update_id = self.max_update_id.max(row.id.0);
        row
    }

    /// The id the next new update gets.
    pub(super) fn next_update_id(&self) -> UpdateId {
        UpdateId(self.max_update_id + 1)
    }

    /// The `update` frame for a row: where its build is and how to check it.
    /// `None` when the scan no longer has the build.
    pub(super) fn offer_for(&self, row: &UpdateRow) -> Option<UpdateOffer> {
        let build = self.catalog.find(&row.platform, row.to_version)?;
        Some(UpdateOffer {
            update_id: row.id,
            version: row.to_version,
            url: format!("{}/downloads/{}", self.config.public_url, build.file),
            sha256: build.sha256.clone(),
            size: build.size,
        })
    }

    /// Ends a pending update and, for an outcome, counts it on its rollout (U11).
    pub(super) fn finish(
        &mut self,
        p: UpdateRow,
        status: UpdateStatus,
        error: Option<String>,
        now: Timestamp,
    ) -> Vec<Change> {
        let mut changes = Vec::with_capacity(2);
        changes.extend(self.tally(&p, status).map(Change::Rollout));
        changes.insert(
            0,
            Change::Update(UpdateRow {
                status,
                finished_at: Some(now),
                error,
                ..p
            }),
        );
        changes
    }

    /// The rollout row of an update's target version and platform with one
    /// more success or failure; `None` for any other status, or when the
    /// version has no row (it never went through beta).
    fn tally(&self, u: &UpdateRow, outcome: UpdateStatus) -> Option<RolloutRow> {
        let r = self.rollouts.get(&(u.to_version, u.platform.clone()))?;
        match outcome {
            UpdateStatus::Succeeded => Some(RolloutRow {
                successes: r.successes + 1,
                ..r.clone()
            }),
            UpdateStatus::Failed => Some(RolloutRow {
                failures: r.failures + 1,
                ..r.clone()
            }),
            UpdateStatus::Pending | UpdateStatus::Superseded => None,
        }
    }
}

/// What a report makes of an update: success on its target, else a failure
/// with the reason.
fn reported_outcome(u: &UpdateRow, result: &UpdateResult) -> (UpdateStatus, Option<String>) {
    match (result.success, result.version == u.to_version) {
        (true, true) => (UpdateStatus::Succeeded, None),
        (true, false) => (
            UpdateStatus::Failed,
            Some(format!(
                "reported success on {}, expected {}",
                result.version, u.to_version
            )),
        ),
        (false, _) => (
            UpdateStatus::Failed,
            Some(result.error.clone().unwrap_or_else(|| "no reason given".into())),
        ),
    }
}

/// A new pending update for `agent`, from `from` to `to`.
pub(super) fn pending_row(
    id: UpdateId,
    agent: &AgentRow,
    from: Version,
    to: Version,
    channel: Channel,
    reason: UpdateReason,
    now: Timestamp,
) -> UpdateRow {
    UpdateRow {
        id,
        agent_id: agent.id,
        platform: agent.platform.clone(),
        from_version: from,
        to_version: to,
        channel,
        reason,
        status: UpdateStatus::Pending,
        dispatches: 1,
        dispatched_at: now,
        finished_at: None,
        error: None,
        late_outcome: None,
    }
}
