//! The update server's state and every rule that changes it.
//!
//! [`Core`] holds the working state in memory (clients, sites, agent rows,
//! pending updates, rollouts, blocked versions, the latest scan) and writes
//! every change through the [`Store`] before applying it in memory, so memory
//! never holds what the database does not. All methods are synchronous;
//! callers share one `Core` behind a mutex. The WebSocket handler, the HTTP
//! API and the simulator's in-process transport all call the same methods.

mod admin;
mod enrolment;
mod gate;
mod invariants;
mod logs;
#[cfg(test)]
mod logs_tests;
mod release;
#[cfg(test)]
mod release_tests;
#[cfg(test)]
mod tenancy_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::mpsc::Sender;

use crate::clock::{Clock, Timestamp};
use crate::protocol::{
    AgentId, Channel, ClientId, DeviceId, ErrorCode, Platform, ServerMessage, SiteId, UpdateId, Version,
};

use super::catalog::Catalog;
use super::failpoint::{self, Failpoint};
use super::publish::PublishError;
use super::rules;
use super::self_log::{SelfLevel, SelfLog};
use super::store::{
    AgentRow, Change, ClientRow, IntentRow, RolloutRow, SiteMoveRow, SiteRow, Store, StoreError, UpdateRow,
    UpdateStatus,
};

pub use admin::{ChannelTarget, ManualUpdate, ScanTicket};
pub use enrolment::DEFAULT_MAX_ENROLMENTS_PER_MINUTE;
pub use gate::{GateCheck, NewError};
pub use logs::{
    MAX_LEVEL_BYTES, MAX_SAMPLE_BYTES, MAX_SIGNATURES, SERVER_AGENT_ID, SignatureFilter, normal_level, server_version,
};
pub use release::{Promotion, Rollback};
pub use traffic::REDISPATCH_LOG_EVERY;

/// Hash maps of the hot path: foldhash with a fixed seed (fast, and the
/// same iteration order on every run).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;
/// The set twin of [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;

/// The latest build per (platform, channel), worked out once per scan or
/// block instead of on every heartbeat. A handful of platforms, so a list.
#[derive(Debug, Default)]
pub(crate) struct Targets(Vec<(Platform, Channel, Option<Version>)>);

impl Targets {
    /// U7 for one platform and channel, remembered until [`clear`](Self::clear).
    pub(crate) fn get(
        &mut self,
        catalog: &Catalog,
        blocked: &BTreeSet<Version>,
        platform: &Platform,
        channel: Channel,
    ) -> Option<Version> {
        if let Some((_, _, t)) = self.0.iter().find(|(p, c, _)| p == platform && *c == channel) {
            return *t;
        }
        let target = catalog.latest(platform, channel, blocked).map(|b| b.version);
        self.0.push((platform.clone(), channel, target));
        target
    }

    /// Forgets everything (a scan or a block changed the answers).
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

/// The promote health gate (U9): enough beta successes, few enough
/// failures; and, this project's addition (off by default), few enough new
/// errors in the field (U13).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HealthGate {
    /// Successful updates to the version on the gated platform.
    pub min_successes: u64,
    /// failures / (successes + failures), at most.
    pub max_failure_rate: f64,
    /// Each `error` signature first seen on the candidate version may be
    /// logged at most this often per machine-hour on it; `None`: not
    /// checked (the default).
    pub max_new_error_rate: Option<f64>,
}

impl Default for HealthGate {
    fn default() -> Self {
        Self {
            min_successes: 3,
            max_failure_rate: 0.2,
            max_new_error_rate: None,
        }
    }
}

/// How a [`Core`] is set up.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The downloads folder the scanner reads (U6).
    pub downloads: PathBuf,
    /// Prefix of download URLs in `update` frames, e.g. `http://127.0.0.1:8080`
    /// (empty: a path relative to the server the agent talks to).
    pub public_url: String,
    /// The promote gate.
    pub gate: HealthGate,
    /// Seeds the generator of site keys; a simulation passes its scenario seed.
    pub seed: u64,
    /// New agent rows one site key may enrol per minute; `None`: no cap
    /// (simulations, unless their plan sets one). `serve` defaults to
    /// [`DEFAULT_MAX_ENROLMENTS_PER_MINUTE`].
    pub max_enrolments_per_minute: Option<u32>,
}

/// A live connection of an admitted agent: where pushed updates go (U5).
#[derive(Debug, Clone)]
pub struct Connection {
    /// Distinguishes two connections of one agent (a reconnect racing a close).
    pub id: u64,
    /// Frames pushed outside a request/reply (manual update, rollback); a
    /// bounded queue, so a session that does not drain it cannot grow it.
    pub outbox: Sender<ServerMessage>,
}

/// What the server has done, counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counters {
    /// `hello` frames admitted.
    pub hellos: u64,
    /// Heartbeats handled.
    pub heartbeats: u64,
    /// First sends of an update (U1, U5).
    pub dispatches: u64,
    /// Repeated sends of a pending update (U4).
    pub redispatches: u64,
    /// Updates that ended in success.
    pub successes: u64,
    /// Updates that ended in failure.
    pub failures: u64,
    /// Build downloads served.
    pub downloads: u64,
    /// Log frames received (U13).
    pub logs: u64,
}

impl std::ops::AddAssign for Counters {
    /// Adds another server's counts (a simulation that restarts its server
    /// sums every run's). Destructured so a new counter cannot be forgotten.
    fn add_assign(&mut self, other: Self) {
        let Self {
            hellos,
            heartbeats,
            dispatches,
            redispatches,
            successes,
            failures,
            downloads,
            logs,
        } = other;
        self.hellos += hellos;
        self.heartbeats += heartbeats;
        self.dispatches += dispatches;
        self.redispatches += redispatches;
        self.successes += successes;
        self.failures += failures;
        self.downloads += downloads;
        self.logs += logs;
    }
}

/// What went wrong with a request; the HTTP and WebSocket layers map it.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// No such row.
    #[error("{what} {id} not found")]
    NotFound {
        /// Kind of row.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The request contradicts the current state.
    #[error("{message}")]
    Conflict {
        /// Machine-readable reason (a 409 code).
        code: ErrorCode,
        /// For people.
        message: String,
        /// Figures behind the refusal (the health gate's, say).
        details: Option<serde_json::Value>,
    },
    /// The request itself is malformed.
    #[error("{message}")]
    Invalid {
        /// Machine-readable reason (a 400 code, or `invalid_message` for a frame).
        code: ErrorCode,
        /// For people.
        message: String,
    },
    /// A `hello` whose site key admits nobody.
    #[error("unknown site key")]
    UnknownSiteKey,
    /// A `hello` for a device id whose row belongs to another client than
    /// the site key's (this project's rule, update-model.md).
    #[error("device {device} is agent {agent} of client {owner}; a site key of client {claimed} cannot take it")]
    IdentityConflict {
        /// The device id claimed.
        device: DeviceId,
        /// Its row.
        agent: AgentId,
        /// The client the row belongs to.
        owner: ClientId,
        /// The client of the site key the `hello` carried.
        claimed: ClientId,
    },
    /// A `hello` that would enrol a new row past its site key's cap.
    #[error("site {site} enrolled {cap} new agents in the last minute; try again later")]
    EnrolmentRateLimited {
        /// The site whose key was used.
        site: SiteId,
        /// The cap per minute.
        cap: u32,
    },
    /// An `update_result` for an update this agent was not sent.
    #[error("update {0} was not sent to this agent")]
    UnknownUpdate(UpdateId),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The downloads folder failed.
    #[error("downloads folder: {0}")]
    Io(#[from] io::Error),
    /// Writing a sidecar failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl CoreError {
    fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
            details: None,
        }
    }

    fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    fn not_found(what: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

/// The update server's state; see the module docs.
pub struct Core {
    clock: Clock,
    store: Box<dyn Store>,
    config: CoreConfig,
    rng: ChaCha8Rng,
    clients: BTreeMap<ClientId, ClientRow>,
    sites: BTreeMap<SiteId, SiteRow>,
    site_keys: FastMap<String, SiteId>,
    agents: BTreeMap<AgentId, AgentRow>,
    devices: FastMap<DeviceId, AgentId>,
    /// At most one pending update per agent row (U4).
    pending: BTreeMap<AgentId, UpdateRow>,
    pending_ids: FastMap<UpdateId, AgentId>,
    rollouts: BTreeMap<(Version, Platform), RolloutRow>,
    blocked: BTreeMap<Version, Timestamp>,
    blocked_set: BTreeSet<Version>,
    catalog: Catalog,
    connections: FastMap<AgentId, Connection>,
    counters: Counters,
    /// Pushes dropped because the session's queue was full.
    push_overflows: u64,
    /// The highest update id handed out (new pending rows take the next).
    max_update_id: u64,
    /// [`max_update_id`](Self::max_update_id) as of the last successful
    /// commit: a failed commit hands back the ids its batch took.
    committed_update_id: u64,
    scan_generation: u64,
    /// Promotes and rollbacks begun: a scan made off the lock before one
    /// began read the folder as it was and is discarded ([`ScanTicket`]).
    folder_edits: u64,
    /// Promotes and rollbacks that began and have not finished, by version.
    intents: BTreeMap<Version, IntentRow>,
    /// Where to abort the process (`serve` only; `None` everywhere else).
    failpoint: Option<Failpoint>,
    /// Agents whose `last_seen` changed since the last [`Core::flush`].
    unflushed: FastSet<AgentId>,
    /// U7's answers for this scan and these blocks.
    targets: Targets,
    /// Build bytes served, read once per scan.
    download_cache: FastMap<String, bytes::Bytes>,
    /// Enrolments per site in the current minute (the cap of
    /// [`CoreConfig::max_enrolments_per_minute`]).
    enrolments: enrolment::Windows,
    /// When each agent's last `[RE-DISPATCH]` line was logged, and how many
    /// re-sends went unlogged since (the line is rate-limited per agent).
    redispatch_log: FastMap<AgentId, (Timestamp, u64)>,
    /// Log signatures and machine time per version (U13).
    logs: logs::LogBook,
    /// The server's own warnings and errors, drained into `logs` under
    /// [`server_agent`](Self::server_agent).
    self_log: SelfLog,
    /// The server's pseudo-agent (U13).
    server_agent: AgentRow,
}

impl Core {
    /// Loads the state from `store` and scans the downloads folder.
    pub fn open(store: Box<dyn Store>, clock: Clock, config: CoreConfig) -> Result<Self, CoreError> {
        let mut core = Self {
            clock,
            store,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            clients: BTreeMap::new(),
            sites: BTreeMap::new(),
            site_keys: FastMap::default(),
            agents: BTreeMap::new(),
            devices: FastMap::default(),
            pending: BTreeMap::new(),
            pending_ids: FastMap::default(),
            rollouts: BTreeMap::new(),
            blocked: BTreeMap::new(),
            blocked_set: BTreeSet::new(),
            catalog: Catalog::default(),
            connections: FastMap::default(),
            counters: Counters::default(),
            push_overflows: 0,
            max_update_id: 0,
            committed_update_id: 0,
            scan_generation: 0,
            folder_edits: 0,
            intents: BTreeMap::new(),
            failpoint: None,
            unflushed: FastSet::default(),
            targets: Targets::default(),
            download_cache: FastMap::default(),
            enrolments: enrolment::Windows::default(),
            redispatch_log: FastMap::default(),
            logs: logs::LogBook::default(),
            self_log: SelfLog::new(clock),
            server_agent: logs::server_agent(clock.now()),
        };
        let mut snapshot = core.store.load()?;
        core.logs = logs::LogBook::load(&mut snapshot);
        core.max_update_id = snapshot.max_update_id;
        let rows = snapshot.clients.into_iter().map(Change::Client);
        let rows = rows.chain(snapshot.sites.into_iter().map(Change::Site));
        let rows = rows.chain(snapshot.agents.into_iter().map(Change::Agent));
        let rows = rows.chain(snapshot.pending.into_iter().map(Change::Update));
        let rows = rows.chain(snapshot.rollouts.into_iter().map(Change::Rollout));
        let rows = rows.chain(snapshot.blocked.into_iter().map(Change::Blocked));
        let rows = rows.chain(snapshot.intents.into_iter().map(Change::Intent));
        rows.for_each(|c| core.apply(c));
        core.committed_update_id = core.max_update_id;
        core.finish_intents()?;
        core.rescan()?;
        core.check_all();
        Ok(core)
    }

    /// Commits `changes` as one transaction, then applies them in memory.
    /// Update outcomes are counted here, once they are durable. A failed
    /// commit changes nothing in memory, not even the update ids its batch
    /// took. Debug builds then check the invariants on what the batch touched.
    fn write(&mut self, changes: Vec<Change>) -> Result<(), CoreError> {
        if let Err(e) = self.store.commit(&changes) {
            self.max_update_id = self.committed_update_id;
            self.self_log.record(SelfLevel::Error, &format!("commit failed: {e}"));
            return Err(e.into());
        }
        let touched = cfg!(debug_assertions).then(|| invariants::Touched::of(&changes));
        for change in changes {
            if let Change::Update(u) = &change {
                let c = &mut self.counters;
                match u.status {
                    UpdateStatus::Pending if u.dispatches == 1 => c.dispatches += 1,
                    UpdateStatus::Pending => c.redispatches += 1,
                    UpdateStatus::Succeeded => c.successes += 1,
                    UpdateStatus::Failed => c.failures += 1,
                    UpdateStatus::Superseded => {}
                }
                self.log_update(u);
            }
            self.apply(change);
        }
        self.committed_update_id = self.max_update_id;
        if let Some(touched) = touched {
            self.check_touched(&touched);
        }
        Ok(())
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Client(c) => {
                self.clients.insert(c.id, c);
            }
            Change::Site(s) => {
                self.site_keys.insert(s.site_key.clone(), s.id);
                self.sites.insert(s.id, s);
            }
            Change::Agent(a) => {
                self.devices.insert(a.device_id, a.id);
                self.agents.insert(a.id, a);
            }
            Change::Update(u) => {
                self.max_update_id = self.max_update_id.max(u.id.0);
                if u.status == UpdateStatus::Pending {
                    if let Some(old) = self.pending.get(&u.agent_id) {
                        // At most one pending update per row (U4): a batch
                        // ends the old one before it adds another.
                        debug_assert_eq!(
                            old.id, u.id,
                            "agent {} would have two pending updates ({} and {})",
                            u.agent_id, old.id, u.id
                        );
                        self.pending_ids.remove(&old.id);
                    }
                    self.pending_ids.insert(u.id, u.agent_id);
                    self.pending.insert(u.agent_id, u);
                } else if self.pending.get(&u.agent_id).is_some_and(|p| p.id == u.id) {
                    self.pending_ids.remove(&u.id);
                    self.pending.remove(&u.agent_id);
                }
            }
            Change::Rollout(r) => {
                self.rollouts.insert((r.version, r.platform.clone()), r);
            }
            // History only: nothing of it is kept in memory.
            Change::SiteMove(_) => {}
            Change::Blocked(b) => {
                self.targets.clear();
                self.blocked_set.insert(b.version);
                self.blocked.entry(b.version).or_insert(b.blocked_at);
            }
            Change::Intent(i) => {
                self.intents.insert(i.version, i);
            }
            Change::IntentDone(version) => {
                self.intents.remove(&version);
            }
        }
    }

    /// Arms a failpoint: the process aborts when a promote or rollback
    /// reaches it. Only `serve` calls this ([`failpoint::ENV`]).
    pub fn set_failpoint(&mut self, failpoint: Option<Failpoint>) {
        self.failpoint = failpoint;
    }

    /// Aborts here if the armed failpoint says so.
    fn failpoint(&self, op: failpoint::Op, step: failpoint::Step) {
        if let Some(fp) = &self.failpoint {
            fp.check(op, step);
        }
    }

    /// The clock every row is stamped with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The current time on that clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// How this core was set up.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Every client.
    pub fn clients(&self) -> impl Iterator<Item = &ClientRow> {
        self.clients.values()
    }

    /// Every site.
    pub fn sites(&self) -> impl Iterator<Item = &SiteRow> {
        self.sites.values()
    }

    /// One site.
    pub fn site(&self, id: SiteId) -> Option<&SiteRow> {
        self.sites.get(&id)
    }

    /// Every agent row, live or orphaned, by id.
    pub fn agents(&self) -> impl Iterator<Item = &AgentRow> {
        self.agents.values()
    }

    /// One agent row.
    pub fn agent(&self, id: AgentId) -> Option<&AgentRow> {
        self.agents.get(&id)
    }

    /// The row registered under a device id.
    pub fn agent_by_device(&self, device: &DeviceId) -> Option<&AgentRow> {
        self.devices.get(device).and_then(|id| self.agents.get(id))
    }

    /// The pending update of an agent (U4).
    pub fn pending_of(&self, id: AgentId) -> Option<&UpdateRow> {
        self.pending.get(&id)
    }

    /// Every pending update.
    pub fn pending(&self) -> impl Iterator<Item = &UpdateRow> {
        self.pending.values()
    }

    /// Every update ever sent to an agent, from the store.
    pub fn updates_of(&mut self, id: AgentId) -> Result<Vec<UpdateRow>, CoreError> {
        Ok(self.store.updates_of(id)?)
    }

    /// Every move of an agent row to another site of its client, from the store.
    pub fn site_moves_of(&mut self, id: AgentId) -> Result<Vec<SiteMoveRow>, CoreError> {
        Ok(self.store.site_moves_of(id)?)
    }

    /// Whether an agent has a live connection.
    pub fn is_online(&self, id: AgentId) -> bool {
        self.connections.contains_key(&id)
    }

    /// Whether `conn_id` is the agent's live connection: false once another
    /// connection said `hello` for the row (it replaces this one) or the
    /// server forgot it.
    pub fn is_current(&self, id: AgentId, conn_id: u64) -> bool {
        self.connections.get(&id).is_some_and(|c| c.id == conn_id)
    }

    /// U2 for one agent row.
    pub fn channel_of(&self, agent: &AgentRow) -> Channel {
        let site = self.sites.get(&agent.site_id);
        let client = site.and_then(|s| self.clients.get(&s.client_id));
        rules::resolve_channel(
            agent.channel,
            site.and_then(|s| s.channel),
            client.and_then(|c| c.channel),
        )
    }

    /// The latest scan.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Every rollout row (U11), by version then platform.
    pub fn rollouts(&self) -> impl Iterator<Item = &RolloutRow> {
        self.rollouts.values()
    }

    /// Blocked versions and when they were blocked (U10).
    pub fn blocked(&self) -> &BTreeMap<Version, Timestamp> {
        &self.blocked
    }

    /// What the server has done so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Pushes dropped since start because the agent's session had not taken
    /// the earlier ones (each update stays pending and is re-sent, U4).
    pub fn push_overflows(&self) -> u64 {
        self.push_overflows
    }

    /// Writes, in one transaction, the `last_seen` of every agent that
    /// heartbeated since the last flush and what changed in the log
    /// signatures and machine time (U13), the server's own events drained
    /// in first. Heartbeats change only `last_seen` most of the time, and
    /// `log` frames only counts, so they are written in batches (by
    /// `server::run` every few seconds, and on shutdown) instead of once per
    /// frame; memory is always current. A failed flush keeps everything to
    /// write for the next one.
    pub fn flush(&mut self) -> Result<(), CoreError> {
        self.drain_self_log();
        let mut batch = self.logs.batch();
        batch.stamps = self
            .unflushed
            .iter()
            .filter_map(|id| self.agents.get(id))
            .map(|a| (a.id, a.last_seen))
            .collect();
        if let Err(e) = self.store.flush(&batch) {
            self.self_log.record(SelfLevel::Error, &format!("flush failed: {e}"));
            return Err(e.into());
        }
        self.logs.flushed();
        self.unflushed.clear();
        Ok(())
    }

    /// Counts a build download that is streamed from disk (never cached).
    pub fn count_download(&mut self) {
        self.counters.downloads += 1;
    }

    /// Counts a build download and returns its bytes if they were read
    /// since the last scan. A miss is read from disk by the caller, off the
    /// lock, and handed back with [`remember_download`](Self::remember_download).
    pub fn cached_download(&mut self, file: &str) -> Option<bytes::Bytes> {
        self.counters.downloads += 1;
        self.download_cache.get(file).cloned()
    }

    /// Keeps a build's bytes for the next downloads, unless a scan landed
    /// since they were read (`generation` is [`scan_generation`](Self::scan_generation) then).
    pub fn remember_download(&mut self, file: &str, bytes: bytes::Bytes, generation: u64) {
        if generation == self.scan_generation {
            self.download_cache.insert(file.to_owned(), bytes);
        }
    }
}
