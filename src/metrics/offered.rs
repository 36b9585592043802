//! What the server could offer at any time of a run: the builds its scanner
//! accepted, per platform, each with its channel at that time. Stable lag,
//! stranded machines and machines off their channel are all measured
//! against it, so the three never disagree.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Outcome;
use crate::protocol::{Channel, Platform, Version};
use crate::scenario::Plan;
use crate::server::scanner::Build;

/// One build the scanner accepted, and when its channel changed.
#[derive(Debug, Clone)]
struct Shelved {
    build: Build,
    /// When it landed.
    landed: Duration,
    /// When it became stable: when it landed for a build published as
    /// stable, its promote otherwise.
    stable_from: Option<Duration>,
    /// When it was rolled back (blocked, U10).
    blocked_from: Option<Duration>,
}

/// The builds the scanner accepted over the run; see the module docs.
#[derive(Debug, Clone)]
pub(super) struct Offered {
    builds: Vec<Shelved>,
}

/// Whether something at `at` has happened by `t`; with `before`, what
/// happens at exactly `t` has not happened yet.
fn by(at: Duration, t: Duration, before: bool) -> bool {
    if before { at < t } else { at <= t }
}

impl Offered {
    /// From the last scan and the run's publishes, promotes and rollbacks.
    /// The last scan holds every build the scanner ever accepted: a landed
    /// build's files stay in the folder (a rollback removes only its
    /// sidecar) and its digest never changes. A build without a valid
    /// digest is not in it (U6), so it counts nowhere.
    pub(super) fn new(plan: &Plan, o: &Outcome) -> Self {
        let builds = o
            .catalog
            .scan()
            .builds
            .iter()
            .filter_map(|b| {
                let landed = *o.published.get(&b.version)?;
                let as_stable = plan
                    .builds
                    .iter()
                    .any(|p| p.version == b.version && p.channel == Channel::Stable);
                Some(Shelved {
                    build: b.clone(),
                    landed,
                    stable_from: if as_stable {
                        Some(landed)
                    } else {
                        o.promoted.get(&b.version).copied()
                    },
                    blocked_from: o.rolled_back.get(&b.version).copied(),
                })
            })
            .collect();
        Self { builds }
    }

    /// Every build on offer at `t` with its channel then: landed, not rolled
    /// back (U7 never offers a blocked version), stable once published as
    /// stable or promoted (U9's flip is global), beta before.
    fn on_offer(&self, t: Duration, before: bool) -> impl Iterator<Item = (&Shelved, Channel)> {
        self.builds
            .iter()
            .filter(move |s| by(s.landed, t, before) && s.blocked_from.is_none_or(|b| !by(b, t, before)))
            .map(move |s| {
                let stable = s.stable_from.is_some_and(|p| by(p, t, before));
                (s, if stable { Channel::Stable } else { Channel::Beta })
            })
    }

    /// The scan as it stood at `t`, rolled-back builds left out: what U7
    /// ([`rules::latest`](crate::server::rules::latest)) chose from then.
    pub(super) fn at(&self, t: Duration) -> Vec<Build> {
        self.on_offer(t, false)
            .map(|(s, channel)| Build {
                channel,
                ..s.build.clone()
            })
            .collect()
    }

    /// Every platform with a build.
    pub(super) fn platforms(&self) -> BTreeSet<Platform> {
        self.builds.iter().map(|s| s.build.platform.clone()).collect()
    }

    /// Every time a build landed, was promoted or was rolled back.
    pub(super) fn changes(&self) -> BTreeSet<Duration> {
        self.builds
            .iter()
            .flat_map(|s| [Some(s.landed), s.stable_from, s.blocked_from])
            .flatten()
            .collect()
    }

    /// Stable lag on one platform at `t`: the builds on offer newer than
    /// stable's newest, and how long ago the oldest of them landed.
    pub(super) fn lag(&self, platform: &Platform, t: Duration, before: bool) -> (usize, Duration) {
        let offers: Vec<(&Shelved, Channel)> = self
            .on_offer(t, before)
            .filter(|(s, _)| &s.build.platform == platform)
            .collect();
        let stable = offers
            .iter()
            .filter(|(_, c)| *c == Channel::Stable)
            .map(|(s, _)| s.build.version)
            .max();
        let behind: Vec<Duration> = offers
            .iter()
            .filter(|(s, _)| stable.is_none_or(|v| s.build.version > v))
            .map(|(s, _)| s.landed)
            .collect();
        let since = behind
            .iter()
            .min()
            .map_or(Duration::ZERO, |&first| t.saturating_sub(first));
        (behind.len(), since)
    }

    /// Why a machine on `channel` running `version` on `platform` at `t`
    /// runs something its channel would not offer it, if it does: the
    /// version is blocked, or it is a beta build and the machine is on
    /// stable. A version that is no build (a fleet's starting version) is
    /// never off channel.
    pub(super) fn off_channel(
        &self,
        version: Version,
        platform: &Platform,
        channel: Channel,
        t: Duration,
    ) -> Option<OffReason> {
        let blocked = self
            .builds
            .iter()
            .any(|s| s.build.version == version && s.blocked_from.is_some_and(|b| b <= t));
        if blocked {
            return Some(OffReason::BlockedBuild);
        }
        let beta = self
            .on_offer(t, false)
            .any(|(s, c)| s.build.version == version && &s.build.platform == platform && c == Channel::Beta);
        (beta && channel == Channel::Stable).then_some(OffReason::BetaBuild)
    }
}

/// Why a machine is off its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffReason {
    /// A beta build, not promoted, on a machine on stable.
    BetaBuild,
    /// A version that was rolled back.
    BlockedBuild,
}

impl OffReason {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BetaBuild => "beta_build",
            Self::BlockedBuild => "blocked_build",
        }
    }
}
