//! What administrators cause: clients and sites, channels (U2), manual
//! updates (U5) and rescans (U6). Promote and rollback are in `release`.

use serde::Serialize;
use tracing::info;

use super::traffic::pending_row;
use super::{Core, CoreError};
use crate::protocol::{self, AgentId, Channel, ClientId, ErrorCode, NAME_RULE, SiteId, Version};
use crate::server::catalog::Catalog;
use crate::server::scanner::{self, Scan, SkipReason};
use crate::server::self_log::SelfLevel;
use crate::server::store::{
    AgentRow, Change, ClientRow, RolloutRow, RolloutStatus, SiteRow, UpdateReason, UpdateRow, UpdateStatus,
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

/// A scan's place in line (see [`Core::scan_ticket`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanTicket {
    generation: u64,
    folder_edits: u64,
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
        self.note_new_skips(&scan);
        self.catalog = Catalog::new(scan, now);
        self.targets.clear();
        self.download_cache.clear();
        self.scan_generation += 1;
        Ok(())
    }

    /// Counts, for the server's pseudo-agent (U13), each file this scan
    /// skips that the last one did not skip for the same reason: a scan
    /// problem is counted once, not at every periodic rescan. Files skipped
    /// by design (per-site builds, hidden files of a publish in progress)
    /// are not problems.
    fn note_new_skips(&self, scan: &Scan) {
        let before = &self.catalog.scan().skipped;
        for s in &scan.skipped {
            if matches!(s.reason, SkipReason::PerSite | SkipReason::Hidden) {
                continue;
            }
            // Skipped files are sorted by name.
            let known = before.binary_search_by(|b| b.file.cmp(&s.file));
            if known.is_ok_and(|i| before[i].reason == s.reason) {
                continue;
            }
            let event = format!("scan skipped {}: {}", s.file, s.reason);
            info!("{event}");
            self.self_log.record(SelfLevel::Warn, &event);
        }
    }

    /// Counts applied scans, so a background scan can tell whether another
    /// one (after a promote, say) landed while it was reading the folder.
    pub fn scan_generation(&self) -> u64 {
        self.scan_generation
    }

    /// Where things stand before a scan made off the lock begins: take it
    /// under the lock, scan, then hand both to
    /// [`apply_scan_since`](Self::apply_scan_since).
    pub fn scan_ticket(&self) -> ScanTicket {
        ScanTicket {
            generation: self.scan_generation,
            folder_edits: self.folder_edits,
        }
    }

    /// Applies a scan made off the lock since `ticket`, unless it is stale:
    /// a promote or rollback began after the ticket (the scan may have read
    /// the sidecars before it changed them, and that promote's own rescan
    /// is newer), or, with `unless_newer`, any scan was applied after the
    /// ticket. Returns whether it was applied. This project's rule: the
    /// source does not say what a scan racing a promote does.
    pub fn apply_scan_since(&mut self, scan: Scan, ticket: ScanTicket, unless_newer: bool) -> Result<bool, CoreError> {
        let now = self.scan_ticket();
        if now.folder_edits != ticket.folder_edits || (unless_newer && now.generation != ticket.generation) {
            return Ok(false);
        }
        self.apply_scan(scan)?;
        Ok(true)
    }
}
