//! U13, log feedback: agents' `log` frames (and the server's own warnings
//! and errors, under its pseudo-agent) grouped by signature and by the
//! version of the agent that logged them, and the time agents spend
//! connected on each version, the denominator of a rate per machine-hour.
//!
//! Everything lives in memory ([`LogBook`]) and changes there; what changed
//! is marked and written by [`Core::flush`] in the transaction that writes
//! `last_seen` (every few seconds under `serve`), never once per frame. A
//! crash loses at most the counts since the last flush, as it loses
//! `last_seen` stamps.
//!
//! Distinct machines per (signature, version) are a set of agent ids per
//! pair in memory, and a row per (signature, version, agent) in the store
//! (`log_signature_machines`), so the count is right after a restart. The
//! memory this takes grows with the distinct triples; the number of
//! signatures is capped at [`MAX_SIGNATURES`] (events of a signature past
//! the cap are counted in `logs` and [`LogBook::dropped`] only).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Core, CoreError, FastMap, FastSet};
use crate::clock::Timestamp;
use crate::protocol::{AgentId, DeviceId, Platform, SiteId, Version};
use crate::server::logsig::{signature_of, truncate};
use crate::server::self_log::{Pending, SERVER_HOSTNAME};
use crate::server::store::{
    AgentRow, Flush, SignatureId, SignatureMachine, SignatureRow, SignatureVersionRow, Snapshot, VersionTime,
};

/// Longest sample message kept, in bytes (cut at a character boundary).
pub const MAX_SAMPLE_BYTES: usize = 1024;

/// Longest level kept, in bytes: levels are lower-cased and any word is
/// accepted (`error`, `warn`, `info`, or one of the agent's own).
pub const MAX_LEVEL_BYTES: usize = 32;

/// Distinct signatures kept, at most; the server's memory and the store
/// grow with them, and any agent can send any message.
pub const MAX_SIGNATURES: usize = 10_000;

/// The row id of the server's pseudo-agent: agent rows start at 1.
pub const SERVER_AGENT_ID: AgentId = AgentId(0);

/// The server's own version, under which its pseudo-agent's events are
/// counted: the crate's version (`CARGO_PKG_VERSION`).
pub fn server_version() -> Version {
    env!("CARGO_PKG_VERSION").parse().unwrap_or(Version::new(0, 0, 0))
}

/// Which signatures [`Core::log_signatures`] answers with; every field
/// narrows the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignatureFilter {
    /// Logged at least once on this version.
    pub version: Option<Version>,
    /// At this level (compared lower-case).
    pub level: Option<String>,
    /// Last logged at or after this time.
    pub since: Option<Timestamp>,
    /// First logged on this version (`first_version`).
    pub new_in: Option<Version>,
}

/// A level as signature rows keep it: trimmed, lower-case, cut to
/// [`MAX_LEVEL_BYTES`].
pub fn normal_level(level: &str) -> String {
    let mut level = level.trim().to_lowercase();
    truncate(&mut level, MAX_LEVEL_BYTES);
    level
}

/// One or more events of one signature by one agent on one version.
pub(super) struct Logged<'a> {
    pub agent: AgentId,
    pub version: Version,
    pub level: String,
    pub signature: String,
    pub message: &'a str,
    pub times: u64,
    pub first: Timestamp,
    pub last: Timestamp,
}

/// A signature on a version, and the agents that logged it there.
#[derive(Debug)]
struct Pair {
    row: SignatureVersionRow,
    machines: FastSet<AgentId>,
}

/// U13's state in memory, and what changed since the last flush.
#[derive(Debug, Default)]
pub(crate) struct LogBook {
    rows: BTreeMap<SignatureId, SignatureRow>,
    /// By level, then signature.
    ids: FastMap<String, FastMap<String, SignatureId>>,
    pairs: BTreeMap<(SignatureId, Version), Pair>,
    /// Milliseconds agents spent connected, per version.
    machine_ms: BTreeMap<Version, u64>,
    dirty_rows: BTreeSet<SignatureId>,
    dirty_pairs: BTreeSet<(SignatureId, Version)>,
    new_machines: Vec<SignatureMachine>,
    dirty_ms: FastSet<Version>,
    /// Events of signatures past [`MAX_SIGNATURES`].
    dropped: u64,
}

impl LogBook {
    /// The state a snapshot holds; nothing to flush.
    pub(super) fn load(snapshot: &mut Snapshot) -> Self {
        let mut book = Self::default();
        for row in std::mem::take(&mut snapshot.signatures) {
            let by_level = book.ids.entry(row.level.clone()).or_default();
            by_level.insert(row.signature.clone(), row.id);
            book.rows.insert(row.id, row);
        }
        for row in std::mem::take(&mut snapshot.signature_versions) {
            let machines = FastSet::default();
            book.pairs.insert((row.signature, row.version), Pair { row, machines });
        }
        for m in std::mem::take(&mut snapshot.signature_machines) {
            if let Some(pair) = book.pairs.get_mut(&(m.signature, m.version)) {
                pair.machines.insert(m.agent);
            }
        }
        for pair in book.pairs.values_mut() {
            pair.row.machines = pair.machines.len() as u64;
        }
        let times = std::mem::take(&mut snapshot.version_time);
        book.machine_ms = times.into_iter().map(|t| (t.version, t.machine_ms)).collect();
        book
    }

    /// Counts `e` on its signature (made if new, unless the cap is reached)
    /// and on its signature × version row.
    pub(super) fn record(&mut self, e: Logged<'_>) {
        let Some(id) = self.id_for(&e) else {
            self.dropped += e.times;
            return;
        };
        let row = self.rows.get_mut(&id).expect("every id has its row");
        row.count += e.times;
        row.last_seen = row.last_seen.max(e.last);
        self.dirty_rows.insert(id);
        let pair = self.pairs.entry((id, e.version)).or_insert_with(|| Pair {
            row: SignatureVersionRow {
                signature: id,
                version: e.version,
                count: 0,
                machines: 0,
                first_seen: e.first,
            },
            machines: FastSet::default(),
        });
        pair.row.count += e.times;
        if pair.machines.insert(e.agent) {
            pair.row.machines += 1;
            self.new_machines.push(SignatureMachine {
                signature: id,
                version: e.version,
                agent: e.agent,
            });
        }
        self.dirty_pairs.insert((id, e.version));
    }

    /// The id of `e`'s signature, a new row for it if there is room.
    fn id_for(&mut self, e: &Logged<'_>) -> Option<SignatureId> {
        if let Some(&id) = self.ids.get(&e.level).and_then(|m| m.get(&e.signature)) {
            return Some(id);
        }
        if self.rows.len() >= MAX_SIGNATURES {
            return None;
        }
        let id = SignatureId(self.rows.keys().next_back().map_or(1, |id| id.0 + 1));
        let mut sample = e.message.to_owned();
        truncate(&mut sample, MAX_SAMPLE_BYTES);
        let row = SignatureRow {
            id,
            signature: e.signature.clone(),
            level: e.level.clone(),
            sample,
            first_seen: e.first,
            last_seen: e.first,
            count: 0,
            first_version: e.version,
        };
        self.rows.insert(id, row);
        let by_level = self.ids.entry(e.level.clone()).or_default();
        by_level.insert(e.signature.clone(), id);
        Some(id)
    }

    /// Adds time an agent spent connected on `version`.
    pub(super) fn accrue(&mut self, version: Version, spent: Duration) {
        let ms = u64::try_from(spent.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return;
        }
        let total = self.machine_ms.entry(version).or_default();
        *total = total.saturating_add(ms);
        self.dirty_ms.insert(version);
    }

    /// What changed since the last successful flush (no stamps).
    pub(super) fn batch(&self) -> Flush {
        Flush {
            stamps: Vec::new(),
            signatures: self.dirty_rows.iter().map(|id| self.rows[id].clone()).collect(),
            signature_versions: self.dirty_pairs.iter().map(|k| self.pairs[k].row.clone()).collect(),
            signature_machines: self.new_machines.clone(),
            version_time: self
                .dirty_ms
                .iter()
                .map(|&version| VersionTime {
                    version,
                    machine_ms: self.machine_ms[&version],
                })
                .collect(),
        }
    }

    /// The batch is durable: nothing is left to write.
    pub(super) fn flushed(&mut self) {
        self.dirty_rows.clear();
        self.dirty_pairs.clear();
        self.new_machines.clear();
        self.dirty_ms.clear();
    }

    /// Events not grouped since start: their signature was past the cap.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether `row` passes `filter`.
    fn matches(&self, row: &SignatureRow, filter: &SignatureFilter) -> bool {
        filter.level.as_ref().is_none_or(|l| normal_level(l) == row.level)
            && filter.since.is_none_or(|t| row.last_seen >= t)
            && filter.new_in.is_none_or(|v| row.first_version == v)
            && filter.version.is_none_or(|v| self.pairs.contains_key(&(row.id, v)))
    }
}

/// The pseudo-agent's row: not a machine, never stored in `agents`.
pub(super) fn server_agent(at: Timestamp) -> AgentRow {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64".to_owned(),
        "aarch64" => "arm64".to_owned(),
        other => other.chars().filter(char::is_ascii_alphanumeric).collect(),
    };
    let platform = Platform::new(std::env::consts::OS, &arch)
        .or_else(|_| Platform::new("unknown", "unknown"))
        .expect("a valid platform");
    AgentRow {
        id: SERVER_AGENT_ID,
        device_id: DeviceId::Bare(uuid::Uuid::nil()),
        site_id: SiteId(0),
        hostname: SERVER_HOSTNAME.to_owned(),
        platform,
        version: server_version(),
        channel: None,
        enrolled_at: at,
        last_seen: at,
        pseudo: true,
    }
}

impl Core {
    /// U13: groups a `log` frame by signature under the version the agent
    /// runs, and counts it (`logs`). Nothing is written here: the next
    /// [`flush`](Self::flush) writes what changed.
    pub fn log(&mut self, id: AgentId, level: &str, message: &str) {
        self.counters.logs += 1;
        tracing::debug!(agent = %id, level, "agent log: {message}");
        let Some(version) = self.agents.get(&id).map(|a| a.version) else {
            return;
        };
        let now = self.now();
        self.logs.record(Logged {
            agent: id,
            version,
            level: normal_level(level),
            signature: signature_of(message),
            message,
            times: 1,
            first: now,
            last: now,
        });
    }

    /// Moves the server's own events counted since the last drain into the
    /// signatures of its pseudo-agent.
    pub(super) fn drain_self_log(&mut self) {
        for p in self.self_log.drain() {
            let Pending {
                level,
                signature,
                sample,
                count,
                first,
                last,
            } = p;
            self.server_agent.last_seen = self.server_agent.last_seen.max(last);
            self.logs.record(Logged {
                agent: SERVER_AGENT_ID,
                version: self.server_agent.version,
                level: level.as_str().to_owned(),
                signature,
                message: &sample,
                times: count,
                first,
                last,
            });
        }
    }

    /// Every signature matching the filter, by id.
    pub fn log_signatures(&mut self, filter: &SignatureFilter) -> Result<Vec<SignatureRow>, CoreError> {
        self.drain_self_log();
        let book = &self.logs;
        Ok(book
            .rows
            .values()
            .filter(|r| book.matches(r, filter))
            .cloned()
            .collect())
    }

    /// One signature's rows per version, by version.
    pub fn signature_versions(&mut self, id: SignatureId) -> Result<Vec<SignatureVersionRow>, CoreError> {
        self.drain_self_log();
        if !self.logs.rows.contains_key(&id) {
            return Err(CoreError::not_found("log signature", id));
        }
        let pairs = self.logs.pairs.range((id, Version::new(0, 0, 0))..);
        Ok(pairs
            .take_while(|((s, _), _)| *s == id)
            .map(|(_, p)| p.row.clone())
            .collect())
    }

    /// One signature.
    pub fn log_signature(&mut self, id: SignatureId) -> Option<SignatureRow> {
        self.drain_self_log();
        self.logs.rows.get(&id).cloned()
    }

    /// Machine-hours the server has seen agents spend connected on
    /// `version` (accrued between an agent's consecutive frames on the same
    /// version); the denominator of "rate per machine-hour".
    pub fn machine_hours_on(&self, version: Version) -> f64 {
        self.logs.machine_ms.get(&version).copied().unwrap_or(0) as f64 / 3_600_000.0
    }

    /// The server's pseudo-agent (hostname [`SERVER_HOSTNAME`]): not a
    /// machine, so not among [`agents`](Self::agents).
    pub fn server_agent(&self) -> &AgentRow {
        &self.server_agent
    }

    /// Where the server counts its own warnings and errors.
    pub fn self_log(&self) -> &crate::server::self_log::SelfLog {
        &self.self_log
    }

    /// Log events not grouped since start: their signature found
    /// [`MAX_SIGNATURES`] others.
    pub fn log_events_dropped(&self) -> u64 {
        self.logs.dropped()
    }
}
