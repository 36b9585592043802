//! Persistence. The server keeps its working state in memory and writes
//! every change through a [`Store`]; on start it loads the state back. One
//! [`Store::commit`] is one transaction, so changes that belong together
//! land together or not at all.

mod lock;
#[cfg(test)]
mod mem;
mod sqlite;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::protocol::{AgentId, Channel, ClientId, DeviceId, Platform, SiteId, UpdateId, Version};

pub use lock::{DbLock, LockError};
#[cfg(test)]
pub use mem::{FailingStore, FaultSwitch, MemStore};
pub use sqlite::SqliteStore;

/// A client (customer) row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientRow {
    /// Row id.
    pub id: ClientId,
    /// Unique name.
    pub name: String,
    /// The client-level channel (U2); `None` inherits stable.
    pub channel: Option<Channel>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A site row; agents join a site by its key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteRow {
    /// Row id.
    pub id: SiteId,
    /// The client it belongs to.
    pub client_id: ClientId,
    /// Unique within the client.
    pub name: String,
    /// The site-level channel (U2); `None` inherits the client's.
    pub channel: Option<Channel>,
    /// The secret an agent's `hello` must carry.
    pub site_key: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// An agent row, keyed by `device_id` exactly (U12).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRow {
    /// Row id, sent to the agent in `welcome`.
    pub id: AgentId,
    /// As the agent sent it; unique.
    pub device_id: DeviceId,
    /// The site whose key admitted it last.
    pub site_id: SiteId,
    /// From `hello`.
    pub hostname: String,
    /// From `hello`.
    pub platform: Platform,
    /// The version it last reported.
    pub version: Version,
    /// The agent-level channel (U2); `None` inherits the site's.
    pub channel: Option<Channel>,
    /// When the row was created.
    pub enrolled_at: Timestamp,
    /// The last `hello` or heartbeat.
    pub last_seen: Timestamp,
    /// True only for the server's own pseudo-agent (U13, hostname
    /// [`SERVER_HOSTNAME`](crate::server::SERVER_HOSTNAME)): not a machine,
    /// never stored in `agents`, never offered an update, never counted.
    pub pseudo: bool,
}

/// Why an update was sent (U5 lists the senders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateReason {
    /// A heartbeat found the agent behind its channel's latest (U1, U3).
    Heartbeat,
    /// `POST /api/agents/:id/update` (U5).
    Manual,
    /// A rollback moving the agent off a blocked version (U10).
    Rollback,
}

/// Where an update stands (U4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateStatus {
    /// Sent; re-sent on every heartbeat until it ends.
    Pending,
    /// The agent came back on the target version.
    Succeeded,
    /// The agent reported a failure.
    Failed,
    /// Ended without an outcome: replaced by a newer decision, or its target
    /// was blocked or disappeared.
    Superseded,
}

/// One dispatched update (`agent_updates`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateRow {
    /// Row id, the `update_id` on the wire.
    pub id: UpdateId,
    /// The agent row it was sent to.
    pub agent_id: AgentId,
    /// The agent's platform when sent.
    pub platform: Platform,
    /// The version the agent ran when it was sent.
    pub from_version: Version,
    /// The version it was told to install.
    pub to_version: Version,
    /// The agent's resolved channel when sent.
    pub channel: Channel,
    /// Who sent it.
    pub reason: UpdateReason,
    /// Where it stands.
    pub status: UpdateStatus,
    /// How many times it was sent (1 + re-dispatches).
    pub dispatches: u32,
    /// When it was first sent.
    pub dispatched_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// The agent's error, for a failure.
    pub error: Option<String>,
    /// For an update ended as superseded that the agent carried out anyway:
    /// the outcome it reported afterwards (`Succeeded` or `Failed`), recorded
    /// once so that it counts once on the version's rollout row (U11).
    pub late_outcome: Option<UpdateStatus>,
}

/// Where a rollout stands (U11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    /// Published, not yet promoted.
    Beta,
    /// Promoted to stable.
    Promoted,
    /// Rolled back; the version is blocked.
    RolledBack,
}

/// A rollout row: one (version, os, arch) that went through beta (U11).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutRow {
    /// The build version.
    pub version: Version,
    /// The build platform.
    pub platform: Platform,
    /// Where it stands.
    pub status: RolloutStatus,
    /// Installs of this version on this platform that succeeded, whether
    /// or not the server still considered the update pending.
    pub successes: u64,
    /// Attempts at this version on this platform that failed, likewise.
    pub failures: u64,
    /// When the scan first saw it as beta.
    pub published_at: Timestamp,
    /// When it was promoted.
    pub promoted_at: Option<Timestamp>,
    /// When it was rolled back.
    pub rolled_back_at: Option<Timestamp>,
}

/// A blocked version: never offered again (U7, U10).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockedRow {
    /// The version.
    pub version: Version,
    /// When it was blocked.
    pub blocked_at: Timestamp,
}

/// Which multi-step change an [`IntentRow`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentKind {
    /// U9: `.channel` sidecars rewritten to stable, then the rollout rows.
    Promote,
    /// U10: the version blocked, then its `.channel` sidecars removed.
    Rollback,
}

/// A promote or rollback that has started and not finished: committed
/// before its first file changes, deleted in the transaction that finishes
/// it. One found at startup is finished then (design.md, Crash
/// consistency), so after a crash the files and the rows agree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentRow {
    /// The version promoted or rolled back; at most one intent per version.
    pub version: Version,
    /// What is being done.
    pub kind: IntentKind,
    /// For a promote narrowed to one platform: which rollout rows it moves.
    pub scope: Option<Platform>,
    /// When it was written.
    pub created_at: Timestamp,
}

/// A `hello` that moved an agent row to another site of its client
/// (`agent_site_moves`; this project's rule, update-model.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteMoveRow {
    /// The row that moved.
    pub agent_id: AgentId,
    /// When.
    pub moved_at: Timestamp,
    /// The site that admitted it before.
    pub from_site_id: SiteId,
    /// The site whose key admitted it now.
    pub to_site_id: SiteId,
}

/// A log signature's row id (U13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SignatureId(pub i64);

impl std::fmt::Display for SignatureId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for SignatureId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// A log signature (`log_signatures`, U13): one normalised message at one
/// level, from any agent on any version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignatureRow {
    /// Row id.
    pub id: SignatureId,
    /// The normalised message ([`signature_of`](crate::server::logsig::signature_of)).
    pub signature: String,
    /// Lower-case, e.g. `error`; with the signature, the row's key.
    pub level: String,
    /// The first message seen with this signature (cut to
    /// [`MAX_SAMPLE_BYTES`](crate::server::core::MAX_SAMPLE_BYTES)).
    pub sample: String,
    /// When it was first logged.
    pub first_seen: Timestamp,
    /// When it was last logged.
    pub last_seen: Timestamp,
    /// How many times it was logged.
    pub count: u64,
    /// The version of the agent that logged it first.
    pub first_version: Version,
}

/// One signature on one agent version (`log_signature_versions`, U13).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignatureVersionRow {
    /// The signature.
    pub signature: SignatureId,
    /// The version the agents that logged it ran.
    pub version: Version,
    /// How many times it was logged on that version.
    pub count: u64,
    /// Distinct agent rows that logged it on that version.
    pub machines: u64,
    /// When it was first logged on that version.
    pub first_seen: Timestamp,
}

/// One agent row that logged a signature on a version
/// (`log_signature_machines`): what [`SignatureVersionRow::machines`]
/// counts, kept so the count stays right across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignatureMachine {
    /// The signature.
    pub signature: SignatureId,
    /// The version.
    pub version: Version,
    /// The agent row (or the server's pseudo-agent).
    pub agent: AgentId,
}

/// Time agents spent connected on one version (`version_hours`): the
/// denominator of a signature's rate per machine-hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionTime {
    /// The version.
    pub version: Version,
    /// Milliseconds, summed over agents.
    pub machine_ms: u64,
}

/// What [`Store::flush`] writes in one transaction: the batched state that
/// memory holds ahead of the database (agents' `last_seen`, U13's
/// signatures). Every row carries its whole current value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flush {
    /// Agents' `last_seen` stamps.
    pub stamps: Vec<(AgentId, Timestamp)>,
    /// Signatures new or changed since the last flush.
    pub signatures: Vec<SignatureRow>,
    /// Signature × version rows new or changed since the last flush.
    pub signature_versions: Vec<SignatureVersionRow>,
    /// Agent rows newly seen logging a signature on a version.
    pub signature_machines: Vec<SignatureMachine>,
    /// Machine time per version that grew since the last flush.
    pub version_time: Vec<VersionTime>,
}

impl Flush {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty()
            && self.signatures.is_empty()
            && self.signature_versions.is_empty()
            && self.signature_machines.is_empty()
            && self.version_time.is_empty()
    }
}

/// One row to insert or replace. A batch of them is one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Upsert a client.
    Client(ClientRow),
    /// Upsert a site.
    Site(SiteRow),
    /// Upsert an agent.
    Agent(AgentRow),
    /// Upsert an update.
    Update(UpdateRow),
    /// Upsert a rollout.
    Rollout(RolloutRow),
    /// Insert a blocked version.
    Blocked(BlockedRow),
    /// Upsert the intent of a version.
    Intent(IntentRow),
    /// Delete the intent of a version: its change is finished.
    IntentDone(Version),
    /// Append a site move to an agent row's history.
    SiteMove(SiteMoveRow),
}

/// Everything the server needs back after a restart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Every client.
    pub clients: Vec<ClientRow>,
    /// Every site.
    pub sites: Vec<SiteRow>,
    /// Every agent row, live or orphaned.
    pub agents: Vec<AgentRow>,
    /// Updates still pending.
    pub pending: Vec<UpdateRow>,
    /// Every rollout.
    pub rollouts: Vec<RolloutRow>,
    /// Every blocked version.
    pub blocked: Vec<BlockedRow>,
    /// Promotes and rollbacks that did not finish, by version.
    pub intents: Vec<IntentRow>,
    /// The highest update id ever issued (ids are never reused).
    pub max_update_id: u64,
    /// Every log signature, by id (U13).
    pub signatures: Vec<SignatureRow>,
    /// Every signature × version row, by signature then version.
    pub signature_versions: Vec<SignatureVersionRow>,
    /// Every (signature, version, agent) seen, in order.
    pub signature_machines: Vec<SignatureMachine>,
    /// Machine time per version, by version.
    pub version_time: Vec<VersionTime>,
}

/// A store failed; the server logs it and answers "internal error".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no, or a row holds something this version cannot
    /// read (a conversion error names the column).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema is newer than this build knows.
    #[error("database schema version {found} is newer than this rmmsim understands ({known})")]
    TooNew {
        /// In the database.
        found: i64,
        /// In this build.
        known: i64,
    },
}

/// Durable storage behind the server. Calls are synchronous: in a simulation
/// they run on the runtime thread, so the paused clock never jumps while a
/// write is in flight.
pub trait Store: Send {
    /// Loads everything the server keeps in memory.
    fn load(&mut self) -> Result<Snapshot, StoreError>;
    /// Writes a batch of changes as one transaction.
    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError>;
    /// Writes the batched state (agents' `last_seen` stamps, U13's
    /// signatures and machine time) as one transaction.
    fn flush(&mut self, batch: &Flush) -> Result<(), StoreError>;
    /// One update, whatever its status.
    fn update(&mut self, id: UpdateId) -> Result<Option<UpdateRow>, StoreError>;
    /// Every update ever sent to one agent row, oldest first.
    fn updates_of(&mut self, agent: AgentId) -> Result<Vec<UpdateRow>, StoreError>;
    /// Every update to `version` that has an outcome (it ended as succeeded
    /// or failed, or carries a `late_outcome`), by id: what the health gate
    /// counts (U9).
    fn outcomes_to(&mut self, version: Version) -> Result<Vec<UpdateRow>, StoreError>;
    /// Every site move of one agent row, oldest first.
    fn site_moves_of(&mut self, agent: AgentId) -> Result<Vec<SiteMoveRow>, StoreError>;
}
