//! The numbers behind a report, computed from the recorder after a run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::Outcome;
use super::offered::Offered;
use super::recorder::MachineTrack;
use super::report::{Curve, OffChannel, Orphan, PlatformLag, RowCounts, Rows, StableLag, Stranded};
use crate::protocol::{Channel, Version};
use crate::scenario::{Plan, StrandReason};
use crate::server::rules;
use crate::server::scanner::Build;

/// Samples every `every` from 0 to `end`: share of machines on each version,
/// overall and per channel, and the share powered on.
pub fn curve(machines: &[MachineTrack], every: Duration, end: Duration) -> Curve {
    let n_samples = (end.as_millis() / every.as_millis().max(1)) as usize + 1;
    sample(machines, Duration::ZERO, every, n_samples)
}

/// `n_samples` samples every `every` from `from`: share of machines on each
/// version, overall and per channel, and the share powered on. Computed
/// with difference arrays over each machine's change lists, so it is linear
/// in machines, changes and samples; what holds before `from` counts from
/// the first sample.
pub fn sample(machines: &[MachineTrack], from: Duration, every: Duration, n_samples: usize) -> Curve {
    let versions = versions_run(machines);
    let vi: BTreeMap<Version, usize> = versions.iter().enumerate().map(|(i, v)| (*v, i)).collect();
    let every_ms = every.as_millis().max(1);
    // First sample index at or after t; `None` (no next change): past the last.
    let idx = |t: Option<Duration>| {
        t.map_or(n_samples, |t| {
            (t.saturating_sub(from).as_millis().div_ceil(every_ms) as usize).min(n_samples)
        })
    };
    let cells = versions.len() * 2;
    let mut diff = vec![0i64; (n_samples + 1) * cells.max(1)];
    let mut online = vec![0i64; n_samples + 1];
    for m in machines {
        // Merge the version and channel change times into intervals.
        let mut times: Vec<Duration> = m
            .versions
            .iter()
            .map(|c| c.0)
            .chain(m.channels.iter().map(|c| c.0))
            .collect();
        times.sort();
        times.dedup();
        for (k, &t) in times.iter().enumerate() {
            let cell = vi[&m.version_at(t)] * 2 + usize::from(m.channel_at(t) == Channel::Beta);
            diff[idx(Some(t)) * cells + cell] += 1;
            diff[idx(times.get(k + 1).copied()) * cells + cell] -= 1;
        }
        for (k, &(t, on)) in m.power.iter().enumerate() {
            if on {
                online[idx(Some(t))] += 1;
                online[idx(m.power.get(k + 1).map(|p| p.0))] -= 1;
            }
        }
    }
    let total = machines.len().max(1) as f64;
    let mut run = vec![0i64; cells];
    let mut on_run = 0i64;
    let mut curve = empty_curve(every, versions.clone(), n_samples);
    let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
    for s in 0..n_samples {
        for (c, r) in run.iter_mut().enumerate() {
            *r += diff[s * cells + c];
        }
        on_run += online[s];
        curve
            .times_s
            .push((from.as_millis() + s as u128 * every_ms) as f64 / 1000.0);
        let stable_total: i64 = (0..versions.len()).map(|v| run[v * 2]).sum();
        let beta_total: i64 = (0..versions.len()).map(|v| run[v * 2 + 1]).sum();
        for v in 0..versions.len() {
            let (st, be) = (run[v * 2], run[v * 2 + 1]);
            curve.fleet[v].push(round((st + be) as f64 / total));
            curve.stable[v].push(round(st as f64 / stable_total.max(1) as f64));
            curve.beta[v].push(round(be as f64 / beta_total.max(1) as f64));
        }
        curve.online.push(round(on_run as f64 / total));
    }
    curve
}

/// Every version any machine ran, in order.
fn versions_run(machines: &[MachineTrack]) -> Vec<Version> {
    machines
        .iter()
        .flat_map(|m| m.versions.iter().map(|(_, v)| *v))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A curve with room for `n_samples` samples and no download storm yet.
fn empty_curve(every: Duration, versions: Vec<Version>, n_samples: usize) -> Curve {
    let per_version = vec![Vec::with_capacity(n_samples); versions.len()];
    Curve {
        every_s: every.as_secs_f64(),
        versions,
        times_s: Vec::with_capacity(n_samples),
        fleet: per_version.clone(),
        stable: per_version.clone(),
        beta: per_version,
        online: Vec::with_capacity(n_samples),
        downloads: Vec::new(),
        egress_bps: Vec::new(),
    }
}

/// Share of machines (of a channel, of those online) on `version` at `t`.
pub fn fraction_on(
    machines: &[MachineTrack],
    version: Version,
    channel: Option<Channel>,
    t: Duration,
    online_only: bool,
) -> f64 {
    let pop: Vec<&MachineTrack> = machines
        .iter()
        .filter(|m| channel.is_none_or(|c| m.channel_at(t) == c))
        .filter(|m| !online_only || m.online_at(t))
        .collect();
    if pop.is_empty() {
        return 0.0;
    }
    pop.iter().filter(|m| m.version_at(t) == version).count() as f64 / pop.len() as f64
}

/// The stable/beta gap at `t` on the worst platform: builds on offer newer
/// than stable's newest, and for how long stable has trailed (since the
/// oldest of them landed); each the largest over platforms.
pub fn stable_lag_at(plan: &Plan, o: &Outcome, t: Duration) -> (usize, Duration) {
    worst_lag(&Offered::new(plan, o), t)
}

fn worst_lag(offered: &Offered, t: Duration) -> (usize, Duration) {
    offered
        .platforms()
        .iter()
        .map(|p| offered.lag(p, t, false))
        .fold((0, Duration::ZERO), |(b, s), (b2, s2)| (b.max(b2), s.max(s2)))
}

/// The stable lag per platform, at the end and at its largest over the
/// run, and the worst platform's at every sample and overall. The largest
/// is exact: the lag only changes at a publish, promote or rollback and
/// grows in between, so its largest values are just before each of those
/// and at the end.
pub fn stable_lag(plan: &Plan, o: &Outcome, curve: &Curve) -> StableLag {
    let offered = Offered::new(plan, o);
    let end = plan.duration;
    let changes = offered.changes();
    let platforms: Vec<PlatformLag> = offered
        .platforms()
        .into_iter()
        .map(|platform| {
            let at_end = offered.lag(&platform, end, false);
            let before_each = changes.range(..=end).map(|&t| offered.lag(&platform, t, true));
            let (max_builds, max_s) = before_each
                .chain([at_end])
                .fold((0, Duration::ZERO), |(b, s), (b2, s2)| (b.max(b2), s.max(s2)));
            PlatformLag {
                platform,
                max_builds,
                max_s: max_s.as_secs_f64(),
                at_end_builds: at_end.0,
                at_end_s: at_end.1.as_secs_f64(),
            }
        })
        .collect();
    StableLag {
        max_builds: platforms.iter().map(|p| p.max_builds).max().unwrap_or(0),
        max_s: platforms.iter().map(|p| p.max_s).fold(0.0, f64::max),
        at_end_builds: platforms.iter().map(|p| p.at_end_builds).max().unwrap_or(0),
        at_end_s: platforms.iter().map(|p| p.at_end_s).fold(0.0, f64::max),
        builds: curve
            .times_s
            .iter()
            .map(|&t| worst_lag(&offered, Duration::from_secs_f64(t)).0)
            .collect(),
        platforms,
    }
}

/// Machines behind the newest allowed build for their platform at the end,
/// each with the reason.
pub fn stranded(plan: &Plan, o: &Outcome) -> Vec<Stranded> {
    let end = plan.duration;
    let blocked: BTreeSet<Version> = o.blocked.iter().copied().collect();
    let builds: Vec<Build> = Offered::new(plan, o).at(end);
    let mut out = Vec::new();
    for m in &o.recorder.machines {
        let version = m.version_at(end);
        let channel = m.channel_at(end);
        let newest = rules::latest(&builds, &m.platform, Channel::Beta, &blocked).map(|b| b.version);
        let target = rules::latest(&builds, &m.platform, channel, &blocked).map(|b| b.version);
        let Some(newest) = newest else { continue };
        if version >= newest && !blocked.contains(&version) {
            continue;
        }
        let (reason, detail) = if blocked.contains(&version) {
            (
                StrandReason::BlockedVersion,
                format!("runs {version}, which was rolled back"),
            )
        } else if target.is_none_or(|t| t <= version) {
            (
                StrandReason::ChannelFrozen,
                format!("on {channel}'s newest ({version}); beta has {newest}"),
            )
        } else if !m.online_at(end) {
            let since = m.power.last().map_or(Duration::ZERO, |p| p.0);
            (StrandReason::Offline, format!("off since {}", plan.start.plus(since)))
        } else if let Some(n) = target.and_then(|t| m.failures.get(&t)).filter(|&&n| n > 0) {
            (
                StrandReason::UpdatesFailing,
                format!("{n} failed attempts at {}", target.unwrap_or(newest)),
            )
        } else {
            (
                StrandReason::UpdateInProgress,
                format!("on its way to {}", target.unwrap_or(newest)),
            )
        };
        out.push(Stranded {
            hostname: m.hostname.clone(),
            machine: m.machine.to_string(),
            group: plan.groups[m.group].name.clone(),
            site: plan.site_path(&plan.groups[m.group]),
            version,
            channel,
            target,
            reason,
            detail,
        });
    }
    out
}

/// Machines that at the end run a build their channel would not offer them
/// (a beta build on a machine on stable, or a rolled-back build), each with
/// when that started: the last time before the end it was not so.
pub fn off_channel(plan: &Plan, o: &Outcome) -> Vec<OffChannel> {
    let end = plan.duration;
    let offered = Offered::new(plan, o);
    let off_at = |m: &MachineTrack, t: Duration| offered.off_channel(m.version_at(t), &m.platform, m.channel_at(t), t);
    let changes = offered.changes();
    let mut out = Vec::new();
    for m in &o.recorder.machines {
        let Some(reason) = off_at(m, end) else { continue };
        // The answer changes only when the machine's version or channel
        // does, or a build lands, is promoted or rolled back.
        let mut times: BTreeSet<Duration> = changes.range(..=end).copied().collect();
        times.extend(m.versions.iter().map(|c| c.0).filter(|&t| t <= end));
        times.extend(m.channels.iter().map(|c| c.0).filter(|&t| t <= end));
        times.insert(Duration::ZERO);
        let since = times
            .iter()
            .rev()
            .take_while(|&&t| off_at(m, t).is_some())
            .last()
            .copied()
            .unwrap_or(end);
        out.push(OffChannel {
            hostname: m.hostname.clone(),
            machine: m.machine.to_string(),
            group: plan.groups[m.group].name.clone(),
            platform: m.platform.clone(),
            build: m.version_at(end),
            channel: m.channel_at(end),
            reason,
            since_s: since.as_secs_f64(),
        });
    }
    out
}

/// Agent rows as the simulator knows them and as the store holds them, and
/// a violation for every row the store lost.
pub fn rows(o: &Outcome) -> (Rows, Vec<String>) {
    let current: BTreeSet<String> = o
        .recorder
        .machines
        .iter()
        .filter_map(|m| m.current_device())
        .map(|d| d.to_string())
        .collect();
    let ever: usize = o.recorder.machines.iter().map(|m| m.device_ids.len()).sum();
    let simulator = RowCounts {
        total: ever,
        live: current.len(),
        orphaned: ever - current.len(),
    };
    let server = RowCounts {
        total: o.store_rows.len(),
        live: o
            .store_rows
            .iter()
            .filter(|r| current.contains(&r.device_id.to_string()))
            .count(),
        orphaned: server_orphans(o),
    };
    let agree = simulator == server;
    (
        Rows {
            simulator,
            server,
            agree,
            orphans: orphans(o),
        },
        lost_rows(o),
    )
}

/// Every device id a machine left behind, with the version its row holds.
fn orphans(o: &Outcome) -> Vec<Orphan> {
    let mut orphans = Vec::new();
    for m in &o.recorder.machines {
        let Some(now_as) = m.current_device() else {
            continue;
        };
        for old in &m.device_ids[..m.device_ids.len() - 1] {
            let row = o.store_rows.iter().find(|r| r.device_id == *old);
            orphans.push(Orphan {
                hostname: m.hostname.clone(),
                device_id: old.to_string(),
                version: row.map(|r| r.version),
                now_as: now_as.to_string(),
            });
        }
    }
    orphans
}

/// The server's own inference: a row is an orphan when a row with the same
/// machine inside its device id was seen later.
fn server_orphans(o: &Outcome) -> usize {
    let mut last_seen: BTreeMap<uuid::Uuid, i64> = BTreeMap::new();
    for r in &o.store_rows {
        let e = last_seen.entry(r.device_id.machine()).or_insert(r.last_seen.0);
        *e = (*e).max(r.last_seen.0);
    }
    o.store_rows
        .iter()
        .filter(|r| r.last_seen.0 < last_seen[&r.device_id.machine()])
        .count()
}

/// A violation for every device id a machine used that has no row.
fn lost_rows(o: &Outcome) -> Vec<String> {
    let stored: BTreeSet<String> = o.store_rows.iter().map(|r| r.device_id.to_string()).collect();
    let mut violations = Vec::new();
    for m in &o.recorder.machines {
        for d in &m.device_ids {
            if !stored.contains(&d.to_string()) {
                violations.push(format!(
                    "row lost: {} registered as {d} but the store has no such row",
                    m.hostname
                ));
            }
        }
    }
    violations
}
