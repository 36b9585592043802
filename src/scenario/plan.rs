//! The checked scenario: every reference resolved, every default filled in,
//! events in time order. Building it does no I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use toml::Spanned;

use super::spec::{AgentSection, AvailabilitySpec, BoundSpec, Dur, EventSpec, ExpectSpec, Spec};
use crate::agent::{Availability, Timing};
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
    /// Put a build in the downloads folder and rescan (U8).
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
        reason: Option<String>,
    },
    /// Agent rows no machine stands behind any more, in the server's store.
    OrphanRows,
    /// Agent rows in the server's store.
    AgentRows,
    /// A server counter over the whole run.
    Counter(Counter),
    /// Builds stable trails beta by, at `at` (the worst over the run when `None`).
    StableLagBuilds {
        /// When.
        at: Option<Duration>,
    },
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
    /// The line of its `[[expect]]` table.
    pub line: usize,
}

/// A check that failed, with where.
pub(super) struct Problem {
    pub offset: usize,
    pub key: String,
    pub message: String,
}

type Check<T> = Result<T, Problem>;

fn at<T>(s: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        offset: s.span().start,
        key: key.into(),
        message: message.into(),
    }
}

fn fmt_dur(d: Duration) -> String {
    crate::clock::short(d)
}

/// Defaults of `[agent]` (docs/scenarios.md lists them).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);
const DEFAULT_BOUNDARY: Version = Version::new(0, 6, 40);

fn timing(agent: &AgentSection, heartbeat: Option<&Spanned<Dur>>) -> Check<Timing> {
    let hb = heartbeat.or(agent.heartbeat.as_ref());
    if let Some(h) = hb.filter(|h| h.get_ref().0.is_zero()) {
        return Err(at(h, "heartbeat", "must be longer than 0s"));
    }
    if let Some(j) = agent.jitter.as_ref().filter(|j| !(0.0..1.0).contains(j.get_ref())) {
        return Err(at(j, "agent.jitter", "must be at least 0 and below 1"));
    }
    let min = agent
        .reconnect_min
        .as_ref()
        .map_or(Duration::from_secs(1), |d| d.get_ref().0);
    let max = agent
        .reconnect_max
        .as_ref()
        .map_or(Duration::from_secs(300), |d| d.get_ref().0);
    if let Some(m) = agent.reconnect_min.as_ref().filter(|_| min.is_zero() || min > max) {
        return Err(at(
            m,
            "agent.reconnect_min",
            "must be above 0s and at most reconnect_max",
        ));
    }
    Ok(Timing {
        heartbeat: hb.map_or(DEFAULT_HEARTBEAT, |h| h.get_ref().0),
        jitter: agent.jitter.as_ref().map_or(0.02, |j| *j.get_ref()),
        download: agent.download.map_or(Duration::from_secs(20), |d| d.0),
        install: agent.install.map_or(Duration::from_secs(30), |d| d.0),
        restart: agent.restart.map_or(Duration::from_secs(15), |d| d.0),
        reconnect_min: min,
        reconnect_max: max,
    })
}

fn availability(spec: &AvailabilitySpec, utc_offset_minutes: i32) -> Availability {
    match spec {
        AvailabilitySpec::Always => Availability::Always,
        AvailabilitySpec::OfficeHours => Availability::OfficeHours { utc_offset_minutes },
        AvailabilitySpec::Intermittent { session, absence } => Availability::Intermittent {
            mean_session: session.0,
            mean_absence: absence.0,
        },
    }
}

/// Checks a parsed file.
pub(super) fn check(spec: Spec, text: &str) -> Check<Plan> {
    let s = &spec.scenario;
    let name = s.name.get_ref();
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid_name {
        return Err(at(
            &s.name,
            "scenario.name",
            "1 to 64 of a-z, 0-9, - and _ (it names the report folder)",
        ));
    }
    let duration = s.duration.get_ref().0;
    if duration.is_zero() {
        return Err(at(&s.duration, "scenario.duration", "must be longer than 0s"));
    }
    let sample_every = s
        .sample_every
        .as_ref()
        .map_or(Duration::from_secs(60), |d| d.get_ref().0);
    if let Some(d) = s
        .sample_every
        .as_ref()
        .filter(|_| sample_every.is_zero() || sample_every > duration)
    {
        return Err(at(
            d,
            "scenario.sample_every",
            "must be above 0s and at most the duration",
        ));
    }
    let gate = match &spec.server.health_gate {
        None => HealthGate::default(),
        Some(g) => {
            let rate = *g.max_failure_rate.get_ref();
            if !(0.0..=1.0).contains(&rate) {
                return Err(at(
                    &g.max_failure_rate,
                    "server.health_gate.max_failure_rate",
                    "must be between 0 and 1",
                ));
            }
            HealthGate {
                min_successes: g.min_successes,
                max_failure_rate: rate,
            }
        }
    };
    let clients = check_clients(&spec)?;
    let builds = check_builds(&spec, duration)?;
    let groups = check_fleet(&spec, &clients)?;
    let events = check_events(&spec, duration, &clients, &builds, &groups)?;
    let expects = check_expects(&spec, duration, &builds, text)?;
    Ok(Plan {
        name: name.clone(),
        description: s.description.clone(),
        seed: s.seed.unwrap_or(1),
        start: s.start,
        duration,
        sample_every,
        gate,
        clients,
        builds,
        groups,
        events,
        expects,
    })
}

fn check_clients(spec: &Spec) -> Check<Vec<ClientPlan>> {
    let mut clients: Vec<ClientPlan> = Vec::new();
    let name_ok = |n: &str| !n.is_empty() && n.len() <= 100 && !n.contains('/') && n.trim() == n;
    for (i, c) in spec.clients.iter().enumerate() {
        let name = c.name.get_ref();
        if !name_ok(name) {
            return Err(at(&c.name, format!("clients[{i}].name"), "1 to 100 characters, no '/'"));
        }
        if clients.iter().any(|o| &o.name == name) {
            return Err(at(
                &c.name,
                format!("clients[{i}].name"),
                format!("a client named `{name}` is defined twice"),
            ));
        }
        let mut sites: Vec<SitePlan> = Vec::new();
        for (j, site) in c.sites.iter().enumerate() {
            let sname = site.name.get_ref();
            let key = format!("clients[{i}].sites[{j}].name");
            if !name_ok(sname) {
                return Err(at(&site.name, key, "1 to 100 characters, no '/'"));
            }
            if sites.iter().any(|o| &o.name == sname) {
                return Err(at(&site.name, key, format!("site `{name}/{sname}` is defined twice")));
            }
            let tz = site.timezone.or(c.timezone).map_or(0, |o| o.0);
            sites.push(SitePlan {
                name: sname.clone(),
                channel: site.channel,
                utc_offset_minutes: tz,
            });
        }
        clients.push(ClientPlan {
            name: name.clone(),
            channel: c.channel,
            sites,
        });
    }
    Ok(clients)
}

fn check_builds(spec: &Spec, duration: Duration) -> Check<Vec<BuildPlan>> {
    let mut builds: Vec<BuildPlan> = Vec::new();
    for (i, b) in spec.builds.iter().enumerate() {
        let b = b.get_ref();
        let version = *b.version.get_ref();
        if builds.iter().any(|o| o.version == version) {
            return Err(at(
                &b.version,
                format!("builds[{i}].version"),
                format!("{version} is defined twice"),
            ));
        }
        let platforms = b
            .platforms
            .clone()
            .unwrap_or_else(|| vec!["windows-amd64".parse().unwrap_or_else(|_| unreachable!())]);
        let unique: BTreeSet<&Platform> = platforms.iter().collect();
        if platforms.is_empty() || unique.len() != platforms.len() {
            return Err(at(
                &b.version,
                format!("builds[{i}].platforms"),
                "needs one or more distinct platforms",
            ));
        }
        if let Some(p) = b.published.as_ref().filter(|p| p.get_ref().0 > duration) {
            return Err(at(
                p,
                format!("builds[{i}].published"),
                "is after the end of the scenario",
            ));
        }
        let failure_rate = b.install_failure_rate.as_ref().map_or(0.0, |r| *r.get_ref());
        if let Some(r) = b
            .install_failure_rate
            .as_ref()
            .filter(|_| !(0.0..=1.0).contains(&failure_rate))
        {
            return Err(at(
                r,
                format!("builds[{i}].install_failure_rate"),
                "must be between 0 and 1",
            ));
        }
        let digest = match (b.corrupt_digest, b.missing_digest) {
            (true, true) => {
                return Err(at(
                    &b.version,
                    format!("builds[{i}]"),
                    "corrupt_digest and missing_digest exclude each other",
                ));
            }
            (true, false) => DigestMode::Corrupt,
            (false, true) => DigestMode::Missing,
            (false, false) => DigestMode::Correct,
        };
        builds.push(BuildPlan {
            version,
            platforms,
            channel: b.channel.unwrap_or(Channel::Beta),
            published: b.published.as_ref().map(|p| p.get_ref().0),
            size: b.size.map_or(256 * 1024, |s| s.0),
            failure_rate,
            digest,
        });
    }
    Ok(builds)
}

/// Resolves `client/site`.
fn find_site(clients: &[ClientPlan], path: &Spanned<String>, key: String) -> Check<(usize, usize)> {
    let known = || {
        let all: Vec<String> = clients
            .iter()
            .flat_map(|c| c.sites.iter().map(move |s| format!("{}/{}", c.name, s.name)))
            .collect();
        if all.is_empty() {
            "none are defined".to_owned()
        } else {
            format!("defined: {}", all.join(", "))
        }
    };
    let Some((c, s)) = path.get_ref().split_once('/') else {
        return Err(at(
            path,
            key,
            format!("expected `client/site`, got `{}`", path.get_ref()),
        ));
    };
    let ci = clients.iter().position(|x| x.name == c);
    let si = ci.and_then(|ci| clients[ci].sites.iter().position(|x| x.name == s));
    match (ci, si) {
        (Some(ci), Some(si)) => Ok((ci, si)),
        _ => Err(at(path, key, format!("no site `{}` ({})", path.get_ref(), known()))),
    }
}

fn check_fleet(spec: &Spec, clients: &[ClientPlan]) -> Check<Vec<GroupPlan>> {
    let mut groups: Vec<GroupPlan> = Vec::new();
    let defaults = &spec.agent;
    for (i, f) in spec.fleet.iter().enumerate() {
        let f = f.get_ref();
        let name = f
            .name
            .as_ref()
            .map_or_else(|| format!("fleet-{}", i + 1), |n| n.get_ref().clone());
        if let Some(n) = f.name.as_ref().filter(|_| groups.iter().any(|g| g.name == name)) {
            return Err(at(
                n,
                format!("fleet[{i}].name"),
                format!("a fleet entry named `{name}` is defined twice"),
            ));
        }
        if *f.count.get_ref() == 0 {
            return Err(at(&f.count, format!("fleet[{i}].count"), "must be at least 1"));
        }
        let (client, site) = find_site(clients, &f.site, format!("fleet[{i}].site"))?;
        let mut agent = AgentSection { ..Default::default() };
        agent.jitter = defaults.jitter.clone();
        agent.reconnect_min = defaults.reconnect_min.clone();
        agent.reconnect_max = defaults.reconnect_max.clone();
        agent.heartbeat = defaults.heartbeat.clone();
        agent.download = f.download.or(defaults.download);
        agent.install = f.install.or(defaults.install);
        agent.restart = f.restart.or(defaults.restart);
        let timing = timing(&agent, f.heartbeat.as_ref()).map_err(|mut p| {
            p.key = if p.key == "heartbeat" {
                format!("fleet[{i}].heartbeat")
            } else {
                p.key
            };
            p
        })?;
        let tz = clients[client].sites[site].utc_offset_minutes;
        let avail = f
            .availability
            .as_ref()
            .or(defaults.availability.as_ref())
            .unwrap_or(&AvailabilitySpec::Always);
        groups.push(GroupPlan {
            name,
            count: usize::try_from(*f.count.get_ref()).unwrap_or(usize::MAX),
            client,
            site,
            version: f.version,
            platform: f
                .platform
                .clone()
                .unwrap_or_else(|| "windows-amd64".parse().unwrap_or_else(|_| unreachable!())),
            channel: f.channel,
            availability: availability(avail, tz),
            timing,
            identity_boundary: defaults.identity_boundary.unwrap_or(DEFAULT_BOUNDARY),
        });
    }
    Ok(groups)
}

fn build_ref(builds: &[BuildPlan], v: &Spanned<Version>, key: String) -> Check<Version> {
    let version = *v.get_ref();
    if builds.iter().any(|b| b.version == version) {
        Ok(version)
    } else {
        let known: Vec<String> = builds.iter().map(|b| b.version.to_string()).collect();
        Err(at(
            v,
            key,
            format!("no build {version} in [[builds]] (defined: {})", known.join(", ")),
        ))
    }
}

fn check_events(
    spec: &Spec,
    duration: Duration,
    clients: &[ClientPlan],
    builds: &[BuildPlan],
    groups: &[GroupPlan],
) -> Check<Vec<EventPlan>> {
    let mut events: Vec<EventPlan> = builds
        .iter()
        .filter_map(|b| {
            b.published.map(|at| EventPlan {
                at,
                action: Action::Publish(b.version),
            })
        })
        .collect();
    for (i, e) in spec.events.iter().enumerate() {
        let action = check_event(e, i, clients, builds, groups)?;
        let when = e.get_ref().at.get_ref().0;
        if when > duration {
            return Err(at(
                &e.get_ref().at,
                format!("events[{i}].at"),
                "is after the end of the scenario",
            ));
        }
        if let Action::Publish(v) = action {
            if events.iter().any(|x| x.action == Action::Publish(v)) {
                let p = e.get_ref().publish.as_ref().unwrap_or_else(|| unreachable!());
                return Err(at(
                    p,
                    format!("events[{i}].publish"),
                    format!("{v} is already published (by its `published` key or an earlier event)"),
                ));
            }
        }
        events.push(EventPlan { at: when, action });
    }
    // Stable: events at the same time keep their file order.
    events.sort_by_key(|e| e.at);
    Ok(events)
}

fn check_event(
    e: &Spanned<EventSpec>,
    i: usize,
    clients: &[ClientPlan],
    builds: &[BuildPlan],
    groups: &[GroupPlan],
) -> Check<Action> {
    let spec = e.get_ref();
    let key = |k: &str| format!("events[{i}].{k}");
    let actions = [
        spec.publish.is_some(),
        spec.promote.is_some(),
        spec.rollback.is_some(),
        spec.update.is_some(),
        spec.set_channel.is_some(),
        spec.disconnect.is_some(),
        spec.server_restart.is_some(),
    ];
    if actions.iter().filter(|&&a| a).count() != 1 {
        return Err(at(
            e,
            format!("events[{i}]"),
            "needs exactly one of publish, promote, rollback, update, set_channel, disconnect, server_restart",
        ));
    }
    let target = check_target(spec, i, clients, groups)?;
    let has_target = spec.group.is_some() || spec.site.is_some() || spec.client.is_some();
    let targeted = spec.update.is_some() || spec.set_channel.is_some() || spec.disconnect.is_some();
    if has_target && !targeted {
        return Err(at(
            e,
            format!("events[{i}]"),
            "group/site/client only go with update, set_channel or disconnect",
        ));
    }
    if (spec.os.is_some() || spec.arch.is_some() || spec.force) && spec.promote.is_none() {
        return Err(at(e, format!("events[{i}]"), "os/arch/force only go with promote"));
    }
    if spec.for_.is_some() && spec.disconnect.is_none() {
        return Err(at(e, key("for"), "`for` only goes with disconnect"));
    }
    if let Some(v) = &spec.publish {
        let version = build_ref(builds, v, key("publish"))?;
        if builds.iter().any(|b| b.version == version && b.published.is_some()) {
            return Err(at(
                v,
                key("publish"),
                format!("{version} has a `published` time already; remove one of the two"),
            ));
        }
        return Ok(Action::Publish(version));
    }
    if let Some(v) = &spec.promote {
        let version = build_ref(builds, v, key("promote"))?;
        let scope = match (&spec.os, &spec.arch) {
            (None, None) => None,
            (Some(os), Some(arch)) => Some(Platform::new(os, arch).map_err(|err| at(e, key("os"), err.to_string()))?),
            _ => {
                return Err(at(e, format!("events[{i}]"), "give both os and arch, or neither"));
            }
        };
        return Ok(Action::Promote {
            version,
            scope,
            force: spec.force,
        });
    }
    if let Some(v) = &spec.rollback {
        return Ok(Action::Rollback(build_ref(builds, v, key("rollback"))?));
    }
    if let Some(u) = &spec.update {
        let version = match u.get_ref().as_str() {
            "latest" => None,
            text => {
                let v: Version = text
                    .parse()
                    .map_err(|err: crate::protocol::VersionError| at(u, key("update"), err.to_string()))?;
                Some(build_ref(builds, &Spanned::new(u.span(), v), key("update"))?)
            }
        };
        return Ok(Action::Update { target, version });
    }
    if let Some(c) = &spec.set_channel {
        if target == Target::All {
            return Err(at(c, key("set_channel"), "needs a group, site or client"));
        }
        let channel = match c.get_ref().as_str() {
            "inherit" => None,
            other => Some(
                other
                    .parse()
                    .map_err(|_| at(c, key("set_channel"), "expected beta, stable or inherit"))?,
            ),
        };
        return Ok(Action::SetChannel { target, channel });
    }
    if let Some(f) = &spec.disconnect {
        let fraction = *f.get_ref();
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(at(f, key("disconnect"), "a fraction above 0, at most 1"));
        }
        let Some(dur) = spec.for_.as_ref().filter(|d| !d.get_ref().0.is_zero()) else {
            return Err(at(f, key("for"), "disconnect needs `for`, a duration above 0s"));
        };
        return Ok(Action::Disconnect {
            target,
            fraction,
            duration: dur.get_ref().0,
        });
    }
    let down = spec
        .server_restart
        .as_ref()
        .unwrap_or_else(|| unreachable!("one action is set"));
    if down.get_ref().0.is_zero() {
        return Err(at(down, key("server_restart"), "downtime must be above 0s"));
    }
    Ok(Action::ServerRestart { down: down.get_ref().0 })
}

fn check_target(spec: &EventSpec, i: usize, clients: &[ClientPlan], groups: &[GroupPlan]) -> Check<Target> {
    let key = |k: &str| format!("events[{i}].{k}");
    match (&spec.group, &spec.site, &spec.client) {
        (None, None, None) => Ok(Target::All),
        (Some(g), None, None) => groups
            .iter()
            .position(|x| &x.name == g.get_ref())
            .map(Target::Group)
            .ok_or_else(|| {
                let known: Vec<&str> = groups.iter().map(|x| x.name.as_str()).collect();
                at(
                    g,
                    key("group"),
                    format!("no fleet entry named `{}` (defined: {})", g.get_ref(), known.join(", ")),
                )
            }),
        (None, Some(s), None) => find_site(clients, s, key("site")).map(|(c, s)| Target::Site(c, s)),
        (None, None, Some(c)) => clients
            .iter()
            .position(|x| &x.name == c.get_ref())
            .map(Target::Client)
            .ok_or_else(|| at(c, key("client"), format!("no client named `{}`", c.get_ref()))),
        _ => Err(Problem {
            offset: spec.at.span().start,
            key: format!("events[{i}]"),
            message: "give at most one of group, site, client".into(),
        }),
    }
}

fn bound(b: &Spanned<BoundSpec>, key: String, duration_ok: bool) -> Check<f64> {
    match b.get_ref() {
        BoundSpec::Number(n) if n.is_finite() => Ok(*n),
        BoundSpec::Text(t) if duration_ok => humantime::parse_duration(t)
            .map(|d| d.as_secs_f64())
            .map_err(|e| at(b, key, format!("invalid duration `{t}`: {e}"))),
        _ => Err(at(
            b,
            key,
            if duration_ok {
                "expected a duration like \"30m\" or seconds"
            } else {
                "expected a number"
            },
        )),
    }
}

/// The stranded reasons a `stranded` expectation may name.
pub const STRAND_REASONS: [&str; 5] = [
    "channel_frozen",
    "blocked_version",
    "offline",
    "updates_failing",
    "update_in_progress",
];

fn check_expects(spec: &Spec, duration: Duration, builds: &[BuildPlan], text: &str) -> Check<Vec<Expectation>> {
    let mut out = Vec::new();
    for (i, e) in spec.expect.iter().enumerate() {
        let x = e.get_ref();
        let key = |k: &str| format!("expect[{i}].{k}");
        let name = x.metric.get_ref().as_str();
        let when = x.at.as_ref().map(|a| a.get_ref().0);
        if let Some(a) = x.at.as_ref().filter(|a| a.get_ref().0 > duration) {
            return Err(at(a, key("at"), "is after the end of the scenario"));
        }
        let version = |required: bool| -> Check<Option<Version>> {
            match &x.version {
                Some(v) => build_ref(builds, v, key("version")).map(Some),
                None if required => Err(at(&x.metric, key("version"), format!("`{name}` needs a version"))),
                None => Ok(None),
            }
        };
        let metric = match name {
            "fraction_on" => Metric::FractionOn {
                version: version(true)?.unwrap_or_else(|| unreachable!()),
                channel: x.channel,
                at: when.unwrap_or(duration),
                online_only: match x.of.as_ref().map(|o| o.get_ref().as_str()) {
                    None | Some("fleet") => false,
                    Some("online") => true,
                    Some(_) => {
                        return Err(at(
                            x.of.as_ref().unwrap_or_else(|| unreachable!()),
                            key("of"),
                            "expected fleet or online",
                        ));
                    }
                },
            },
            "t50" | "t90" | "t99" | "t100" => Metric::Convergence {
                pct: name[1..].parse().unwrap_or(100),
                version: version(true)?.unwrap_or_else(|| unreachable!()),
                channel: x.channel.unwrap_or(Channel::Stable),
            },
            "stranded" => Metric::Stranded {
                reason: match &x.reason {
                    Some(r) if STRAND_REASONS.contains(&r.get_ref().as_str()) => Some(r.get_ref().clone()),
                    Some(r) => {
                        return Err(at(
                            r,
                            key("reason"),
                            format!("expected one of {}", STRAND_REASONS.join(", ")),
                        ));
                    }
                    None => None,
                },
            },
            "orphan_rows" => Metric::OrphanRows,
            "agent_rows" => Metric::AgentRows,
            "heartbeats" => Metric::Counter(Counter::Heartbeats),
            "dispatches" => Metric::Counter(Counter::Dispatches),
            "redispatches" => Metric::Counter(Counter::Redispatches),
            "downloads" => Metric::Counter(Counter::Downloads),
            "update_failures" => Metric::Counter(Counter::UpdateFailures),
            "update_successes" => Metric::Counter(Counter::UpdateSuccesses),
            "stable_lag_builds" => Metric::StableLagBuilds { at: when },
            other => {
                return Err(at(
                    &x.metric,
                    key("metric"),
                    format!(
                        "unknown metric `{other}` (fraction_on, t50, t90, t99, t100, stranded, orphan_rows, agent_rows, \
                     heartbeats, dispatches, redispatches, downloads, update_failures, update_successes, stable_lag_builds)"
                    ),
                ));
            }
        };
        let is_time = matches!(metric, Metric::Convergence { .. });
        let min = x.min.as_ref().map(|b| bound(b, key("min"), is_time)).transpose()?;
        let max = x.max.as_ref().map(|b| bound(b, key("max"), is_time)).transpose()?;
        if min.is_none() && max.is_none() {
            return Err(at(&x.metric, format!("expect[{i}]"), "needs min, max or both"));
        }
        let line = super::line_col(text, e.span().start).0;
        out.push(Expectation {
            label: label(x, when),
            metric,
            min,
            max,
            line,
        });
    }
    Ok(out)
}

fn label(x: &ExpectSpec, when: Option<Duration>) -> String {
    let mut s = x.metric.get_ref().clone();
    if let Some(v) = &x.version {
        s += &format!(" {}", v.get_ref());
    }
    if let Some(c) = x.channel {
        s += &format!(" ({c})");
    }
    if let Some(r) = &x.reason {
        s += &format!(" reason={}", r.get_ref());
    }
    if x.of.as_ref().is_some_and(|o| o.get_ref() == "online") {
        s += " of online";
    }
    if let Some(w) = when {
        s += &format!(" at {}", fmt_dur(w));
    }
    s
}

impl Plan {
    /// Multiplies every fleet count by `factor` (at least one machine each).
    pub fn scale(&mut self, factor: f64) {
        for g in &mut self.groups {
            g.count = ((g.count as f64 * factor).round() as usize).max(1);
        }
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
