//! `report.json`: what a run did, in numbers. The schema is documented in
//! `docs/report.md`; `schema` is bumped on any incompatible change.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Outcome;
use super::analysis;
use super::convergence::{Convergence, converge};
use super::logs::{self, Logs};
use super::offered::OffReason;
use super::recorder::{AgentCounters, MachineTrack, TimelineEntry};
use super::zoom::{self, Zoom};
use crate::clock::Timestamp;
use crate::protocol::{Channel, Platform, Version};
use crate::scenario::StrandReason;
use crate::scenario::{BuildPlan, Counter, Metric, Plan};
use crate::server::core::Counters;

/// The report schema version (docs/report.md); it changes when a field
/// changes meaning.
pub(crate) const SCHEMA: u32 = 1;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The schema version: 1.
    pub schema: u32,
    /// The rmmsim that made it.
    pub rmmsim_version: String,
    /// The scenario and how it was run.
    pub scenario: ScenarioInfo,
    /// True when every expectation held and no invariant was broken.
    pub passed: bool,
    /// Each expectation and what was observed.
    pub expectations: Vec<ExpectationResult>,
    /// Broken promises of the update model (should be empty).
    pub violations: Vec<String>,
    /// Events as applied, with outcomes.
    pub timeline: Vec<TimelineEntry>,
    /// Per build: when it landed, was promoted or rolled back, and convergence.
    pub builds: Vec<BuildReport>,
    /// Machines per version at the end.
    pub final_versions: BTreeMap<Version, usize>,
    /// Every machine at the end.
    pub machines: Vec<MachineEnd>,
    /// Machines behind the newest build at the end, with reasons.
    pub stranded: Vec<Stranded>,
    /// Stranded machines per reason.
    pub stranded_by_reason: BTreeMap<String, usize>,
    /// Machines running a build their channel does not offer them, at the end.
    #[serde(default)]
    pub off_channel: Vec<OffChannel>,
    /// Agent rows, simulator's and server's view.
    pub rows: Rows,
    /// How far stable trailed beta.
    pub stable_lag: StableLag,
    /// Server counters (summed over restarts).
    pub server: Counters,
    /// Agent-side counters.
    pub agents: AgentCounters,
    /// The download storm: bytes served, concurrency and egress.
    #[serde(default)]
    pub downloads: Downloads,
    /// What agents logged, by version and signature, and the server's own
    /// events (U13); only when the scenario has logs or the server saw any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Logs>,
    /// The curves behind `convergence.svg`.
    pub curve: Curve,
    /// Each promote and rollback up close, for the chart's zoomed panels.
    #[serde(default)]
    pub zooms: Vec<Zoom>,
    /// The simulator's own speed (differs between runs of one seed).
    pub wall: Wall,
}

/// The scenario as run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Seed used.
    pub seed: u64,
    /// Simulated start date.
    pub start: Timestamp,
    /// Simulated length, seconds.
    pub duration_s: f64,
    /// Machines.
    pub fleet: usize,
    /// Transport.
    pub transport: String,
    /// The scenario file's keys as run (seed and fleet counts included):
    /// what `rmmsim compare` diffs. `null` in a report written before it
    /// was recorded.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub inputs: serde_json::Value,
}

/// One expectation's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpectationResult {
    /// As written, e.g. `t90 0.6.58 (stable)`.
    pub label: String,
    /// Line of its `[[expect]]` in the file; 0 for a plan built in code.
    pub line: usize,
    /// What was measured (`null`: never happened, e.g. a time never reached).
    pub observed: Option<f64>,
    /// The observed value for people (durations as durations).
    pub observed_text: String,
    /// Lowest allowed.
    pub min: Option<f64>,
    /// Highest allowed.
    pub max: Option<f64>,
    /// The bounds for people: `≤ 10m`, `≥ 0.99`, `1 to 3`.
    pub allowed: String,
    /// Whether it held.
    pub passed: bool,
}

/// A build's story.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildReport {
    /// Version.
    pub version: Version,
    /// Platforms.
    pub platforms: Vec<Platform>,
    /// Sidecar at publish.
    pub published_as: Channel,
    /// Seconds from the start.
    pub published_s: Option<f64>,
    /// Seconds from the start.
    pub promoted_s: Option<f64>,
    /// Seconds from the start.
    pub rolled_back_s: Option<f64>,
    /// Convergence per channel from its reference event.
    pub convergence: Vec<ChannelConvergence>,
}

/// Convergence of one channel's machines on a build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelConvergence {
    /// The channel.
    pub channel: Channel,
    /// `publish` or `promote`.
    pub reference: String,
    /// Seconds from the start.
    pub reference_s: f64,
    /// The figures.
    #[serde(flatten)]
    pub figures: Convergence,
}

/// A machine at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineEnd {
    /// Hostname (fleet entry name and index).
    pub hostname: String,
    /// Fleet entry.
    pub group: String,
    /// Platform.
    pub platform: Platform,
    /// Version it runs.
    pub version: Version,
    /// Its channel.
    pub channel: Channel,
    /// Powered on.
    pub online: bool,
    /// Every device id it registered with, oldest first.
    pub device_ids: Vec<String>,
}

/// A stranded machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stranded {
    /// Hostname.
    pub hostname: String,
    /// Machine uuid.
    pub machine: String,
    /// Fleet entry.
    pub group: String,
    /// `client/site`.
    pub site: String,
    /// What it runs.
    pub version: Version,
    /// Its channel.
    pub channel: Channel,
    /// Its channel's newest allowed build.
    pub target: Option<Version>,
    /// Why it is behind.
    pub reason: StrandReason,
    /// The particulars.
    pub detail: String,
}

/// A machine running a build its channel would not offer it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OffChannel {
    /// Hostname.
    pub hostname: String,
    /// Machine uuid.
    pub machine: String,
    /// Fleet entry.
    pub group: String,
    /// Its platform.
    pub platform: Platform,
    /// The build it runs.
    pub build: Version,
    /// Its channel.
    pub channel: Channel,
    /// A beta build on stable, or a rolled-back build.
    pub reason: OffReason,
    /// Since when, seconds from the start.
    pub since_s: f64,
}

/// Row counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    /// Rows.
    pub total: usize,
    /// Rows a machine stands behind now.
    pub live: usize,
    /// Rows left behind by a change of device id (U12).
    pub orphaned: usize,
}

/// Rows, both views.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rows {
    /// What the simulator knows.
    pub simulator: RowCounts,
    /// What the server's store shows.
    pub server: RowCounts,
    /// Whether the two agree.
    pub agree: bool,
    /// Every orphaned row.
    pub orphans: Vec<Orphan>,
}

/// An orphaned row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Orphan {
    /// The machine.
    pub hostname: String,
    /// The row's (old) device id.
    pub device_id: String,
    /// The version the row still shows.
    pub version: Option<Version>,
    /// The id the machine uses now.
    pub now_as: String,
}

/// How far stable trailed beta: on the worst platform, and per platform.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StableLag {
    /// Most builds stable was behind at any time, on any platform.
    pub max_builds: usize,
    /// Longest it trailed on any platform, seconds.
    pub max_s: f64,
    /// Builds behind at the end, on the worst platform.
    pub at_end_builds: usize,
    /// How long it had trailed at the end on the worst platform, seconds.
    pub at_end_s: f64,
    /// Builds behind at each sample, on the worst platform then.
    pub builds: Vec<usize>,
    /// The same figures for each platform that has a build.
    #[serde(default)]
    pub platforms: Vec<PlatformLag>,
}

/// How far stable trailed beta on one platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformLag {
    /// The platform.
    pub platform: Platform,
    /// Most builds stable was behind at any time.
    pub max_builds: usize,
    /// Longest it trailed, seconds.
    pub max_s: f64,
    /// Builds behind at the end.
    pub at_end_builds: usize,
    /// How long it had trailed at the end, seconds.
    pub at_end_s: f64,
}

/// Shares of machines per version over time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Curve {
    /// Sample spacing, seconds.
    pub every_s: f64,
    /// Versions, in order; the series below are indexed like it.
    pub versions: Vec<Version>,
    /// Sample times, seconds from the start.
    pub times_s: Vec<f64>,
    /// Share of the fleet on each version.
    pub fleet: Vec<Vec<f64>>,
    /// Share of stable machines on each version.
    pub stable: Vec<Vec<f64>>,
    /// Share of beta machines on each version.
    pub beta: Vec<Vec<f64>>,
    /// Share of the fleet powered on.
    pub online: Vec<f64>,
    /// Most downloads in progress during each sample period (from its time).
    #[serde(default)]
    pub downloads: Vec<u64>,
    /// Highest egress during each sample period, bytes per second.
    #[serde(default)]
    pub egress_bps: Vec<f64>,
}

/// The download storm. A download is in progress from the moment an agent
/// accepts an offer until its download step ends (bytes and fixed time);
/// egress is the rate bytes leave the server. With no bandwidth limit
/// anywhere bytes move in no time and egress is not measured (0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Downloads {
    /// `[server] bandwidth`, bytes per second (`null`: unlimited).
    pub egress_limit_bps: Option<f64>,
    /// Bytes that left the server (cut transfers as far as they got).
    pub bytes_served: u64,
    /// Most downloads in progress at once.
    pub peak_concurrent: u64,
    /// Highest egress, bytes per second.
    pub peak_egress_bps: f64,
    /// How long the egress ran at its limit, seconds.
    pub saturated_s: f64,
}

/// Wall-clock figures: the only part that differs between two runs of one seed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Wall {
    /// Seconds the run took.
    pub wall_s: f64,
    /// Heartbeats handled per wall-clock second.
    pub heartbeats_per_wall_s: f64,
}

fn secs(d: Option<&Duration>) -> Option<f64> {
    d.map(Duration::as_secs_f64)
}

/// For each machine of `build`'s platforms on `channel` at `at`: how long
/// after `at` it reached the build (`None`: never).
pub(super) fn reach_delays(
    machines: &[MachineTrack],
    build: &BuildPlan,
    channel: Channel,
    at: Duration,
) -> Vec<Option<Duration>> {
    machines
        .iter()
        .filter(|m| build.platforms.contains(&m.platform) && m.channel_at(at) == channel)
        .map(|m| m.reaches(build.version, at).map(|t| t - at))
        .collect()
}

fn build_reports(plan: &Plan, o: &Outcome) -> Vec<BuildReport> {
    let machines = &o.recorder.machines;
    plan.builds
        .iter()
        .map(|b| {
            let mut convergence = Vec::new();
            let mut add = |channel: Channel, reference: &str, at: Duration| {
                let delays = reach_delays(machines, b, channel, at);
                convergence.push(ChannelConvergence {
                    channel,
                    reference: reference.into(),
                    reference_s: at.as_secs_f64(),
                    figures: converge(&delays),
                });
            };
            if let Some(&at) = o.published.get(&b.version) {
                add(Channel::Beta, "publish", at);
                if b.channel == Channel::Stable {
                    add(Channel::Stable, "publish", at);
                }
            }
            if let Some(&at) = o.promoted.get(&b.version) {
                add(Channel::Stable, "promote", at);
            }
            BuildReport {
                version: b.version,
                platforms: b.platforms.clone(),
                published_as: b.channel,
                published_s: secs(o.published.get(&b.version)),
                promoted_s: secs(o.promoted.get(&b.version)),
                rolled_back_s: secs(o.rolled_back.get(&b.version)),
                convergence,
            }
        })
        .collect()
}

/// The download storm's figures, and its curves added to `curve`.
fn storm(plan: &Plan, o: &Outcome, curve: &mut Curve) -> Downloads {
    let storm = &o.storm;
    let n = curve.times_s.len();
    curve.downloads = (0..n).map(|i| storm.concurrent.get(i).copied().unwrap_or(0)).collect();
    curve.egress_bps = (0..n).map(|i| storm.egress.get(i).copied().unwrap_or(0.0)).collect();
    Downloads {
        egress_limit_bps: plan.egress,
        bytes_served: storm.bytes_served,
        peak_concurrent: storm.peak_concurrent,
        peak_egress_bps: storm.peak_egress,
        saturated_s: storm.saturated.as_secs_f64(),
    }
}

/// Where every machine ended.
fn machine_ends(plan: &Plan, machines: &[MachineTrack]) -> Vec<MachineEnd> {
    let end = plan.duration;
    machines
        .iter()
        .map(|m| MachineEnd {
            hostname: m.hostname.clone(),
            group: plan.groups[m.group].name.clone(),
            platform: m.platform.clone(),
            version: m.version_at(end),
            channel: m.channel_at(end),
            online: m.online_at(end),
            device_ids: m.device_ids.iter().map(ToString::to_string).collect(),
        })
        .collect()
}

/// Builds the report of a run and judges its expectations.
pub fn build_report(plan: &Plan, o: &Outcome) -> Report {
    let machines = &o.recorder.machines;
    let mut curve = analysis::curve(machines, plan.sample_every, plan.duration);
    let downloads = storm(plan, o, &mut curve);
    let builds = build_reports(plan, o);
    let stranded = analysis::stranded(plan, o);
    let off_channel = analysis::off_channel(plan, o);
    let (rows, lost) = analysis::rows(o);
    let stable_lag = analysis::stable_lag(plan, o, &curve);
    let mut final_versions = BTreeMap::new();
    for m in machines {
        *final_versions.entry(m.version_at(plan.duration)).or_insert(0) += 1;
    }
    let mut stranded_by_reason = BTreeMap::new();
    for s in &stranded {
        *stranded_by_reason.entry(s.reason.as_str().to_owned()).or_insert(0) += 1;
    }
    let mut violations = o.violations.clone();
    violations.extend(lost);
    let wall_s = o.wall.as_secs_f64();
    let mut report = Report {
        schema: SCHEMA,
        rmmsim_version: env!("CARGO_PKG_VERSION").to_owned(),
        scenario: ScenarioInfo {
            name: plan.name.clone(),
            description: plan.description.clone(),
            seed: plan.seed,
            start: plan.start,
            duration_s: plan.duration.as_secs_f64(),
            fleet: machines.len(),
            transport: o.transport.clone(),
            inputs: plan.inputs_as_run(),
        },
        passed: false,
        expectations: Vec::new(),
        violations,
        timeline: o.recorder.timeline.clone(),
        builds,
        final_versions,
        machines: machine_ends(plan, machines),
        stranded,
        stranded_by_reason,
        off_channel,
        rows,
        stable_lag,
        server: o.counters,
        agents: o.recorder.agents,
        downloads,
        zooms: zoom::zooms(plan, o),
        logs: Some(logs::section(&o.logs, o.counters.logs))
            .filter(|l| plan.has_logs() || l.lines > 0 || !l.server.is_empty()),
        curve,
        wall: Wall {
            wall_s,
            heartbeats_per_wall_s: if wall_s > 0.0 {
                o.counters.heartbeats as f64 / wall_s
            } else {
                0.0
            },
        },
    };
    report.expectations = plan.expects.iter().map(|e| judge(plan, o, &report, e)).collect();
    report.passed = report.violations.is_empty() && report.expectations.iter().all(|e| e.passed);
    report
}

fn judge(plan: &Plan, o: &Outcome, r: &Report, e: &crate::scenario::Expectation) -> ExpectationResult {
    let machines = &o.recorder.machines;
    let observed: Option<f64> = match &e.metric {
        Metric::FractionOn {
            version,
            channel,
            at,
            online_only,
        } => Some(analysis::fraction_on(machines, *version, *channel, *at, *online_only)),
        Metric::Convergence { pct, version, channel } => r
            .builds
            .iter()
            .find(|b| b.version == *version)
            .and_then(|b| b.convergence.iter().rev().find(|c| c.channel == *channel))
            .and_then(|c| c.figures.t(*pct)),
        Metric::Stranded { reason } => Some(
            r.stranded
                .iter()
                .filter(|s| reason.is_none_or(|x| x == s.reason))
                .count() as f64,
        ),
        Metric::OrphanRows => Some(r.rows.server.orphaned as f64),
        Metric::AgentRows => Some(r.rows.server.total as f64),
        Metric::Counter(c) => Some(match c {
            Counter::Heartbeats => r.server.heartbeats,
            Counter::Dispatches => r.server.dispatches,
            Counter::Redispatches => r.server.redispatches,
            Counter::Downloads => r.server.downloads,
            Counter::UpdateFailures => r.server.failures,
            Counter::UpdateSuccesses => r.server.successes,
        } as f64),
        Metric::OffChannel { version, channel } => Some(
            r.off_channel
                .iter()
                .filter(|m| version.is_none_or(|v| v == m.build) && channel.is_none_or(|c| c == m.channel))
                .count() as f64,
        ),
        Metric::StableLagBuilds { at } => Some(match at {
            Some(t) => analysis::stable_lag_at(plan, o, *t).0 as f64,
            None => r.stable_lag.max_builds as f64,
        }),
        Metric::LogRate { version, filter } => r.logs.as_ref().and_then(|l| l.rate(*version, filter)),
        Metric::LogSignatures { version, filter } => {
            Some(r.logs.as_ref().map_or(0, |l| l.count(*version, filter)) as f64)
        }
    };
    let is_time = matches!(e.metric, Metric::Convergence { .. });
    // A time never reached is infinitely late: it fails any max and passes any min.
    let value = observed.unwrap_or(if is_time { f64::INFINITY } else { f64::NAN });
    let passed = e.min.is_none_or(|m| value >= m) && e.max.is_none_or(|m| value <= m);
    let bound = |b: Option<f64>| b.map(|v| show(Some(v), is_time));
    let allowed = match (bound(e.min), bound(e.max)) {
        (Some(a), Some(b)) => format!("{a} to {b}"),
        (Some(a), None) => format!("≥ {a}"),
        (None, Some(b)) => format!("≤ {b}"),
        (None, None) => "anything".into(),
    };
    ExpectationResult {
        label: e.label.clone(),
        line: e.line,
        observed,
        observed_text: show(observed, is_time),
        min: e.min,
        max: e.max,
        allowed,
        passed,
    }
}

impl Report {
    /// Machines per version at the end, newest first: `0.6.58: 190, 0.6.47: 10`.
    pub(crate) fn final_versions_line(&self) -> String {
        let finals: Vec<String> = self
            .final_versions
            .iter()
            .rev()
            .map(|(v, n)| format!("{v}: {n}"))
            .collect();
        finals.join(", ")
    }
}

/// A measured value for people: durations as `4m 12s`, shares to 4 places.
pub(crate) fn show(value: Option<f64>, is_time: bool) -> String {
    match value {
        None if is_time => "never".into(),
        None => "n/a".into(),
        Some(v) if is_time => crate::clock::short(Duration::from_secs_f64(v.max(0.0))),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.4}"),
    }
}
