//! `[[clients]]`, `[agent]` and `[[fleet]]`: sites resolved, timings and
//! power patterns filled in from the defaults.

use std::time::Duration;

use toml::Spanned;

use super::{Check, Problems, at, built};
use crate::agent::{Availability, Timing};
use crate::protocol::{self, Version};
use crate::scenario::plan::{ClientPlan, GroupPlan, MAX_FLEET, SitePlan};
use crate::scenario::spec::{AgentSection, AvailabilitySpec, Dur, FleetSpec, Spec};

/// Defaults of `[agent]` (docs/scenarios.md lists them).
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);
const DEFAULT_BOUNDARY: Version = Version::new(0, 6, 40);
const DEFAULT_BOOT_SPREAD: Duration = Duration::from_secs(30 * 60);
/// 08:00 to 18:00: a spread must leave a machine on every workday.
const OFFICE_DAY: Duration = Duration::from_secs(10 * 3600);

/// The keys a `client/site` reference is resolved against.
const SITE_KEYS: &[&str] = &["clients[].name", "clients[].sites"];

/// `[agent]`'s timing, with `own` heartbeat (and its key) over its own.
fn timing(agent: &AgentSection, own: Option<(&Spanned<Dur>, String)>, p: &mut Problems) -> Timing {
    let (hb, hb_key) = match own {
        Some((h, key)) => (Some(h), key),
        None => (agent.heartbeat.as_ref(), "agent.heartbeat".to_owned()),
    };
    if let Some(h) = hb.filter(|h| h.get_ref().0.is_zero()) {
        p.add(at(h, hb_key, "must be longer than 0s"));
    }
    if let Some(j) = agent.jitter.as_ref().filter(|j| !(0.0..1.0).contains(j.get_ref())) {
        p.add(at(j, "agent.jitter", "must be at least 0 and below 1"));
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
        p.add(match (&agent.reconnect_min, &agent.reconnect_max) {
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
    Timing {
        heartbeat: hb.map_or(DEFAULT_HEARTBEAT, |h| h.get_ref().0),
        jitter: agent.jitter.as_ref().map_or(0.02, |j| *j.get_ref()),
        download: agent.download.map_or(Duration::from_secs(20), |d| d.0),
        bandwidth: agent.bandwidth.map(|r| r.0),
        install: agent.install.map_or(Duration::from_secs(30), |d| d.0),
        restart: agent.restart.map_or(Duration::from_secs(15), |d| d.0),
        reconnect_min: min,
        reconnect_max: max,
    }
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

/// Every client and its sites (a bad one too: what refers to it resolves).
pub(super) fn check_clients(spec: &Spec, p: &mut Problems) -> Vec<ClientPlan> {
    let mut clients: Vec<ClientPlan> = Vec::new();
    for (i, c) in spec.clients.iter().enumerate() {
        let name = c.name.get_ref();
        if !protocol::is_valid_name(name) {
            p.add(at(&c.name, format!("clients[{i}].name"), protocol::NAME_RULE));
        }
        p.ok(built::check_timezone(c.timezone, || format!("clients[{i}].timezone")));
        if clients.iter().any(|o| &o.name == name) {
            let why = format!("a client named `{name}` is defined twice");
            p.add(at(&c.name, format!("clients[{i}].name"), why));
        }
        let mut sites: Vec<SitePlan> = Vec::new();
        for (j, site) in c.sites.iter().enumerate() {
            let sname = site.name.get_ref();
            let key = format!("clients[{i}].sites[{j}].name");
            if !protocol::is_valid_name(sname) {
                p.add(at(&site.name, key, protocol::NAME_RULE));
            } else if sites.iter().any(|o| &o.name == sname) {
                p.add(at(&site.name, key, format!("site `{name}/{sname}` is defined twice")));
            }
            p.ok(built::check_timezone(site.timezone, || {
                format!("clients[{i}].sites[{j}].timezone")
            }));
            sites.push(SitePlan {
                name: sname.clone(),
                channel: site.channel,
                utc_offset_minutes: site.timezone.or(c.timezone).map_or(0, |o| o.0),
            });
        }
        clients.push(ClientPlan {
            name: name.clone(),
            channel: c.channel,
            sites,
        });
    }
    clients
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
        let why = format!("expected `client/site`, got `{}`", path.get_ref());
        return Err(at(path, key, why).refers(SITE_KEYS));
    };
    let ci = clients.iter().position(|x| x.name == c);
    let si = ci.and_then(|ci| clients[ci].sites.iter().position(|x| x.name == s));
    match (ci, si) {
        (Some(ci), Some(si)) => Ok((ci, si)),
        _ => Err(at(path, key, format!("no site `{}` ({})", path.get_ref(), known())).refers(SITE_KEYS)),
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
fn fleet_timing(defaults: &AgentSection, f: &FleetSpec, i: usize, p: &mut Problems) -> Timing {
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
    let own = f.heartbeat.as_ref().map(|h| (h, format!("fleet[{i}].heartbeat")));
    timing(&agent, own, p)
}

/// Every fleet entry (a bad one too: events that name it resolve).
pub(super) fn check_fleet(spec: &Spec, clients: &[ClientPlan], p: &mut Problems) -> Vec<GroupPlan> {
    let mut groups: Vec<GroupPlan> = Vec::new();
    let defaults = &spec.agent;
    let default_spread = p.ok(default_spread(defaults)).unwrap_or(DEFAULT_BOOT_SPREAD);
    let mut total = 0_u64;
    for (i, f) in spec.fleet.iter().enumerate() {
        let f = f.get_ref();
        let name = f
            .name
            .as_ref()
            .map_or_else(|| format!("fleet-{}", i + 1), |n| n.get_ref().clone());
        if let Some(n) = f.name.as_ref().filter(|_| groups.iter().any(|g| g.name == name)) {
            let why = format!("a fleet entry named `{name}` is defined twice");
            p.add(at(n, format!("fleet[{i}].name"), why));
        }
        let count = *f.count.get_ref();
        if count == 0 {
            p.add(at(&f.count, format!("fleet[{i}].count"), "must be at least 1"));
        }
        // Only the entry that takes the fleet past the limit is blamed.
        let before = total;
        total = total.saturating_add(count);
        if total > MAX_FLEET as u64 && before <= MAX_FLEET as u64 {
            let why = format!("the fleet would exceed {MAX_FLEET} machines");
            p.add(at(&f.count, format!("fleet[{i}].count"), why));
        }
        let place = p.ok(find_site(clients, &f.site, format!("fleet[{i}].site")));
        let timing = fleet_timing(defaults, f, i, p);
        let avail = f
            .availability
            .as_ref()
            .or(defaults.availability.as_ref())
            .unwrap_or(&AvailabilitySpec::Always);
        let spread = p.ok(spread_of(f, i, avail, default_spread)).unwrap_or(default_spread);
        let ((client, site), tz) = place.map_or(((0, 0), 0), |(c, s)| ((c, s), clients[c].sites[s].utc_offset_minutes));
        groups.push(GroupPlan {
            name,
            count: usize::try_from(count).unwrap_or(usize::MAX),
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
    p.ok(spread_used(defaults, &groups));
    groups
}
