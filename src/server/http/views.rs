//! The JSON shapes the API answers with, built from the core's rows.

use serde::Serialize;

use super::limits::ConnectionsView;
use crate::clock::Timestamp;
use crate::protocol::{AgentId, Channel, ClientId, SiteId, Version};
use crate::server::core::{Core, Counters, GateCheck, HealthGate};
use crate::server::scanner::{Build, Skipped};
use crate::server::store::{AgentRow, RolloutRow, SignatureRow, SignatureVersionRow, SiteMoveRow, SiteRow, UpdateRow};

/// An agent row as the API shows it.
#[derive(Debug, Serialize)]
pub struct AgentView {
    /// Row id.
    pub id: AgentId,
    /// As the agent registered (U12).
    pub device_id: String,
    /// The machine uuid inside the device id: two rows with one machine are
    /// the same computer under two ids, one of them an orphan.
    pub machine: String,
    /// True for the old `win-<uuid>` form.
    pub legacy_id: bool,
    /// From `hello`.
    pub hostname: String,
    /// e.g. `windows-amd64`.
    pub platform: String,
    /// Last reported version.
    pub version: Version,
    /// The agent's own channel; `null` inherits.
    pub channel: Option<Channel>,
    /// The channel U2 resolves to.
    pub effective_channel: Channel,
    /// Its site.
    pub site_id: SiteId,
    /// Its site's client.
    pub client_id: Option<ClientId>,
    /// Whether it has a live connection.
    pub online: bool,
    /// When the row was created.
    pub enrolled_at: Timestamp,
    /// Its last hello or heartbeat.
    pub last_seen: Timestamp,
    /// Its pending update (U4), if any.
    pub pending_update: Option<UpdateRow>,
    /// True only for the server's own pseudo-agent (U13): not a machine,
    /// never offered an update, not counted in `agent_rows`.
    pub pseudo: bool,
}

impl AgentView {
    /// The view of one row.
    pub fn new(core: &Core, a: &AgentRow) -> Self {
        Self {
            id: a.id,
            device_id: a.device_id.to_string(),
            machine: a.device_id.machine().hyphenated().to_string(),
            legacy_id: a.device_id.is_legacy(),
            hostname: a.hostname.clone(),
            platform: a.platform.to_string(),
            version: a.version,
            channel: a.channel,
            effective_channel: core.channel_of(a),
            site_id: a.site_id,
            client_id: core.site(a.site_id).map(|s| s.client_id),
            online: core.is_online(a.id),
            enrolled_at: a.enrolled_at,
            last_seen: a.last_seen,
            pending_update: core.pending_of(a.id).cloned(),
            pseudo: a.pseudo,
        }
    }
}

/// One agent with its history.
#[derive(Debug, Serialize)]
pub struct AgentDetail {
    /// The row.
    #[serde(flatten)]
    pub agent: AgentView,
    /// Every update sent to it, oldest first.
    pub updates: Vec<UpdateRow>,
    /// Every move to another site of its client, oldest first.
    pub site_moves: Vec<SiteMoveRow>,
}

/// A client and its sites (with their keys: this is an admin API).
#[derive(Debug, Serialize)]
pub struct ClientView {
    /// Row id.
    pub id: ClientId,
    /// Name.
    pub name: String,
    /// Client-level channel.
    pub channel: Option<Channel>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its sites.
    pub sites: Vec<SiteRow>,
}

/// A build in the scan, and whether it is blocked.
#[derive(Debug, Serialize)]
pub struct BuildView {
    /// The scanned build.
    #[serde(flatten)]
    pub build: Build,
    /// Blocked builds are never offered (U7).
    pub blocked: bool,
}

/// A skipped file with its reason spelled out.
#[derive(Debug, Serialize)]
pub struct SkippedView {
    /// The scanned entry.
    #[serde(flatten)]
    pub skipped: Skipped,
    /// The reason in words.
    pub message: String,
}

/// `GET /api/updates/versions`.
#[derive(Debug, Serialize)]
pub struct VersionsView {
    /// When the folder was last scanned.
    pub scanned_at: Timestamp,
    /// Builds found.
    pub builds: Vec<BuildView>,
    /// Files not offered, with why.
    pub skipped: Vec<SkippedView>,
    /// Blocked versions.
    pub blocked: Vec<Version>,
}

impl VersionsView {
    /// The view of the current scan.
    pub fn new(core: &Core) -> Self {
        let catalog = core.catalog();
        let scan = catalog.scan();
        Self {
            scanned_at: catalog.scanned_at(),
            builds: scan
                .builds
                .iter()
                .map(|b| BuildView {
                    build: b.clone(),
                    blocked: core.blocked().contains_key(&b.version),
                })
                .collect(),
            skipped: scan
                .skipped
                .iter()
                .map(|s| SkippedView {
                    skipped: s.clone(),
                    message: s.reason.to_string(),
                })
                .collect(),
            blocked: core.blocked().keys().copied().collect(),
        }
    }
}

/// `GET /api/updates/rollouts`.
#[derive(Debug, Serialize)]
pub struct RolloutsView {
    /// The promote gate.
    pub gate: HealthGate,
    /// Every rollout row (U11), each with the gate's figures on it.
    pub rollouts: Vec<RolloutView>,
    /// Blocked versions with when.
    pub blocked: Vec<BlockedView>,
}

/// A rollout row and the health gate as a promote scoped to its platform
/// would evaluate it now: what it counted and what it ignored (U9).
#[derive(Debug, Serialize)]
pub struct RolloutView {
    /// The row.
    #[serde(flatten)]
    pub row: RolloutRow,
    /// The gate's figures.
    pub gate: GateCheck,
}

/// A blocked version.
#[derive(Debug, Serialize)]
pub struct BlockedView {
    /// The version.
    pub version: Version,
    /// When.
    pub blocked_at: Timestamp,
}

/// `GET /api/logs/signatures/{id}`: a signature and its rows per version (U13).
#[derive(Debug, Serialize)]
pub struct SignatureDetail {
    /// The signature.
    #[serde(flatten)]
    pub signature: SignatureRow,
    /// Its rows per version, by version.
    pub versions: Vec<SignatureVersionView>,
}

/// A signature on one version, with its rate per machine-hour.
#[derive(Debug, Serialize)]
pub struct SignatureVersionView {
    /// The row.
    #[serde(flatten)]
    pub row: SignatureVersionRow,
    /// Machine-hours agents spent connected on the version.
    pub machine_hours: f64,
    /// `count` / `machine_hours`; `None` while that is 0.
    pub rate_per_machine_hour: Option<f64>,
}

impl SignatureVersionView {
    /// The view of one row, with the machine-hours of its version.
    pub fn new(row: SignatureVersionRow, machine_hours: f64) -> Self {
        Self {
            rate_per_machine_hour: (machine_hours > 0.0).then(|| row.count as f64 / machine_hours),
            row,
            machine_hours,
        }
    }
}

/// `GET /api/stats`.
#[derive(Debug, Serialize)]
pub struct StatsView {
    /// The server's clock now.
    pub now: Timestamp,
    /// Agent rows in the store.
    pub agent_rows: usize,
    /// Rows with a live connection.
    pub online: usize,
    /// Pending updates.
    pub pending_updates: usize,
    /// Counters since start.
    pub counters: Counters,
    /// The server process's open-files limit (soft) now: every connected
    /// agent holds a descriptor, so about that many agents at most. `None`
    /// where the OS does not say.
    pub open_files: Option<u64>,
    /// What the connection limits hold and refused since start.
    pub connections: ConnectionsView,
    /// Pushed frames dropped because the agent's session had not taken the
    /// earlier ones (see `session::PUSH_QUEUE`).
    pub push_overflows: u64,
    /// Log events not grouped by signature since start (U13): agents'
    /// events whose signature found the server holding its most
    /// (`core::MAX_SIGNATURES`), and the server's own past its pending cap
    /// (`self_log::MAX_PENDING`). They still count in `counters.logs` (the
    /// agents').
    pub log_events_dropped: u64,
}
