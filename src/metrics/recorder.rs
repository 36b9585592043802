//! Ground truth: what every simulated machine did and when, as the agents
//! report it. The server's view lives in its store; reports show both.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::agent::AgentEvent;
use crate::protocol::{Channel, DeviceId, Platform, Version};

/// Counts of what agents saw, over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounters {
    /// `update` frames received.
    pub offers: u64,
    /// Of those, received while already busy with an update (re-dispatches, mostly).
    pub offers_while_busy: u64,
    /// Builds installed (the agent restarted on a new version).
    pub installs: u64,
    /// Downloads that failed.
    pub download_failures: u64,
    /// Downloads whose SHA-256 did not match.
    pub digest_mismatches: u64,
    /// Installs that failed.
    pub install_failures: u64,
    /// Sessions admitted.
    pub connects: u64,
    /// Dials that failed (server down).
    pub connect_failures: u64,
    /// Sessions the server closed.
    pub connections_lost: u64,
    /// Frames the server refused.
    pub refusals: u64,
}

/// One machine's history.
#[derive(Debug, Clone)]
pub struct MachineTrack {
    /// Its fleet entry.
    pub group: usize,
    /// The uuid inside its device ids.
    pub machine: Uuid,
    /// Its hostname.
    pub hostname: String,
    /// Its platform.
    pub platform: Platform,
    /// (time, version it runs from then on); the first entry is at 0.
    pub versions: Vec<(Duration, Version)>,
    /// (time, powered on) changes.
    pub power: Vec<(Duration, bool)>,
    /// (time, effective channel) changes; the first entry is at 0.
    pub channels: Vec<(Duration, Channel)>,
    /// Every device id it registered with, once each, the current one last.
    pub device_ids: Vec<DeviceId>,
    /// Failed update attempts per target version.
    pub failures: BTreeMap<Version, u32>,
}

/// Finds the value in force at `t` in a list of (time, value) changes.
fn at<T: Copy>(changes: &[(Duration, T)], t: Duration) -> Option<T> {
    let i = changes.partition_point(|(when, _)| *when <= t);
    i.checked_sub(1).map(|i| changes[i].1)
}

impl MachineTrack {
    /// The version it runs at `t`.
    pub fn version_at(&self, t: Duration) -> Version {
        at(&self.versions, t).unwrap_or(self.versions[0].1)
    }

    /// Whether it is powered on at `t` (before any report: off).
    pub(crate) fn online_at(&self, t: Duration) -> bool {
        at(&self.power, t).unwrap_or(false)
    }

    /// Its effective channel at `t`.
    pub(crate) fn channel_at(&self, t: Duration) -> Channel {
        at(&self.channels, t).unwrap_or(self.channels[0].1)
    }

    /// The first time at or after `from` it runs `version` or newer.
    pub(crate) fn reaches(&self, version: Version, from: Duration) -> Option<Duration> {
        if self.version_at(from) >= version {
            return Some(from);
        }
        self.versions
            .iter()
            .find(|(t, v)| *t > from && *v >= version)
            .map(|(t, _)| *t)
    }

    /// The id it registers with now.
    pub(crate) fn current_device(&self) -> Option<DeviceId> {
        self.device_ids.last().copied()
    }
}

/// A line of the run's timeline: an event and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// From the start, in seconds.
    pub at_s: f64,
    /// What was done.
    pub action: String,
    /// What came of it.
    pub outcome: String,
}

/// Everything the simulator knows, collected during a run.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    /// Every machine.
    pub machines: Vec<MachineTrack>,
    /// Events and outcomes.
    pub timeline: Vec<TimelineEntry>,
    /// Agent-side counts.
    pub agents: AgentCounters,
}

impl Recorder {
    /// Adds a machine; returns its index.
    pub(crate) fn add_machine(
        &mut self,
        group: usize,
        machine: Uuid,
        hostname: String,
        platform: Platform,
        version: Version,
        channel: Channel,
    ) -> usize {
        self.machines.push(MachineTrack {
            group,
            machine,
            hostname,
            platform,
            versions: vec![(Duration::ZERO, version)],
            power: Vec::new(),
            channels: vec![(Duration::ZERO, channel)],
            device_ids: Vec::new(),
            failures: BTreeMap::new(),
        });
        self.machines.len() - 1
    }

    /// Notes an event of the timeline.
    pub(crate) fn note(&mut self, at: Duration, action: impl Into<String>, outcome: impl Into<String>) {
        self.timeline.push(TimelineEntry {
            at_s: at.as_secs_f64(),
            action: action.into(),
            outcome: outcome.into(),
        });
    }

    /// A machine's effective channel changed.
    pub(crate) fn channel(&mut self, at: Duration, index: usize, channel: Channel) {
        let m = &mut self.machines[index];
        if m.channels.last().map(|(_, c)| *c) != Some(channel) {
            m.channels.push((at, channel));
        }
    }

    /// Records what an agent reported.
    pub(crate) fn record(&mut self, at: Duration, index: usize, event: &AgentEvent) {
        let c = &mut self.agents;
        let m = &mut self.machines[index];
        match event {
            AgentEvent::Power(on) => m.power.push((at, *on)),
            AgentEvent::Connected { device_id, .. } => {
                c.connects += 1;
                // Distinct ids, the current one last: a machine downgraded
                // back across the boundary returns to its old row.
                if m.device_ids.last() != Some(device_id) {
                    m.device_ids.retain(|d| d != device_id);
                    m.device_ids.push(*device_id);
                }
            }
            AgentEvent::ConnectFailed => c.connect_failures += 1,
            AgentEvent::Refused { .. } | AgentEvent::HelloRefused { .. } => c.refusals += 1,
            AgentEvent::ConnectionLost => c.connections_lost += 1,
            AgentEvent::Offered { busy, .. } => {
                c.offers += 1;
                c.offers_while_busy += u64::from(*busy);
            }
            AgentEvent::DownloadFailed { version } => {
                c.download_failures += 1;
                *m.failures.entry(*version).or_default() += 1;
            }
            AgentEvent::DigestMismatch { version } => {
                c.digest_mismatches += 1;
                *m.failures.entry(*version).or_default() += 1;
            }
            AgentEvent::InstallFailed { version } => {
                c.install_failures += 1;
                *m.failures.entry(*version).or_default() += 1;
            }
            AgentEvent::Acked { .. } => {}
            AgentEvent::Running { to, .. } => {
                c.installs += 1;
                m.versions.push((at, *to));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track() -> MachineTrack {
        let v = |p| Version::new(0, 6, p);
        let s = Duration::from_secs;
        MachineTrack {
            group: 0,
            machine: Uuid::nil(),
            hostname: "pc".into(),
            platform: "windows-amd64".parse().unwrap(),
            versions: vec![(s(0), v(47)), (s(100), v(49)), (s(300), v(48))],
            power: vec![(s(0), true), (s(50), false), (s(60), true)],
            channels: vec![(s(0), Channel::Stable)],
            device_ids: Vec::new(),
            failures: BTreeMap::new(),
        }
    }

    #[test]
    fn values_in_force_at_a_time() {
        let m = track();
        let s = Duration::from_secs;
        assert_eq!(m.version_at(s(99)), Version::new(0, 6, 47));
        assert_eq!(m.version_at(s(100)), Version::new(0, 6, 49));
        assert_eq!(m.version_at(s(1000)), Version::new(0, 6, 48));
        assert!(m.online_at(s(0)) && !m.online_at(s(55)) && m.online_at(s(60)));
    }

    #[test]
    fn reaching_a_version_counts_newer_ones() {
        let m = track();
        let s = Duration::from_secs;
        // Jumped from 47 straight to 49: it reached 48 at 100 s.
        assert_eq!(m.reaches(Version::new(0, 6, 48), s(0)), Some(s(100)));
        assert_eq!(m.reaches(Version::new(0, 6, 48), s(200)), Some(s(200)));
        assert_eq!(m.reaches(Version::new(0, 6, 50), s(0)), None);
    }
}
