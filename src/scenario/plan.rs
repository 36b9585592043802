//! The checked scenario: every reference resolved, every default filled in,
//! events in time order. The checks that build it live in `check`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::{Availability, LogLevel, LogLine, Timing};
use crate::clock::Timestamp;
use crate::protocol::{Channel, Platform, Version};
use crate::server::HealthGate;
use crate::server::publish::DigestMode;

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `[scenario] name`: the report folder.
    pub name: String,
    /// One line for people.
    pub description: String,
    /// Seeds everything random.
    pub seed: u64,
    /// The simulated date at time 0.
    pub start: Timestamp,
    /// How long to simulate.
    pub duration: Duration,
    /// Resolution of the report's curves.
    pub sample_every: Duration,
    /// The promote gate.
    pub gate: HealthGate,
    /// The server's egress, bytes per second, shared by every download in
    /// progress (`None`: unlimited).
    pub egress: Option<f64>,
    /// The server rescans the downloads folder this often; zero: at every
    /// publish.
    pub rescan_every: Duration,
    /// New agent rows one site key may enrol per minute (`None`: no cap,
    /// unlike `rmmsim serve`'s default).
    pub max_enrolments_per_minute: Option<u32>,
    /// What every machine logs, whatever it runs (`[agent] logs`).
    pub logs: Vec<LogLine>,
    /// Clients and their sites.
    pub clients: Vec<ClientPlan>,
    /// Builds, in file order.
    pub builds: Vec<BuildPlan>,
    /// Fleet entries.
    pub groups: Vec<GroupPlan>,
    /// Everything that happens, in time order (publishes of builds with
    /// `published` included).
    pub events: Vec<EventPlan>,
    /// What must hold.
    pub expects: Vec<Expectation>,
    /// The regression gate of `rmmsim check`.
    pub regression: RegressionGate,
    /// The scenario as written, in the file's form (keys as in the file,
    /// defaults not filled in) as a JSON value: what `rmmsim compare` diffs.
    /// [`inputs_as_run`](Self::inputs_as_run) has the seed and counts the
    /// plan was given since.
    pub inputs: serde_json::Value,
}

/// A scenario's keys as a JSON value, a key left unset absent rather than
/// `null`: [`Plan::inputs`].
pub(super) fn inputs_of(spec: &impl Serialize) -> serde_json::Value {
    fn drop_nulls(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(drop_nulls);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    drop_nulls(&mut value);
    value
}

/// How much worse than its committed baseline a scenario may get before
/// `rmmsim check` fails it (`[gate]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegressionGate {
    /// Relative slack on t50/t90/t99; absolute slack on final shares.
    pub tolerance: f64,
    /// Absolute slack on times.
    pub slack: Duration,
}

impl Default for RegressionGate {
    fn default() -> Self {
        Self {
            tolerance: 0.10,
            slack: Duration::from_secs(5),
        }
    }
}

/// A client.
#[derive(Debug, Clone)]
pub struct ClientPlan {
    /// Name.
    pub name: String,
    /// Client-level channel.
    pub channel: Option<Channel>,
    /// Sites.
    pub sites: Vec<SitePlan>,
}

/// A site.
#[derive(Debug, Clone)]
pub struct SitePlan {
    /// Name.
    pub name: String,
    /// Site-level channel.
    pub channel: Option<Channel>,
    /// Offset from UTC in minutes, for office hours.
    pub utc_offset_minutes: i32,
}

/// A build.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// Version.
    pub version: Version,
    /// Platforms built.
    pub platforms: Vec<Platform>,
    /// Sidecar when published.
    pub channel: Channel,
    /// When it lands by itself; `None`: by an event.
    pub published: Option<Duration>,
    /// Bytes.
    pub size: u64,
    /// Chance an install fails.
    pub failure_rate: f64,
    /// What the `.sha256` holds.
    pub digest: DigestMode,
    /// What machines running it log, on top of [`Plan::logs`].
    pub logs: Vec<LogLine>,
}

/// A fleet entry: `count` identical machines.
#[derive(Debug, Clone)]
pub struct GroupPlan {
    /// Name, for events and reports.
    pub name: String,
    /// Machines.
    pub count: usize,
    /// Index into [`Plan::clients`].
    pub client: usize,
    /// Index into that client's sites.
    pub site: usize,
    /// Starting version.
    pub version: Version,
    /// Platform.
    pub platform: Platform,
    /// Agent-level channel, set when a machine first enrolls.
    pub channel: Option<Channel>,
    /// Power pattern.
    pub availability: Availability,
    /// Heartbeat and friends.
    pub timing: Timing,
    /// Identity boundary (U12).
    pub identity_boundary: Version,
}

/// Which machines an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every machine.
    All,
    /// One fleet entry.
    Group(usize),
    /// Every machine of a site: (client, site).
    Site(usize, usize),
    /// Every machine of a client.
    Client(usize),
}

/// Something the timeline does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Put a build in the downloads folder (U8); the next scan sees it.
    Publish(Version),
    /// Promote (U9).
    Promote {
        /// Version.
        version: Version,
        /// Scope of the gate and rollout row.
        scope: Option<Platform>,
        /// Override the gate.
        force: bool,
    },
    /// Roll back (U10).
    Rollback(Version),
    /// Manual update (U5) of every targeted machine's current row.
    Update {
        /// Whose.
        target: Target,
        /// To what; the channel's latest when `None`.
        version: Option<Version>,
    },
    /// Set a channel (U2); `None` clears it.
    SetChannel {
        /// Whose: a group's agents, a site or a client.
        target: Target,
        /// The channel.
        channel: Option<Channel>,
    },
    /// Take a fraction of the targeted machines offline for a while.
    Disconnect {
        /// Whose.
        target: Target,
        /// 0 to 1.
        fraction: f64,
        /// How long.
        duration: Duration,
    },
    /// Stop the server, start it again on the same database.
    ServerRestart {
        /// Downtime.
        down: Duration,
    },
}

/// An action at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPlan {
    /// From the start.
    pub at: Duration,
    /// What.
    pub action: Action,
}

/// A server counter an expectation can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Heartbeats handled.
    Heartbeats,
    /// First sends of updates.
    Dispatches,
    /// Re-sends (U4).
    Redispatches,
    /// Build downloads.
    Downloads,
    /// Updates that failed.
    UpdateFailures,
    /// Updates that succeeded.
    UpdateSuccesses,
}

/// What an expectation measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Share of machines running `version` at `at`.
    FractionOn {
        /// The version.
        version: Version,
        /// Only machines of this channel.
        channel: Option<Channel>,
        /// When.
        at: Duration,
        /// Denominator: powered-on machines only.
        online_only: bool,
    },
    /// Time from the build's reference event (publish for beta, promote for
    /// stable) until `pct`% of the channel's machines run it or newer, in
    /// seconds (infinite when never).
    Convergence {
        /// 50, 90, 99 or 100.
        pct: u8,
        /// The version.
        version: Version,
        /// The channel.
        channel: Channel,
    },
    /// Machines behind the newest allowed build at the end.
    Stranded {
        /// Only this reason.
        reason: Option<StrandReason>,
    },
    /// Agent rows no machine stands behind any more, in the server's store.
    OrphanRows,
    /// Agent rows in the server's store.
    AgentRows,
    /// A server counter over the whole run.
    Counter(Counter),
    /// Machines running a build their channel does not offer them at the
    /// end (a beta build on stable, a rolled-back build).
    OffChannel {
        /// Only machines running this build.
        version: Option<Version>,
        /// Only machines on this channel.
        channel: Option<Channel>,
    },
    /// Builds stable trails beta by, at `at` (the worst over the run when `None`).
    StableLagBuilds {
        /// When.
        at: Option<Duration>,
    },
    /// Log lines per machine-hour on `version` (U13), of the signatures the
    /// filter keeps, as the server counted them at the end.
    LogRate {
        /// The version the lines were logged on, and whose machine-hours count.
        version: Version,
        /// Which signatures.
        filter: LogFilter,
    },
    /// Distinct log signatures the server saw (U13), of those the filter
    /// keeps, logged on `version` (on any when `None`).
    LogSignatures {
        /// Only signatures logged on this version.
        version: Option<Version>,
        /// Which signatures.
        filter: LogFilter,
    },
}

/// Which log signatures a log metric counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only this level.
    pub level: Option<LogLevel>,
    /// Only signatures first seen on this version (new in it).
    pub new_in: Option<Version>,
}

/// Most machines a fleet may have (after `--scale` too).
pub(crate) const MAX_FLEET: usize = 1_000_000;

/// Why a machine is behind the newest build at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrandReason {
    /// It runs its channel's latest, but stable trails beta.
    ChannelFrozen,
    /// It runs a version that was rolled back.
    BlockedVersion,
    /// It is switched off.
    Offline,
    /// Its attempts at its target failed.
    UpdatesFailing,
    /// It is on and healthy; its update is on its way.
    UpdateInProgress,
}

impl StrandReason {
    /// Every reason, in the order reports list them.
    pub const ALL: [Self; 5] = [
        Self::ChannelFrozen,
        Self::BlockedVersion,
        Self::Offline,
        Self::UpdatesFailing,
        Self::UpdateInProgress,
    ];

    /// The reason of this name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The name used in reports and `[[expect]] reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChannelFrozen => "channel_frozen",
            Self::BlockedVersion => "blocked_version",
            Self::Offline => "offline",
            Self::UpdatesFailing => "updates_failing",
            Self::UpdateInProgress => "update_in_progress",
        }
    }
}

#[cfg(test)]
mod strand_reason_tests {
    use super::StrandReason;

    #[test]
    fn a_strand_reasons_name_is_its_report_name_and_reads_back() {
        for r in StrandReason::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
            assert_eq!(StrandReason::from_name(r.as_str()), Some(r));
        }
        assert_eq!(StrandReason::from_name("stranded"), None);
    }
}

/// A bound on a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// What.
    pub metric: Metric,
    /// At least.
    pub min: Option<f64>,
    /// At most.
    pub max: Option<f64>,
    /// As written, for messages: `fraction_on 0.6.58 at 13d 30m`.
    pub label: String,
    /// The line of its `[[expect]]` table; 0 for a plan built in code.
    pub line: usize,
}

impl Plan {
    /// Multiplies every fleet count by `factor` (at least one machine each).
    pub fn scale(&mut self, factor: f64) {
        for g in &mut self.groups {
            g.count = ((g.count as f64 * factor).round() as usize).clamp(1, MAX_FLEET);
        }
    }

    /// [`inputs`](Self::inputs) with the seed and fleet counts this plan
    /// runs with, which `--seed`, `--scale` or a test may have changed since
    /// it was read.
    pub fn inputs_as_run(&self) -> serde_json::Value {
        let mut inputs = self.inputs.clone();
        if let Some(scenario) = inputs.get_mut("scenario").and_then(serde_json::Value::as_object_mut) {
            scenario.insert("seed".into(), self.seed.into());
        }
        if let Some(fleet) = inputs.get_mut("fleet").and_then(serde_json::Value::as_array_mut) {
            for (entry, group) in fleet.iter_mut().zip(&self.groups) {
                if let Some(entry) = entry.as_object_mut() {
                    entry.insert("count".into(), group.count.into());
                }
            }
        }
        inputs
    }

    /// Whether any machine logs anything.
    pub fn has_logs(&self) -> bool {
        !self.logs.is_empty() || self.builds.iter().any(|b| !b.logs.is_empty())
    }

    /// Machines in the fleet.
    pub fn fleet_size(&self) -> usize {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// `client/site` of a group.
    pub fn site_path(&self, g: &GroupPlan) -> String {
        format!(
            "{}/{}",
            self.clients[g.client].name, self.clients[g.client].sites[g.site].name
        )
    }
}
