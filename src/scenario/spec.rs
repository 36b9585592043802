//! The scenario file as written: serde types mirroring the TOML, with spans
//! on every value another part of the file refers to, so the checks in
//! `plan` can point at the line. Every key is documented in
//! `docs/scenarios.md`.
//!
//! The same types are what [`PlanBuilder`](super::PlanBuilder) fills in code
//! (with empty spans), and they serialize back to the file format, so a
//! scenario built in code can be written as a file.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use toml::Spanned;

use crate::clock::Timestamp;
use crate::protocol::{Channel, Platform, Version};

/// A humantime duration: `90s`, `15m`, `2h`, `13d`, `1d 2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!("invalid duration `{s}`: {e} (e.g. 90s, 15m, 2h, 13d, 1d 2h)"))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

/// A size: `512KiB`, `8MiB`, `1048576`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(Size(n)),
            Raw::Text(s) => s
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|b| Size(b.as_u64()))
                .map_err(|e| serde::de::Error::custom(format!("invalid size `{s}`: {e} (e.g. 512KiB, 8MiB)"))),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// A rate: `"1Gbit/s"`, `"50Mbit/s"`, `"10MB/s"`; bytes per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub f64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::agent::parse_rate(&s).map(Rate).map_err(serde::de::Error::custom)
    }
}

/// Bytes per second, written exactly: `f64`'s `Display` is the shortest text
/// that reads back as the same number, and never uses an exponent.
impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}B/s", self.0))
    }
}

/// A fixed offset from UTC: `+02:00`, `-05:00`, `UTC`, `Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UtcOffset(pub i32);

impl<'de> Deserialize<'de> for UtcOffset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_offset(&s).map(UtcOffset).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid time zone `{s}`: expected a fixed offset like +02:00, -05:00 or UTC"
            ))
        })
    }
}

impl Serialize for UtcOffset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let m = self.0.unsigned_abs();
        s.collect_str(&format_args!("{sign}{:02}:{:02}", m / 60, m % 60))
    }
}

/// Largest offset from UTC, in minutes, a time zone may have (`±14:59`).
pub const MAX_UTC_OFFSET: i32 = 14 * 60 + 59;

fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 60 + m))
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `[scenario]`
    pub scenario: ScenarioSection,
    /// `[server]`
    #[serde(default)]
    pub server: ServerSection,
    /// `[agent]`: defaults for every fleet entry.
    #[serde(default)]
    pub agent: AgentSection,
    /// `[[clients]]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientSpec>,
    /// `[[builds]]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<Spanned<BuildSpec>>,
    /// `[[fleet]]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fleet: Vec<Spanned<FleetSpec>>,
    /// `[[events]]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Spanned<EventSpec>>,
    /// `[[expect]]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<Spanned<ExpectSpec>>,
    /// `[gate]`: how much worse than its baseline `rmmsim check` lets it be.
    #[serde(default)]
    pub gate: Option<GateSection>,
}

/// `[gate]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GateSection {
    /// Relative slack on convergence times, and absolute slack on each
    /// version's final share (0.1: 10 % slower, 10 points of share).
    #[serde(default)]
    pub tolerance: Option<Spanned<f64>>,
    /// A convergence time may always be this much slower (keeps near-zero
    /// baselines from failing on a second's noise).
    #[serde(default)]
    pub slack: Option<Dur>,
}

/// `[scenario]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSection {
    /// Names the report folder.
    pub name: Spanned<String>,
    /// One line for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Seeds everything random.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The simulated date at time 0.
    pub start: Timestamp,
    /// How long to simulate.
    pub duration: Spanned<Dur>,
    /// Resolution of the curves in the report.
    #[serde(default)]
    pub sample_every: Option<Spanned<Dur>>,
}

/// `[server]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// The promote gate (U9).
    #[serde(default)]
    pub health_gate: Option<GateSpec>,
    /// Egress shared by every download in progress; unlimited by default.
    #[serde(default)]
    pub bandwidth: Option<Rate>,
    /// How often the server rescans the downloads folder; `0s`: at every
    /// publish.
    #[serde(default)]
    pub rescan_every: Option<Dur>,
    /// New agent rows one site key may enrol per minute; no cap by default.
    #[serde(default)]
    pub max_enrolments_per_minute: Option<Spanned<u32>>,
}

/// `health_gate = { min_successes = 3, max_failure_rate = 0.2 }`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// Successful beta updates needed.
    pub min_successes: u64,
    /// Highest failure rate accepted.
    pub max_failure_rate: Spanned<f64>,
    /// Highest rate, per machine-hour, of error lines whose signature is new
    /// in the version (U13); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_error_rate: Option<Spanned<f64>>,
}

/// One of `logs = [{ message = "service crashed: {n}", level = "error", per_hour = 0.5 }]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// The message; `{n}`, `{hex}` and `{uuid}` are filled at random.
    pub message: Spanned<String>,
    /// `debug`, `info`, `warn` or `error`.
    pub level: Spanned<String>,
    /// Mean lines an hour per machine.
    pub per_hour: Spanned<f64>,
}

/// How a machine is powered, as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum AvailabilitySpec {
    /// `"always"`
    Always,
    /// `"office-hours"`
    OfficeHours,
    /// `{ intermittent = { session = "2h", absence = "6h" } }`
    Intermittent {
        /// Mean time on.
        session: Dur,
        /// Mean time off.
        absence: Dur,
    },
}

impl AvailabilitySpec {
    /// On and off at random, with these mean times on and off.
    pub fn intermittent(session: Duration, absence: Duration) -> Self {
        Self::Intermittent {
            session: Dur(session),
            absence: Dur(absence),
        }
    }
}

/// `[agent]` and the per-fleet overrides.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Windows agents older than this send `win-<uuid>` (U12).
    pub identity_boundary: Option<Version>,
    /// Heartbeat interval.
    pub heartbeat: Option<Spanned<Dur>>,
    /// Fraction each heartbeat interval may be shortened by, at random.
    pub jitter: Option<Spanned<f64>>,
    /// Fixed download time on top of moving the bytes.
    pub download: Option<Dur>,
    /// Each machine's link; unlimited by default.
    pub bandwidth: Option<Rate>,
    /// Install time.
    pub install: Option<Dur>,
    /// Restart time.
    pub restart: Option<Dur>,
    /// First reconnect backoff.
    pub reconnect_min: Option<Spanned<Dur>>,
    /// Largest reconnect backoff.
    pub reconnect_max: Option<Spanned<Dur>>,
    /// Power pattern.
    pub availability: Option<AvailabilitySpec>,
    /// Office hours: boots and shutdowns fall within this after the hour.
    pub boot_spread: Option<Spanned<Dur>>,
    /// What every machine logs, whatever build it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogSpec>,
}

/// `[[clients]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Unique name.
    pub name: Spanned<String>,
    /// Client-level channel.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Default time zone of its sites.
    #[serde(default)]
    pub timezone: Option<UtcOffset>,
    /// Its sites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteSpec>,
}

/// One of `sites = [{ name = "hq" }, …]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    /// Unique within the client.
    pub name: Spanned<String>,
    /// Site-level channel.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// For office hours.
    #[serde(default)]
    pub timezone: Option<UtcOffset>,
}

/// `[[builds]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// Version; one entry per version.
    pub version: Spanned<Version>,
    /// Platforms built.
    #[serde(default)]
    pub platforms: Option<Vec<Platform>>,
    /// What the sidecar says when published; beta by default (U8).
    #[serde(default)]
    pub channel: Option<Channel>,
    /// When it lands, from the start; absent: only a `publish` event lands it.
    #[serde(default)]
    pub published: Option<Spanned<Dur>>,
    /// File size.
    #[serde(default)]
    pub size: Option<Spanned<Size>>,
    /// Chance that installing it fails, 0 to 1.
    #[serde(default)]
    pub install_failure_rate: Option<Spanned<f64>>,
    /// The `.sha256` holds a wrong digest: every agent refuses it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub corrupt_digest: bool,
    /// No `.sha256`: the scanner skips it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub missing_digest: bool,
    /// What every machine running it logs, on top of `[agent] logs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogSpec>,
}

/// `[[fleet]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// Names the group in events; `fleet-<n>` by default.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// How many machines.
    pub count: Spanned<u64>,
    /// `client/site`.
    pub site: Spanned<String>,
    /// The version they run at the start.
    pub version: Version,
    /// Platform; windows-amd64 by default.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Agent-level channel, set when each machine first enrolls.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Power pattern; `[agent]`'s by default.
    #[serde(default)]
    pub availability: Option<AvailabilitySpec>,
    /// Office hours' spread; `[agent]`'s by default.
    #[serde(default)]
    pub boot_spread: Option<Spanned<Dur>>,
    /// Heartbeat interval; `[agent]`'s by default.
    #[serde(default)]
    pub heartbeat: Option<Spanned<Dur>>,
    /// Overrides of the other `[agent]` timings.
    #[serde(default)]
    pub download: Option<Dur>,
    /// Link override.
    #[serde(default)]
    pub bandwidth: Option<Rate>,
    /// Install time override.
    #[serde(default)]
    pub install: Option<Dur>,
    /// Restart time override.
    #[serde(default)]
    pub restart: Option<Dur>,
}

/// `[[events]]`: `at` and exactly one action key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// When, from the start.
    pub at: Spanned<Dur>,
    /// Publish a build declared in `[[builds]]` without `published`.
    #[serde(default)]
    pub publish: Option<Spanned<Version>>,
    /// Promote a version (U9).
    #[serde(default)]
    pub promote: Option<Spanned<Version>>,
    /// Roll a version back (U10).
    #[serde(default)]
    pub rollback: Option<Spanned<Version>>,
    /// Manual update (U5) of a group, site or client: a version or `latest`.
    #[serde(default)]
    pub update: Option<Spanned<String>>,
    /// `beta`, `stable` or `inherit`, on a group, site or client (U2).
    #[serde(default)]
    pub set_channel: Option<Spanned<String>>,
    /// Take this fraction (0 to 1) of the fleet (or of a group, site or
    /// client) offline for `for`.
    #[serde(default)]
    pub disconnect: Option<Spanned<f64>>,
    /// Stop the server for this long, then start it again on the same database.
    #[serde(default)]
    pub server_restart: Option<Spanned<Dur>>,
    /// Promote: scope the gate and the rollout row to this os (with `arch`).
    #[serde(default)]
    pub os: Option<String>,
    /// Promote: scope's arch.
    #[serde(default)]
    pub arch: Option<String>,
    /// Promote: override a failing gate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
    /// Target: a fleet entry's `name`.
    #[serde(default)]
    pub group: Option<Spanned<String>>,
    /// Target: `client/site`.
    #[serde(default)]
    pub site: Option<Spanned<String>>,
    /// Target: a client.
    #[serde(default)]
    pub client: Option<Spanned<String>>,
    /// Disconnect: for how long.
    #[serde(default, rename = "for")]
    pub for_: Option<Spanned<Dur>>,
}

/// A bound of an expectation: a number, or a duration for convergence times.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum BoundSpec {
    /// `0.99`, `3`
    Number(f64),
    /// `"30m"`
    Text(String),
}

/// `[[expect]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// What to measure (see docs/scenarios.md).
    pub metric: Spanned<String>,
    /// The version, for version metrics.
    #[serde(default)]
    pub version: Option<Spanned<Version>>,
    /// Narrow to one channel's machines.
    #[serde(default)]
    pub channel: Option<Spanned<Channel>>,
    /// When to measure, from the start; the end by default.
    #[serde(default)]
    pub at: Option<Spanned<Dur>>,
    /// `fleet` (default) or `online`: the denominator of `fraction_on`.
    #[serde(default)]
    pub of: Option<Spanned<String>>,
    /// `stranded`: count only this reason.
    #[serde(default)]
    pub reason: Option<Spanned<String>>,
    /// Log metrics: only lines of this level.
    #[serde(default)]
    pub level: Option<Spanned<String>>,
    /// Log metrics: only signatures first seen on this version.
    #[serde(default)]
    pub new_in: Option<Spanned<Version>>,
    /// Lowest allowed value.
    #[serde(default)]
    pub min: Option<Spanned<BoundSpec>>,
    /// Highest allowed value.
    #[serde(default)]
    pub max: Option<Spanned<BoundSpec>>,
}

/// Leaves `false` flags out of a written file: `false` is their default.
fn is_false(b: &bool) -> bool {
    !b
}
