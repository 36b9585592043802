//! Scenarios built in code, as turmoil's `Builder` builds a simulation.
//!
//! [`PlanBuilder`] fills the same `spec::Spec` a file is read into, and
//! [`PlanBuilder::check`] runs the same checks a file goes through: a plan
//! built here is refused for exactly what a file would be, with an error
//! that names the key (`fleet[0].site`) and no line, since there is no file.
//! [`PlanBuilder::to_toml`] writes the scenario as a file, for what needs one
//! (the command line).
//!
//! Values are typed (durations as [`Duration`], versions as [`Version`],
//! channels as [`Channel`], rates in bytes per second); what another part of
//! the scenario refers to by name (`client/site`, a group, a metric) stays a
//! name, resolved by the checks as in a file. Each table of the file has a
//! small value builder ([`Client`], [`Build`], [`Fleet`], [`Event`],
//! [`Expect`]); `[agent]` is edited in place with a closure.
//!
//! ```
//! use std::time::Duration;
//!
//! use rmmsim::protocol::{Channel, Version};
//! use rmmsim::scenario::builder::{Build, Client, Event, Expect, Fleet, PlanBuilder, Site};
//!
//! let (old, new) = (Version::new(1, 2, 0), Version::new(1, 2, 1));
//! let hour = Duration::from_secs(3600);
//! let plan = PlanBuilder::new("small", "2026-06-01T00:00:00Z".parse().unwrap(), 24 * hour)
//!     .agent(|a| a.heartbeat(Duration::from_secs(30)))
//!     .client(Client::new("acme").site("hq").site(Site::new("lab").channel(Channel::Beta)))
//!     .build(Build::new(old).channel(Channel::Stable).published(Duration::ZERO))
//!     .build(Build::new(new).published(hour))
//!     .fleet(Fleet::new(50, "acme/hq", old))
//!     .fleet(Fleet::new(5, "acme/lab", old))
//!     .event(6 * hour, Event::promote(new))
//!     .expect(Expect::new("t90").version(new).channel(Channel::Stable).max(Duration::from_secs(600)))
//!     .check()
//!     .unwrap();
//! assert_eq!(plan.fleet_size(), 55);
//! ```

use std::time::Duration;

use toml::Spanned;

pub use super::spec::AvailabilitySpec;
use super::spec::{
    AgentSection, BoundSpec, BuildSpec, ClientSpec, Dur, EventSpec, ExpectSpec, FleetSpec, GateSection, GateSpec,
    LogSpec, Rate, ScenarioSection, ServerSection, SiteSpec, Size, Spec, UtcOffset,
};
use super::{Plan, ScenarioErrors};
pub use crate::agent::LogLevel;
use crate::clock::Timestamp;
use crate::protocol::{Channel, Platform, Version};
use crate::server::HealthGate;

/// A value with no place in any text: what a builder fills in.
fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// Chainable setters of a builder that wraps a spec value (`.0`): each
/// `fn name(args) { body }` becomes `pub fn name(mut self, args) -> Self`
/// running `body` with `$spec` bound to the spec.
macro_rules! setters {
    ($spec:ident; $($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $($arg: $ty),*) -> Self {
                let $spec = &mut self.0;
                $body
                self
            }
        )*
    };
}

/// A scenario under construction: `[scenario]` from [`new`](Self::new), the
/// rest from the methods, checked by [`check`](Self::check).
#[derive(Debug, Clone)]
pub struct PlanBuilder(Spec);

impl PlanBuilder {
    /// A scenario named `name` (it names the report folder) that starts at
    /// `start` and runs for `duration`: the keys `[scenario]` requires.
    pub fn new(name: &str, start: Timestamp, duration: Duration) -> Self {
        let scenario = ScenarioSection {
            name: unplaced(name.to_owned()),
            description: String::new(),
            seed: None,
            start,
            duration: unplaced(Dur(duration)),
            sample_every: None,
        };
        Self(Spec {
            scenario,
            server: ServerSection::default(),
            agent: AgentSection::default(),
            clients: Vec::new(),
            builds: Vec::new(),
            fleet: Vec::new(),
            events: Vec::new(),
            expect: Vec::new(),
            gate: None,
        })
    }

    setters! { s;
        /// One line for people, at the top of the report.
        fn description(text: &str) { text.clone_into(&mut s.scenario.description) }
        /// The seed of everything random (default 1).
        fn seed(seed: u64) { s.scenario.seed = Some(seed) }
        /// Spacing of the report's curves (default 1m).
        fn sample_every(every: Duration) { s.scenario.sample_every = Some(unplaced(Dur(every))) }
        /// `[server] health_gate`: the promote gate (U9).
        fn health_gate(min_successes: u64, max_failure_rate: f64) {
            let gate = health_gate(s);
            gate.min_successes = min_successes;
            gate.max_failure_rate = unplaced(max_failure_rate);
        }
        /// `[server] health_gate.max_new_error_rate`: the field-health gate
        /// (U13), error lines of new signatures per machine-hour; the gate's
        /// other keys stay as set, or the server's defaults.
        fn max_new_error_rate(per_machine_hour: f64) {
            health_gate(s).max_new_error_rate = Some(unplaced(per_machine_hour))
        }
        /// `[server] bandwidth`: the server's egress, bytes per second.
        fn egress(bytes_per_s: f64) { s.server.bandwidth = Some(Rate(bytes_per_s)) }
        /// `[server] rescan_every` (zero: a scan at every landing).
        fn rescan_every(every: Duration) { s.server.rescan_every = Some(Dur(every)) }
        /// `[server] max_enrolments_per_minute`: new rows per site key per minute.
        fn max_enrolments_per_minute(cap: u32) { s.server.max_enrolments_per_minute = Some(unplaced(cap)) }
        /// Edits `[agent]`, the defaults of every fleet entry; calls add up.
        fn agent(edit: impl FnOnce(AgentDefaults) -> AgentDefaults) {
            s.agent = edit(AgentDefaults(std::mem::take(&mut s.agent))).0
        }
        /// A `[[clients]]` entry.
        fn client(client: Client) { s.clients.push(client.0) }
        /// A `[[builds]]` entry.
        fn build(build: Build) { s.builds.push(unplaced(build.0)) }
        /// A `[[fleet]]` entry.
        fn fleet(fleet: Fleet) { s.fleet.push(unplaced(fleet.0)) }
        /// An `[[events]]` entry: `event` at `at` from the start.
        fn event(at: Duration, event: Event) {
            s.events.push(unplaced(EventSpec { at: unplaced(Dur(at)), ..event.0 }))
        }
        /// An `[[expect]]` entry.
        fn expect(expect: Expect) { s.expect.push(unplaced(expect.0)) }
        /// `[gate] tolerance` of `rmmsim check` (default 0.1).
        fn gate_tolerance(tolerance: f64) { gate(s).tolerance = Some(unplaced(tolerance)) }
        /// `[gate] slack` of `rmmsim check` (default 5s).
        fn gate_slack(slack: Duration) { gate(s).slack = Some(Dur(slack)) }
    }

    /// Runs the checks a file goes through and returns the plan, or every
    /// problem: each error names the scenario (in place of a file) and the
    /// key, with no line; the plan's expectations have line 0.
    pub fn check(&self) -> Result<Plan, ScenarioErrors> {
        super::check::check(&self.0, None)
            .map_err(|problems| ScenarioErrors::of(self.0.scenario.name.get_ref(), None, problems))
    }

    /// The scenario as a file: reading it back gives the plan
    /// [`check`](Self::check) gives (expectations then have their lines).
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.0).unwrap_or_else(|e| unreachable!("every spec value has a TOML form: {e}"))
    }
}

/// `[server] health_gate`, made with the server's defaults when first set.
fn health_gate(spec: &mut Spec) -> &mut GateSpec {
    spec.server.health_gate.get_or_insert_with(|| {
        let default = HealthGate::default();
        GateSpec {
            min_successes: default.min_successes,
            max_failure_rate: unplaced(default.max_failure_rate),
            max_new_error_rate: None,
        }
    })
}

/// `[gate]`, made when first set.
fn gate(spec: &mut Spec) -> &mut GateSection {
    spec.gate.get_or_insert(GateSection {
        tolerance: None,
        slack: None,
    })
}

/// The setters `[agent]` and a `[[fleet]]` entry share (a fleet entry's
/// override the defaults).
macro_rules! timing_setters {
    () => {
        setters! { s;
            /// Heartbeat interval (default 60s).
            fn heartbeat(every: Duration) { s.heartbeat = Some(unplaced(Dur(every))) }
            /// Fixed time a download takes on top of moving its bytes (default 20s).
            fn download(fixed: Duration) { s.download = Some(Dur(fixed)) }
            /// Each machine's link, bytes per second (default unlimited).
            fn bandwidth(bytes_per_s: f64) { s.bandwidth = Some(Rate(bytes_per_s)) }
            /// Time to install (default 30s).
            fn install(time: Duration) { s.install = Some(Dur(time)) }
            /// From closing the session to saying hello as the new version (default 15s).
            fn restart(time: Duration) { s.restart = Some(Dur(time)) }
            /// Power pattern (default always on).
            fn availability(availability: AvailabilitySpec) { s.availability = Some(availability) }
            /// Office hours: boots and shutdowns fall within this after 08:00 and 18:00 (default 30m).
            fn boot_spread(spread: Duration) { s.boot_spread = Some(unplaced(Dur(spread))) }
        }
    };
}

/// `[agent]`: the defaults of every fleet entry.
#[derive(Debug, Clone, Default)]
pub struct AgentDefaults(AgentSection);

impl AgentDefaults {
    timing_setters!();

    setters! { s;
        /// Windows agents older than this send `win-<uuid>` (U12; default 0.6.40).
        fn identity_boundary(version: Version) { s.identity_boundary = Some(version) }
        /// Each heartbeat interval is shortened by up to this fraction (default 0.02).
        fn jitter(fraction: f64) { s.jitter = Some(unplaced(fraction)) }
        /// First reconnect backoff (default 1s).
        fn reconnect_min(backoff: Duration) { s.reconnect_min = Some(unplaced(Dur(backoff))) }
        /// Largest reconnect backoff (default 5m).
        fn reconnect_max(backoff: Duration) { s.reconnect_max = Some(unplaced(Dur(backoff))) }
        /// A line every machine logs, whatever build it runs; calls add up.
        fn log(line: Log) { s.logs.push(line.0) }
    }
}

/// A `[[clients]]` entry.
#[derive(Debug, Clone)]
pub struct Client(ClientSpec);

impl Client {
    /// A client with no sites yet.
    pub fn new(name: &str) -> Self {
        Self(ClientSpec {
            name: unplaced(name.to_owned()),
            channel: None,
            timezone: None,
            sites: Vec::new(),
        })
    }

    setters! { s;
        /// Client-level channel (U2).
        fn channel(channel: Channel) { s.channel = Some(channel) }
        /// Default time zone of its sites: minutes east of UTC, within ±14:59.
        fn timezone(utc_offset_minutes: i32) { s.timezone = Some(UtcOffset(utc_offset_minutes)) }
        /// A site: a name, or a [`Site`] with its own keys.
        fn site(site: impl Into<Site>) { s.sites.push(site.into().0) }
    }
}

/// One of a client's `sites`.
#[derive(Debug, Clone)]
pub struct Site(SiteSpec);

impl Site {
    /// A site with its client's channel and time zone.
    pub fn new(name: &str) -> Self {
        Self(SiteSpec {
            name: unplaced(name.to_owned()),
            channel: None,
            timezone: None,
        })
    }

    setters! { s;
        /// Site-level channel (U2).
        fn channel(channel: Channel) { s.channel = Some(channel) }
        /// Time zone for office hours: minutes east of UTC, within ±14:59.
        fn timezone(utc_offset_minutes: i32) { s.timezone = Some(UtcOffset(utc_offset_minutes)) }
    }
}

impl From<&str> for Site {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

/// A `[[builds]]` entry.
#[derive(Debug, Clone)]
pub struct Build(BuildSpec);

impl Build {
    /// A beta build for windows-amd64 of 256 KiB that only a `publish` event lands.
    pub fn new(version: Version) -> Self {
        Self(BuildSpec {
            version: unplaced(version),
            platforms: None,
            channel: None,
            published: None,
            size: None,
            install_failure_rate: None,
            corrupt_digest: false,
            missing_digest: false,
            logs: Vec::new(),
        })
    }

    setters! { s;
        /// One file per platform.
        fn platforms(platforms: impl IntoIterator<Item = Platform>) {
            s.platforms = Some(platforms.into_iter().collect())
        }
        /// What the `.channel` sidecar says when it lands (U8).
        fn channel(channel: Channel) { s.channel = Some(channel) }
        /// When it lands, from the start.
        fn published(at: Duration) { s.published = Some(unplaced(Dur(at))) }
        /// File size in bytes.
        fn size(bytes: u64) { s.size = Some(unplaced(Size(bytes))) }
        /// Chance an install of it fails, 0 to 1.
        fn install_failure_rate(rate: f64) { s.install_failure_rate = Some(unplaced(rate)) }
        /// The `.sha256` holds a wrong digest: every agent refuses the download.
        fn corrupt_digest() { s.corrupt_digest = true }
        /// No `.sha256`: the scanner skips the build (U6).
        fn missing_digest() { s.missing_digest = true }
        /// A line every machine running it logs (on top of `[agent]`'s); calls add up.
        fn log(line: Log) { s.logs.push(line.0) }
    }
}

/// One line of a `logs` key: what machines log, and how often.
#[derive(Debug, Clone)]
pub struct Log(LogSpec);

impl Log {
    /// `message` at `level`, `per_hour` times an hour per machine on
    /// average; `{n}`, `{hex}` and `{uuid}` in it are filled at random.
    pub fn new(level: LogLevel, message: &str, per_hour: f64) -> Self {
        Self(LogSpec {
            message: unplaced(message.to_owned()),
            level: unplaced(level.as_str().to_owned()),
            per_hour: unplaced(per_hour),
        })
    }
}

/// A `[[fleet]]` entry: `count` identical machines.
#[derive(Debug, Clone)]
pub struct Fleet(FleetSpec);

impl Fleet {
    /// `count` windows-amd64 machines at `site` (`client/site`) running `version`.
    pub fn new(count: u64, site: &str, version: Version) -> Self {
        Self(FleetSpec {
            name: None,
            count: unplaced(count),
            site: unplaced(site.to_owned()),
            version,
            platform: None,
            channel: None,
            availability: None,
            boot_spread: None,
            heartbeat: None,
            download: None,
            bandwidth: None,
            install: None,
            restart: None,
        })
    }

    timing_setters!();

    setters! { s;
        /// Names the group in events and hostnames (default `fleet-<n>`).
        fn name(name: &str) { s.name = Some(unplaced(name.to_owned())) }
        /// Platform (default windows-amd64).
        fn platform(platform: Platform) { s.platform = Some(platform) }
        /// Agent-level channel, set on each machine's row when it first enrolls.
        fn channel(channel: Channel) { s.channel = Some(channel) }
    }
}

/// An `[[events]]` entry's action, with its target or options; its time is
/// given to [`PlanBuilder::event`].
#[derive(Debug, Clone)]
pub struct Event(EventSpec);

impl Event {
    fn with(set: impl FnOnce(&mut EventSpec)) -> Self {
        let mut e = EventSpec {
            at: unplaced(Dur(Duration::ZERO)),
            publish: None,
            promote: None,
            rollback: None,
            update: None,
            set_channel: None,
            disconnect: None,
            server_restart: None,
            os: None,
            arch: None,
            force: false,
            group: None,
            site: None,
            client: None,
            for_: None,
        };
        set(&mut e);
        Self(e)
    }

    /// Lands a build declared without `published`.
    pub fn publish(version: Version) -> Self {
        Self::with(|e| e.publish = Some(unplaced(version)))
    }

    /// Promotes a build (U9); see [`scope`](Self::scope) and [`force`](Self::force).
    pub fn promote(version: Version) -> Self {
        Self::with(|e| e.promote = Some(unplaced(version)))
    }

    /// Rolls a build back (U10).
    pub fn rollback(version: Version) -> Self {
        Self::with(|e| e.rollback = Some(unplaced(version)))
    }

    /// A manual update (U5) to `version`, or to the channel's latest (`None`).
    pub fn update(version: Option<Version>) -> Self {
        let to = version.map_or_else(|| "latest".to_owned(), |v| v.to_string());
        Self::with(|e| e.update = Some(unplaced(to)))
    }

    /// Sets a channel (U2), or clears it (`None`: inherit); needs a target.
    pub fn set_channel(channel: Option<Channel>) -> Self {
        let to = channel.map_or("inherit", Channel::as_str).to_owned();
        Self::with(|e| e.set_channel = Some(unplaced(to)))
    }

    /// Takes `fraction` of the targeted machines offline for `time`.
    pub fn disconnect(fraction: f64, time: Duration) -> Self {
        Self::with(|e| {
            e.disconnect = Some(unplaced(fraction));
            e.for_ = Some(unplaced(Dur(time)));
        })
    }

    /// Stops the server for `down`, then starts it on the same database.
    pub fn server_restart(down: Duration) -> Self {
        Self::with(|e| e.server_restart = Some(unplaced(Dur(down))))
    }

    setters! { s;
        /// A promote's scope: the gate and the rollout row of one platform.
        fn scope(platform: &Platform) {
            s.os = Some(platform.os().to_owned());
            s.arch = Some(platform.arch().to_owned());
        }
        /// A promote overrides a failing gate.
        fn force() { s.force = true }
        /// Targets a fleet entry by name.
        fn group(name: &str) { s.group = Some(unplaced(name.to_owned())) }
        /// Targets a site, `client/site`.
        fn site(path: &str) { s.site = Some(unplaced(path.to_owned())) }
        /// Targets a client.
        fn client(name: &str) { s.client = Some(unplaced(name.to_owned())) }
    }
}

/// An `[[expect]]` entry: a metric (by its name in docs/scenarios.md) and
/// its bounds.
#[derive(Debug, Clone)]
pub struct Expect(ExpectSpec);

impl Expect {
    /// An expectation on `metric` (`fraction_on`, `t90`, `stranded`, …).
    pub fn new(metric: &str) -> Self {
        Self(ExpectSpec {
            metric: unplaced(metric.to_owned()),
            version: None,
            channel: None,
            at: None,
            of: None,
            reason: None,
            level: None,
            new_in: None,
            min: None,
            max: None,
        })
    }

    setters! { s;
        /// The version measured.
        fn version(version: Version) { s.version = Some(unplaced(version)) }
        /// Narrows to one channel's machines.
        fn channel(channel: Channel) { s.channel = Some(unplaced(channel)) }
        /// When to measure, from the start (default the end).
        fn at(at: Duration) { s.at = Some(unplaced(Dur(at))) }
        /// `fraction_on` of the powered-on machines rather than the fleet.
        fn of_online() { s.of = Some(unplaced("online".to_owned())) }
        /// `stranded`: count one reason.
        fn reason(reason: &str) { s.reason = Some(unplaced(reason.to_owned())) }
        /// Log metrics: only lines of this level.
        fn level(level: LogLevel) { s.level = Some(unplaced(level.as_str().to_owned())) }
        /// Log metrics: only signatures first seen on this version.
        fn new_in(version: Version) { s.new_in = Some(unplaced(version)) }
        /// Lowest allowed value: a number, or a [`Duration`] for times.
        fn min(bound: impl Into<BoundSpec>) { s.min = Some(unplaced(bound.into())) }
        /// Highest allowed value: a number, or a [`Duration`] for times.
        fn max(bound: impl Into<BoundSpec>) { s.max = Some(unplaced(bound.into())) }
    }
}

impl From<f64> for BoundSpec {
    fn from(n: f64) -> Self {
        Self::Number(n)
    }
}

/// A duration bound is written as one (`"10m"`), so a metric that is not a
/// time refuses it as it refuses `"10m"` in a file.
impl From<Duration> for BoundSpec {
    fn from(d: Duration) -> Self {
        Self::Text(humantime::format_duration(d).to_string())
    }
}
