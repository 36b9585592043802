//! What agents cause: `hello`, heartbeats and update results (U1, U3, U4,
//! U12), and the connections updates are pushed over (U5).

use std::time::Duration;

use tracing::{debug, info};

use super::{Connection, Core, CoreError};
use crate::clock::Timestamp;
use crate::protocol::{
    AgentId, Channel, ErrorCode, Hello, Platform, SiteId, UpdateId, UpdateOffer, UpdateResult, Version,
};
use crate::server::rules;
use crate::server::store::{AgentRow, Change, RolloutRow, SiteMoveRow, UpdateReason, UpdateRow, UpdateStatus};

/// Longest hostname kept; longer ones are refused rather than cut.
const MAX_HOSTNAME: usize = 255;

/// At most one `[RE-DISPATCH]` line per agent this often; the re-sends in
/// between are counted (`redispatches`) and the next line says how many
/// went unlogged. An agent heartbeating fast on an old version would
/// otherwise write a line per heartbeat.
pub const REDISPATCH_LOG_EVERY: Duration = Duration::from_secs(60);

/// Update ids are SQLite integers: none above this was ever handed out.
const MAX_UPDATE_ID: u64 = i64::MAX as u64;

/// A hostname is 1 to [`MAX_HOSTNAME`] bytes without control characters
/// (it reaches logs, the API and terminals).
fn check_hostname(hostname: &str) -> Result<(), CoreError> {
    if hostname.is_empty() || hostname.len() > MAX_HOSTNAME || hostname.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidMessage,
            "hostname must be 1 to 255 bytes without control characters",
        ));
    }
    Ok(())
}

impl Core {
    /// Admits an agent by its site key and registers it under its device id
    /// exactly (U12): an id never seen makes a new row, within the site
    /// key's enrolments per minute. A device id is bound to its client (this
    /// project's rule): a `hello` for an existing row with a site key of
    /// another client is refused and changes nothing; one with another site
    /// of the same client moves the row there and records the move. Ends a
    /// pending update the agent has come back from, or one for another
    /// platform than the agent now reports (the next heartbeat decides
    /// afresh for the platform it runs).
    pub fn hello(&mut self, hello: &Hello) -> Result<AgentId, CoreError> {
        let &site_id = self.site_keys.get(&hello.site_key).ok_or(CoreError::UnknownSiteKey)?;
        let platform = Platform::new(&hello.os, &hello.arch)
            .map_err(|e| CoreError::invalid(ErrorCode::InvalidMessage, e.to_string()))?;
        check_hostname(&hello.hostname)?;
        let now = self.now();
        let mut changes = Vec::with_capacity(2);
        let existing = self.agent_by_device(&hello.device_id).cloned();
        let enrolling = existing.is_none();
        let row = match existing {
            Some(existing) => {
                changes.extend(self.site_move(&existing, site_id, hello, now)?);
                AgentRow {
                    site_id,
                    hostname: hello.hostname.clone(),
                    platform,
                    version: hello.version,
                    last_seen: now,
                    ..existing
                }
            }
            None => self.enrolment(site_id, hello, platform, now)?,
        };
        let id = row.id;
        if let Some(p) = self.pending.get(&id).cloned() {
            if p.platform != row.platform {
                let why = format!("the agent now reports {}", row.platform);
                changes.extend(self.finish(p, UpdateStatus::Superseded, Some(why), now));
            } else if p.to_version == hello.version {
                changes.extend(self.finish(p, UpdateStatus::Succeeded, None, now));
            }
        }
        changes.insert(0, Change::Agent(row));
        self.write(changes)?;
        if enrolling {
            self.enrolments.count(site_id, now);
        }
        self.counters.hellos += 1;
        debug!(
            "hello: agent {id} ({}, {}) runs {} on {}-{}{}",
            hello.device_id,
            hello.hostname,
            hello.version,
            hello.os,
            hello.arch,
            if enrolling { "; enrolled" } else { "" }
        );
        Ok(id)
    }

    /// A new row for a device id never seen, if its site key may enrol one now.
    fn enrolment(
        &self,
        site_id: SiteId,
        hello: &Hello,
        platform: Platform,
        now: Timestamp,
    ) -> Result<AgentRow, CoreError> {
        let cap = self.config.max_enrolments_per_minute;
        if !self.enrolments.allows(site_id, now, cap) {
            return Err(CoreError::EnrolmentRateLimited {
                site: site_id,
                cap: cap.unwrap_or_default(),
            });
        }
        Ok(AgentRow {
            id: AgentId(self.agents.keys().next_back().map_or(1, |id| id.0 + 1)),
            device_id: hello.device_id,
            site_id,
            hostname: hello.hostname.clone(),
            platform,
            version: hello.version,
            channel: None,
            enrolled_at: now,
            last_seen: now,
            pseudo: false,
        })
    }

    /// The move of an existing row to the site `hello`'s key admits: none
    /// when it is the row's site, a history row within the same client, and
    /// a refusal across clients (a device id is bound to its tenant).
    fn site_move(
        &self,
        row: &AgentRow,
        site_id: SiteId,
        hello: &Hello,
        now: Timestamp,
    ) -> Result<Option<Change>, CoreError> {
        if row.site_id == site_id {
            return Ok(None);
        }
        let client_of = |site| self.sites.get(&site).map(|s| s.client_id);
        let (owner, claimed) = (client_of(row.site_id), client_of(site_id));
        if owner != claimed {
            let (Some(owner), Some(claimed)) = (owner, claimed) else {
                unreachable!("every row's site and every key's site exist")
            };
            return Err(CoreError::IdentityConflict {
                device: hello.device_id,
                agent: row.id,
                owner,
                claimed,
            });
        }
        info!(
            "agent {} ({}) moved from site {} to site {}",
            row.id, row.device_id, row.site_id, site_id
        );
        Ok(Some(Change::SiteMove(SiteMoveRow {
            agent_id: row.id,
            moved_at: now,
            from_site_id: row.site_id,
            to_site_id: site_id,
        })))
    }

    /// U1: a heartbeat. Ends or re-sends the pending update (U4), else asks
    /// U3 whether the agent needs one and dispatches it.
    pub fn heartbeat(&mut self, id: AgentId, version: Version) -> Result<Option<UpdateOffer>, CoreError> {
        let now = self.now();
        let row = self.agents.get(&id).ok_or_else(|| CoreError::not_found("agent", id))?;
        // U13's machine time: since the session's last hello or heartbeat,
        // if the agent ran this version all along.
        let connected_on = (row.version == version).then(|| now.since(row.last_seen));
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
                self.log_redispatch(&p, now);
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
        if let Some(spent) = connected_on {
            self.logs.accrue(version, spent);
        }
        self.unflushed.insert(id);
        self.counters.heartbeats += 1;
        Ok(offer)
    }

    /// One `[RE-DISPATCH]` line per agent per [`REDISPATCH_LOG_EVERY`]; the
    /// line says how many re-sends went unlogged since the last one.
    fn log_redispatch(&mut self, p: &UpdateRow, now: Timestamp) {
        let id = p.agent_id;
        let entry = self.redispatch_log.entry(id).or_insert((Timestamp(i64::MIN), 0));
        if now < entry.0.plus(REDISPATCH_LOG_EVERY) {
            entry.1 += 1;
            return;
        }
        let unlogged = std::mem::replace(entry, (now, 0)).1;
        info!(
            "[RE-DISPATCH] agent {} ({}) update {} to {} (send #{}; {} re-sends not logged since the last line)",
            id,
            self.agents[&id].device_id,
            p.id,
            p.to_version,
            p.dispatches + 1,
            unlogged
        );
    }

    /// The debug line of a committed update row, so one agent can be
    /// followed in the log: its first send (`dispatch`), and how it ended
    /// (`result`, or superseded). A re-send has its `[RE-DISPATCH]` line.
    pub(super) fn log_update(&self, u: &UpdateRow) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let Some(agent) = self.agents.get(&u.agent_id) else {
            return;
        };
        let (id, device) = (u.id, agent.device_id);
        let who = format!("agent {} ({device})", u.agent_id);
        let why = u.error.as_deref().unwrap_or("no reason given");
        match u.status {
            UpdateStatus::Pending if u.dispatches == 1 => {
                let by = match u.reason {
                    UpdateReason::Heartbeat => "its heartbeat",
                    UpdateReason::Manual => "a manual update",
                    UpdateReason::Rollback => "a rollback",
                };
                debug!(
                    "dispatch: update {id} to {who}: {} → {}, by {by}",
                    u.from_version, u.to_version
                );
            }
            UpdateStatus::Pending => {}
            UpdateStatus::Succeeded => debug!("result: update {id} of {who} succeeded: it runs {}", u.to_version),
            UpdateStatus::Failed => debug!("result: update {id} of {who} to {} failed: {why}", u.to_version),
            UpdateStatus::Superseded => debug!("update {id} of {who} to {} superseded: {why}", u.to_version),
        }
    }

    /// U4: an agent reports how an update went. The report may come from the
    /// row the update was sent to or, after a restart that crossed the
    /// identity boundary (U12), from the new row of the same machine in the
    /// same client.
    pub fn update_result(&mut self, id: AgentId, result: &UpdateResult) -> Result<(), CoreError> {
        if result.update_id.0 > MAX_UPDATE_ID {
            return Err(CoreError::invalid(
                ErrorCode::InvalidMessage,
                format!(
                    "update_id {} is out of range (at most {MAX_UPDATE_ID})",
                    result.update_id
                ),
            ));
        }
        let Some(&owner) = self.pending_ids.get(&result.update_id) else {
            let finished = self.store.update(result.update_id)?;
            return match finished {
                Some(u) if self.same_machine(u.agent_id, id) => self.late_result(u, result),
                _ => Err(CoreError::UnknownUpdate(result.update_id)),
            };
        };
        if !self.same_machine(owner, id) {
            return Err(CoreError::UnknownUpdate(result.update_id));
        }
        let p = self.pending[&owner].clone();
        let now = self.now();
        let (status, why) = reported_outcome(&p, result);
        let changes = self.finish(p, status, why, now);
        self.write(changes)
    }

    /// Whether two rows are one machine: the same row, or rows whose device
    /// ids carry the same machine uuid (U12) in the same client.
    fn same_machine(&self, a: AgentId, b: AgentId) -> bool {
        if a == b {
            return true;
        }
        let key = |id| {
            let row = self.agents.get(&id)?;
            let client = self.sites.get(&row.site_id)?.client_id;
            Some((row.device_id.machine(), client))
        };
        key(a).is_some_and(|k| key(b) == Some(k))
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

    /// Registers the connection an admitted agent talks over. A row has one
    /// session: an older connection of the row is forgotten, which closes
    /// its push channel, and its session ends (it closes with
    /// [`CLOSE_REPLACED`](crate::protocol::CLOSE_REPLACED)).
    pub fn connect(&mut self, id: AgentId, conn: Connection) {
        let new = conn.id;
        if let Some(old) = self.connections.insert(id, conn) {
            info!("agent {id}: connection {} replaced by connection {new}", old.id);
        }
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
                let message = format!("push to agent {id} dropped: its session has not taken the earlier ones");
                self.self_log.warn(&message);
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
