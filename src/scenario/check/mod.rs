//! From `spec` (as written) to `Plan` (checked): every reference resolved,
//! every default filled in. Each problem carries the byte offset of what is
//! wrong, so the error names its line.

mod built;
mod events;
mod expects;
mod logs;

use std::collections::BTreeSet;
use std::time::Duration;

use toml::Spanned;

use super::plan::{BuildPlan, ClientPlan, GroupPlan, MAX_FLEET, Plan, RegressionGate, SitePlan};

/// Most samples a curve may have: past that, reports grow without telling more.
const MAX_SAMPLES: usize = 1_000_000;
/// Largest build a scenario may declare.
const MAX_BUILD_BYTES: u64 = 1 << 30;
use super::spec::{AgentSection, AvailabilitySpec, BuildSpec, Dur, FleetSpec, ScenarioSection, Spec};
use crate::agent::{Availability, Timing};
use crate::protocol::{self, Channel, Platform, Version};
use crate::server::publish::DigestMode;
use crate::server::{self, HealthGate};

/// A check that failed, with where.
pub(crate) struct Problem {
    pub offset: usize,
    pub key: String,
    pub message: String,
}

pub(super) type Check<T> = Result<T, Problem>;

pub(super) fn at<T>(s: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        offset: s.span().start,
        key: key.into(),
        message: message.into(),
    }
}

pub(super) fn fmt_dur(d: Duration) -> String {
    crate::clock::short(d)
}

/// Defaults of `[agent]` (docs/scenarios.md lists them).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);
const DEFAULT_BOUNDARY: Version = Version::new(0, 6, 40);
const DEFAULT_BOOT_SPREAD: Duration = Duration::from_secs(30 * 60);
/// 08:00 to 18:00: a spread must leave a machine on every workday.
const OFFICE_DAY: Duration = Duration::from_secs(10 * 3600);

fn timing(agent: &AgentSection, heartbeat: Option<&Spanned<Dur>>) -> Check<Timing> {
    // A fleet entry's own heartbeat is named by the caller; `[agent]`'s here.
    let (hb, hb_key) = match heartbeat {
        Some(h) => (Some(h), "heartbeat"),
        None => (agent.heartbeat.as_ref(), "agent.heartbeat"),
    };
    if let Some(h) = hb.filter(|h| h.get_ref().0.is_zero()) {
        return Err(at(h, hb_key, "must be longer than 0s"));
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
    if min.is_zero() || min > max {
        // Blame a key that was set (the defaults, 1s and 5m, are fine).
        return Err(match (&agent.reconnect_min, &agent.reconnect_max) {
            (Some(m), _) if min.is_zero() => at(m, "agent.reconnect_min", "must be above 0s"),
            (Some(m), None) => at(m, "agent.reconnect_min", "must be at most reconnect_max (default 5m)"),
            (_, Some(m)) => at(
                m,
                "agent.reconnect_max",
                if agent.reconnect_min.is_some() {
                    "must be at least reconnect_min"
                } else {
                    "must be at least reconnect_min (default 1s)"
                },
            ),
            (None, None) => unreachable!("the defaults are 1s and 5m"),
        });
    }
    Ok(Timing {
        heartbeat: hb.map_or(DEFAULT_HEARTBEAT, |h| h.get_ref().0),
        jitter: agent.jitter.as_ref().map_or(0.02, |j| *j.get_ref()),
        download: agent.download.map_or(Duration::from_secs(20), |d| d.0),
        bandwidth: agent.bandwidth.map(|r| r.0),
        install: agent.install.map_or(Duration::from_secs(30), |d| d.0),
        restart: agent.restart.map_or(Duration::from_secs(15), |d| d.0),
        reconnect_min: min,
        reconnect_max: max,
    })
}

fn availability(spec: &AvailabilitySpec, utc_offset_minutes: i32, boot_spread: Duration) -> Availability {
    match spec {
        AvailabilitySpec::Always => Availability::Always,
        AvailabilitySpec::OfficeHours => Availability::OfficeHours {
            utc_offset_minutes,
            boot_spread,
        },
        AvailabilitySpec::Intermittent { session, absence } => Availability::Intermittent {
            mean_session: session.0,
            mean_absence: absence.0,
        },
    }
}

/// Checks a parsed file, or a spec built in code (`text` is `None`: there is
/// no file, and expectations have no line).
pub(crate) fn check(spec: &Spec, text: Option<&str>) -> Check<Plan> {
    let s = &spec.scenario;
    let name = check_name(&s.name)?;
    let duration = s.duration.get_ref().0;
    if duration.is_zero() {
        return Err(at(&s.duration, "scenario.duration", "must be longer than 0s"));
    }
    let sample_every = check_sampling(s, duration)?;
    let gate = check_health_gate(spec)?;
    let rescan_every = spec.server.rescan_every.map_or(server::DEFAULT_RESCAN_EVERY, |d| d.0);
    let max_enrolments_per_minute = check_enrolment_cap(spec)?;
    built::check_rates(spec)?;
    let clients = check_clients(spec)?;
    let builds = check_builds(spec, duration)?;
    let groups = check_fleet(spec, &clients)?;
    let events = events::check_events(spec, duration, &clients, &builds, &groups)?;
    let expects = expects::check_expects(spec, duration, &builds, text)?;
    Ok(Plan {
        name: name.clone(),
        description: s.description.clone(),
        seed: s.seed.unwrap_or(1),
        start: s.start,
        duration,
        sample_every,
        gate,
        egress: spec.server.bandwidth.map(|r| r.0),
        rescan_every,
        max_enrolments_per_minute,
        logs: logs::check_logs(&spec.agent.logs, "agent.logs")?,
        clients,
        builds,
        groups,
        events,
        expects,
        regression: check_regression(spec)?,
    })
}

/// The scenario's name, which names its report folder.
fn check_name(name: &Spanned<String>) -> Check<&String> {
    let text = name.get_ref();
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(at(
            name,
            "scenario.name",
            "1 to 64 of a-z, 0-9, - and _ (it names the report folder)",
        ));
    }
    Ok(text)
}

/// `scenario.sample_every`, or a minute: above zero, at most the duration,
/// and not so fine that the curves outgrow [`MAX_SAMPLES`].
fn check_sampling(s: &ScenarioSection, duration: Duration) -> Check<Duration> {
    let sample_every = s
        .sample_every
        .as_ref()
        .map_or(Duration::from_secs(60), |d| d.get_ref().0);
    let samples = duration.as_millis() / sample_every.as_millis().max(1);
    if let Some(d) = s.sample_every.as_ref().filter(|_| samples > MAX_SAMPLES as u128) {
        return Err(at(
            d,
            "scenario.sample_every",
            format!("too fine: more than {MAX_SAMPLES} samples over the duration"),
        ));
    }
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
    Ok(sample_every)
}

/// `[server.health_gate]`, or the server's default gate.
fn check_health_gate(spec: &Spec) -> Check<HealthGate> {
    let Some(g) = &spec.server.health_gate else {
        return Ok(HealthGate::default());
    };
    let rate = *g.max_failure_rate.get_ref();
    if !(0.0..=1.0).contains(&rate) {
        return Err(at(
            &g.max_failure_rate,
            "server.health_gate.max_failure_rate",
            "must be between 0 and 1",
        ));
    }
    let new_errors = g.max_new_error_rate.as_ref();
    if let Some(r) = new_errors.filter(|r| !(r.get_ref().is_finite() && *r.get_ref() >= 0.0)) {
        let why = "must be at least 0 (error lines of new signatures per machine-hour)";
        return Err(at(r, "server.health_gate.max_new_error_rate", why));
    }
    Ok(HealthGate {
        min_successes: g.min_successes,
        max_failure_rate: rate,
        max_new_error_rate: new_errors.map(|r| *r.get_ref()),
    })
}

/// `[server] max_enrolments_per_minute`: at least 1 when given; none is no cap.
fn check_enrolment_cap(spec: &Spec) -> Check<Option<u32>> {
    match &spec.server.max_enrolments_per_minute {
        Some(cap) if *cap.get_ref() == 0 => Err(at(
            cap,
            "server.max_enrolments_per_minute",
            "must be at least 1 (leave it out for no cap)",
        )),
        cap => Ok(cap.as_ref().map(|c| *c.get_ref())),
    }
}

/// `[gate]`: what `rmmsim check` tolerates against the baseline.
fn check_regression(spec: &Spec) -> Check<RegressionGate> {
    let mut regression = RegressionGate::default();
    if let Some(g) = &spec.gate {
        if let Some(t) = &g.tolerance {
            if !(0.0..=10.0).contains(t.get_ref()) {
                return Err(at(t, "gate.tolerance", "must be between 0 and 10 (0.1 is 10 %)"));
            }
            regression.tolerance = *t.get_ref();
        }
        if let Some(s) = g.slack {
            regression.slack = s.0;
        }
    }
    Ok(regression)
}

fn check_clients(spec: &Spec) -> Check<Vec<ClientPlan>> {
    let mut clients: Vec<ClientPlan> = Vec::new();
    for (i, c) in spec.clients.iter().enumerate() {
        let name = c.name.get_ref();
        if !protocol::is_valid_name(name) {
            return Err(at(&c.name, format!("clients[{i}].name"), protocol::NAME_RULE));
        }
        built::check_timezone(c.timezone, || format!("clients[{i}].timezone"))?;
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
            if !protocol::is_valid_name(sname) {
                return Err(at(&site.name, key, protocol::NAME_RULE));
            }
            if sites.iter().any(|o| &o.name == sname) {
                return Err(at(&site.name, key, format!("site `{name}/{sname}` is defined twice")));
            }
            built::check_timezone(site.timezone, || format!("clients[{i}].sites[{j}].timezone"))?;
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
        builds.push(check_build(b, i, duration)?);
    }
    Ok(builds)
}

/// Build `i`: platforms, dates, size, failure rate, digest.
fn check_build(b: &BuildSpec, i: usize, duration: Duration) -> Check<BuildPlan> {
    let version = *b.version.get_ref();
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
    if let Some(size) = b.size.as_ref().filter(|s| s.get_ref().0 > MAX_BUILD_BYTES) {
        let why = "at most 1 GiB (the bytes are generated and kept in memory)";
        return Err(at(size, format!("builds[{i}].size"), why));
    }
    let logs = logs::check_logs(&b.logs, &format!("builds[{i}].logs"))?;
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
    Ok(BuildPlan {
        version,
        platforms,
        channel: b.channel.unwrap_or(Channel::Beta),
        published: b.published.as_ref().map(|p| p.get_ref().0),
        size: b.size.as_ref().map_or(256 * 1024, |s| s.get_ref().0),
        failure_rate,
        digest,
        logs,
    })
}

/// Resolves `client/site`.
pub(super) fn find_site(clients: &[ClientPlan], path: &Spanned<String>, key: String) -> Check<(usize, usize)> {
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

/// A spread must be shorter than the office day, so a machine boots before
/// it shuts down (and is off again before the next morning).
fn check_spread(spread: &Spanned<Dur>, key: String) -> Check<Duration> {
    let d = spread.get_ref().0;
    if d >= OFFICE_DAY {
        return Err(at(
            spread,
            key,
            "must be less than the office day (10h, 08:00 to 18:00)",
        ));
    }
    Ok(d)
}

/// `[agent] boot_spread`, checked, or the default.
fn default_spread(agent: &AgentSection) -> Check<Duration> {
    agent
        .boot_spread
        .as_ref()
        .map_or(Ok(DEFAULT_BOOT_SPREAD), |s| check_spread(s, "agent.boot_spread".into()))
}

/// Fleet entry `i`'s spread: its own (only on office hours) or `default`.
fn spread_of(f: &FleetSpec, i: usize, avail: &AvailabilitySpec, default: Duration) -> Check<Duration> {
    match &f.boot_spread {
        Some(s) if !matches!(avail, AvailabilitySpec::OfficeHours) => Err(at(
            s,
            format!("fleet[{i}].boot_spread"),
            "only office-hours machines use it",
        )),
        Some(s) => check_spread(s, format!("fleet[{i}].boot_spread")),
        None => Ok(default),
    }
}

/// `[agent] boot_spread` set while no machine keeps office hours is a mistake.
fn spread_used(agent: &AgentSection, groups: &[GroupPlan]) -> Check<()> {
    let office = |g: &GroupPlan| matches!(g.availability, Availability::OfficeHours { .. });
    match &agent.boot_spread {
        Some(s) if !groups.iter().any(office) => Err(at(s, "agent.boot_spread", "no fleet entry is office-hours")),
        _ => Ok(()),
    }
}

/// Fleet entry `i`'s timing: its own download, bandwidth, install and
/// restart times over `[agent]`'s, and its own heartbeat.
fn fleet_timing(defaults: &AgentSection, f: &FleetSpec, i: usize) -> Check<Timing> {
    let agent = AgentSection {
        jitter: defaults.jitter.clone(),
        reconnect_min: defaults.reconnect_min.clone(),
        reconnect_max: defaults.reconnect_max.clone(),
        heartbeat: defaults.heartbeat.clone(),
        download: f.download.or(defaults.download),
        bandwidth: f.bandwidth.or(defaults.bandwidth),
        install: f.install.or(defaults.install),
        restart: f.restart.or(defaults.restart),
        ..Default::default()
    };
    timing(&agent, f.heartbeat.as_ref()).map_err(|mut p| {
        if p.key == "heartbeat" {
            p.key = format!("fleet[{i}].heartbeat");
        }
        p
    })
}

fn check_fleet(spec: &Spec, clients: &[ClientPlan]) -> Check<Vec<GroupPlan>> {
    let mut groups: Vec<GroupPlan> = Vec::new();
    let defaults = &spec.agent;
    let default_spread = default_spread(defaults)?;
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
        let total = groups.iter().map(|g| g.count as u64).sum::<u64>() + f.count.get_ref();
        if total > MAX_FLEET as u64 {
            return Err(at(
                &f.count,
                format!("fleet[{i}].count"),
                format!("the fleet would exceed {MAX_FLEET} machines"),
            ));
        }
        let (client, site) = find_site(clients, &f.site, format!("fleet[{i}].site"))?;
        let timing = fleet_timing(defaults, f, i)?;
        let tz = clients[client].sites[site].utc_offset_minutes;
        let avail = f
            .availability
            .as_ref()
            .or(defaults.availability.as_ref())
            .unwrap_or(&AvailabilitySpec::Always);
        let spread = spread_of(f, i, avail, default_spread)?;
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
            availability: availability(avail, tz, spread),
            timing,
            identity_boundary: defaults.identity_boundary.unwrap_or(DEFAULT_BOUNDARY),
        });
    }
    spread_used(defaults, &groups)?;
    Ok(groups)
}
