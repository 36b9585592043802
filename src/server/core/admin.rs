//! What administrators cause: clients and sites, channels (U2), manual
//! updates (U5), promote (U9), rollback (U10) and rescans (U6).

use serde::Serialize;
use tracing::info;

use super::gate::GateCheck;
use super::traffic::pending_row;
use super::{Core, CoreError};
use crate::clock::Timestamp;
use crate::protocol::{self, AgentId, Channel, ClientId, ErrorCode, NAME_RULE, Platform, SiteId, Version};
use crate::server::catalog::Catalog;
use crate::server::publish;
use crate::server::scanner::{self, Scan};
use crate::server::store::{
    AgentRow, BlockedRow, Change, ClientRow, RolloutRow, RolloutStatus, SiteRow, UpdateReason, UpdateRow, UpdateStatus,
};

/// Whose channel to set (U2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelTarget {
    /// One agent row.
    Agent(AgentId),
    /// Every agent of a site that has no channel of its own.
    Site(SiteId),
    /// Every agent of a client whose agent and site set none.
    Client(ClientId),
}

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

/// What a manual update did (U5).
#[derive(Debug, Clone, Serialize)]
pub struct ManualUpdate {
    /// The pending update created.
    pub update: UpdateRow,
    /// Whether it was pushed now; otherwise the next heartbeat re-sends it (U4).
    pub pushed: bool,
}

fn check_name(what: &str, name: &str) -> Result<(), CoreError> {
    if protocol::is_valid_name(name) {
        Ok(())
    } else {
        Err(CoreError::invalid(
            ErrorCode::InvalidName,
            format!("{what} name must be {NAME_RULE}"),
        ))
    }
}

impl Core {
    /// Creates a client.
    pub fn create_client(&mut self, name: &str, channel: Option<Channel>) -> Result<ClientRow, CoreError> {
        check_name("client", name)?;
        if self.clients.values().any(|c| c.name == name) {
            return Err(CoreError::conflict(
                ErrorCode::ClientExists,
                format!("a client named `{name}` exists"),
            ));
        }
        let id = ClientId(self.clients.keys().next_back().map_or(1, |id| id.0 + 1));
        let row = ClientRow {
            id,
            name: name.to_owned(),
            channel,
            created_at: self.now(),
        };
        self.write(vec![Change::Client(row.clone())])?;
        Ok(row)
    }

    /// Creates a site of a client, with a fresh random site key.
    pub fn create_site(
        &mut self,
        client: ClientId,
        name: &str,
        channel: Option<Channel>,
    ) -> Result<SiteRow, CoreError> {
        check_name("site", name)?;
        if !self.clients.contains_key(&client) {
            return Err(CoreError::not_found("client", client));
        }
        if self.sites.values().any(|s| s.client_id == client && s.name == name) {
            return Err(CoreError::conflict(
                ErrorCode::SiteExists,
                format!("client {client} has a site named `{name}`"),
            ));
        }
        // Drawn from a copy of the generator, kept only once the site is
        // committed: a failed commit changes nothing, the generator included.
        let mut rng = self.rng.clone();
        let site_key = loop {
            let key = hex::encode(rand::Rng::random::<[u8; 16]>(&mut rng));
            if !self.site_keys.contains_key(&key) {
                break key;
            }
        };
        let id = SiteId(self.sites.keys().next_back().map_or(1, |id| id.0 + 1));
        let row = SiteRow {
            id,
            client_id: client,
            name: name.to_owned(),
            channel,
            site_key,
            created_at: self.now(),
        };
        self.write(vec![Change::Site(row.clone())])?;
        self.rng = rng;
        Ok(row)
    }

    /// Sets or clears (`None`: inherit) a channel (U2). Takes effect on the
    /// agents' next heartbeats.
    pub fn set_channel(&mut self, target: ChannelTarget, channel: Option<Channel>) -> Result<(), CoreError> {
        let change = match target {
            ChannelTarget::Agent(id) => {
                let row = self.agents.get(&id).ok_or_else(|| CoreError::not_found("agent", id))?;
                Change::Agent(AgentRow { channel, ..row.clone() })
            }
            ChannelTarget::Site(id) => {
                let row = self.sites.get(&id).ok_or_else(|| CoreError::not_found("site", id))?;
                Change::Site(SiteRow { channel, ..row.clone() })
            }
            ChannelTarget::Client(id) => {
                let row = self
                    .clients
                    .get(&id)
                    .ok_or_else(|| CoreError::not_found("client", id))?;
                Change::Client(ClientRow { channel, ..row.clone() })
            }
        };
        self.write(vec![change])
    }

    /// U5: sends an agent a build now (or on its next heartbeat if offline):
    /// the named version, else the latest of its channel.
    pub fn manual_update(&mut self, id: AgentId, version: Option<Version>) -> Result<ManualUpdate, CoreError> {
        let agent = self
            .agents
            .get(&id)
            .ok_or_else(|| CoreError::not_found("agent", id))?
            .clone();
        let target = match version {
            Some(v) if self.blocked_set.contains(&v) => {
                return Err(CoreError::conflict(
                    ErrorCode::VersionBlocked,
                    format!("{v} is blocked (rolled back)"),
                ));
            }
            Some(v) => self
                .catalog
                .find(&agent.platform, v)
                .ok_or_else(|| CoreError::not_found("build", format!("{v} for {}", agent.platform)))?,
            None => {
                let channel = self.channel_of(&agent);
                self.catalog
                    .latest(&agent.platform, channel, &self.blocked_set)
                    .ok_or_else(|| {
                        CoreError::conflict(ErrorCode::NoBuild, format!("no {channel} build for {}", agent.platform))
                    })?
            }
        }
        .version;
        if target == agent.version {
            return Err(CoreError::conflict(
                ErrorCode::AlreadyOnVersion,
                format!("agent {id} already runs {target}"),
            ));
        }
        let now = self.now();
        let mut changes = Vec::new();
        if let Some(p) = self.pending.get(&id).cloned() {
            changes.extend(self.finish(
                p,
                UpdateStatus::Superseded,
                Some("replaced by a manual update".into()),
                now,
            ));
        }
        let channel = self.channel_of(&agent);
        let row = pending_row(
            self.next_update_id(),
            &agent,
            agent.version,
            target,
            channel,
            UpdateReason::Manual,
            now,
        );
        let row = self.issue(row);
        changes.push(Change::Update(row.clone()));
        self.write(changes)?;
        let pushed = self.offer_for(&row).is_some_and(|offer| self.push(id, offer));
        info!("manual update {} of agent {id} to {target} (pushed: {pushed})", row.id);
        Ok(ManualUpdate { update: row, pushed })
    }

    /// U9: flips every `.channel` of `version` in the downloads folder from
    /// beta to stable and rescans: every platform and every name form that
    /// carries the version ([`scanner::sidecars_of`]), including builds the
    /// last scan skipped, so one that is completed later (its `.sha256`
    /// lands) is stable too. `scope` only narrows the gate and the rollout
    /// rows; the gate must pass unless `force`. The version must be one the
    /// last scan offers. Files first, then rows: a promote that fails half
    /// way leaves beta sidecars and beta rows, and running it again finishes
    /// it.
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
        let beta_files: Vec<String> = scanner::sidecars_of(&self.config.downloads, version)?
            .into_iter()
            .filter(|s| s.channel == Channel::Beta)
            .map(|s| s.file)
            .collect();
        let rows: Vec<RolloutRow> = self
            .rollouts
            .values()
            .filter(|r| {
                r.version == version && r.status == RolloutStatus::Beta && scope.is_none_or(|p| &r.platform == p)
            })
            .cloned()
            .collect();
        if beta_files.is_empty() && rows.is_empty() {
            return Err(CoreError::conflict(
                ErrorCode::AlreadyPromoted,
                format!("{version} is already stable"),
            ));
        }
        let gate = self.gate_check(version, scope)?;
        if !gate.passed && !force {
            let message = format!(
                "health gate refused {version}: {} successes (at least {} needed), failure rate {:.2} (at most {:.2}), \
                 over {} machines; {} outcomes ignored; pass force to override",
                gate.successes,
                gate.min_successes,
                gate.failure_rate,
                gate.max_failure_rate,
                gate.counted,
                gate.ignored
            );
            let details = serde_json::to_value(&gate).ok();
            return Err(CoreError::Conflict {
                code: ErrorCode::HealthGate,
                message,
                details,
            });
        }
        for file in &beta_files {
            publish::set_sidecar(&self.config.downloads, file, Channel::Stable)?;
        }
        let now = self.now();
        let rows: Vec<RolloutRow> = rows
            .into_iter()
            .map(|r| RolloutRow {
                status: RolloutStatus::Promoted,
                promoted_at: Some(now),
                ..r
            })
            .collect();
        self.write(rows.iter().cloned().map(Change::Rollout).collect())?;
        self.rescan()?;
        self.check_all();
        info!(
            "promoted {version}: {} sidecars flipped, forced: {}",
            beta_files.len(),
            !gate.passed
        );
        Ok(Promotion {
            version,
            sidecars_flipped: beta_files,
            forced: !gate.passed,
            gate,
            rollouts: rows,
        })
    }

    /// U10: blocks `version` for good, removes every `.channel` of it in the
    /// downloads folder (every platform and name form, as promote finds
    /// them), rescans, and moves connected agents running it to their
    /// channel's latest now (the rest move on their next heartbeat, U3). The
    /// version must be one the last scan offers.
    pub fn rollback(&mut self, version: Version) -> Result<Rollback, CoreError> {
        if self.blocked_set.contains(&version) {
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
        let sidecars = scanner::sidecars_of(&self.config.downloads, version)?;
        let now = self.now();
        let mut changes = vec![Change::Blocked(BlockedRow {
            version,
            blocked_at: now,
        })];
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
        self.write(changes)?;

        let mut sidecars_removed = Vec::new();
        for sidecar in sidecars {
            if publish::remove_sidecar(&self.config.downloads, &sidecar.file)? {
                sidecars_removed.push(sidecar.file);
            }
        }
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
            rollouts: rows,
        })
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

    /// U6: scans the downloads folder now and uses the result.
    pub fn rescan(&mut self) -> Result<(), CoreError> {
        let scan = scanner::scan_dir(&self.config.downloads)?;
        self.apply_scan(scan)
    }

    /// Uses a scan made elsewhere (off the lock). Beta builds seen for the
    /// first time get their rollout row (U11).
    pub fn apply_scan(&mut self, scan: Scan) -> Result<(), CoreError> {
        let now = self.now();
        let new_rows: Vec<Change> = scan
            .builds
            .iter()
            .filter(|b| b.channel == Channel::Beta && !self.blocked_set.contains(&b.version))
            .filter(|b| !self.rollouts.contains_key(&(b.version, b.platform.clone())))
            .map(|b| {
                Change::Rollout(RolloutRow {
                    version: b.version,
                    platform: b.platform.clone(),
                    status: RolloutStatus::Beta,
                    successes: 0,
                    failures: 0,
                    published_at: now,
                    promoted_at: None,
                    rolled_back_at: None,
                })
            })
            .collect();
        self.write(new_rows)?;
        self.catalog = Catalog::new(scan, now);
        self.targets.clear();
        self.download_cache.clear();
        self.scan_generation += 1;
        Ok(())
    }

    /// Counts applied scans, so a background scan can tell whether another
    /// one (after a promote, say) landed while it was reading the folder.
    pub fn scan_generation(&self) -> u64 {
        self.scan_generation
    }
}
