//! The update model's decisions as plain functions over data: channel
//! resolution (U2), `latest` (U7) and `needs_update` (U3). No I/O, no state.

use std::collections::BTreeSet;

use crate::protocol::{Channel, Platform, Version};

use super::scanner::Build;

/// U2: the agent's own channel, else its site's, else its client's, else stable.
pub fn resolve_channel(agent: Option<Channel>, site: Option<Channel>, client: Option<Channel>) -> Channel {
    agent.or(site).or(client).unwrap_or(Channel::Stable)
}

/// U7: the newest non-blocked build for `platform` that `channel` may have.
/// Stable takes only builds whose sidecar is not `beta`; beta takes either.
pub fn latest<'a>(
    builds: impl IntoIterator<Item = &'a Build>,
    platform: &Platform,
    channel: Channel,
    blocked: &BTreeSet<Version>,
) -> Option<&'a Build> {
    builds
        .into_iter()
        .filter(|b| &b.platform == platform)
        .filter(|b| !blocked.contains(&b.version))
        .filter(|b| channel == Channel::Beta || b.channel == Channel::Stable)
        .max_by_key(|b| b.version)
}

/// U3: the version an agent running `current` must move to, if any.
///
/// It needs an update when the target is newer; an agent on a blocked version
/// is moved to the target even when the target is older (how a rollback
/// downgrades, U10).
pub fn needs_update(current: Version, target: Option<Version>, blocked: &BTreeSet<Version>) -> Option<Version> {
    let target = target?;
    let newer = target > current;
    let off_blocked = blocked.contains(&current) && target != current;
    (newer || off_blocked).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(platform: &str, version: (u64, u64, u64), channel: Channel) -> Build {
        Build {
            file: String::new(),
            platform: platform.parse().unwrap(),
            version: Version::new(version.0, version.1, version.2),
            channel,
            sha256: String::new(),
            size: 0,
        }
    }

    #[test]
    fn channel_resolution_inherits_upwards() {
        use Channel::*;
        assert_eq!(resolve_channel(None, None, None), Stable);
        assert_eq!(resolve_channel(None, None, Some(Beta)), Beta);
        assert_eq!(resolve_channel(None, Some(Stable), Some(Beta)), Stable);
        assert_eq!(resolve_channel(Some(Beta), Some(Stable), Some(Stable)), Beta);
    }

    #[test]
    fn stable_skips_beta_builds_and_everyone_skips_blocked_ones() {
        let win: Platform = "windows-amd64".parse().unwrap();
        let builds = [
            build("windows-amd64", (0, 6, 47), Channel::Stable),
            build("windows-amd64", (0, 6, 48), Channel::Beta),
            build("windows-amd64", (0, 6, 49), Channel::Beta),
            build("linux-amd64", (0, 6, 50), Channel::Stable),
        ];
        let none = BTreeSet::new();
        let v = |c, blocked| latest(&builds, &win, c, blocked).map(|b| b.version.to_string());
        assert_eq!(v(Channel::Stable, &none).as_deref(), Some("0.6.47"));
        assert_eq!(v(Channel::Beta, &none).as_deref(), Some("0.6.49"));
        let blocked = BTreeSet::from([Version::new(0, 6, 49)]);
        assert_eq!(v(Channel::Beta, &blocked).as_deref(), Some("0.6.48"));
    }

    #[test]
    fn needs_update_moves_up_and_off_blocked_versions() {
        let v = |p| Version::new(0, 6, p);
        let none = BTreeSet::new();
        assert_eq!(needs_update(v(47), Some(v(58)), &none), Some(v(58)));
        assert_eq!(needs_update(v(58), Some(v(58)), &none), None);
        assert_eq!(needs_update(v(59), Some(v(58)), &none), None);
        assert_eq!(needs_update(v(47), None, &none), None);
        let blocked = BTreeSet::from([v(58)]);
        assert_eq!(needs_update(v(58), Some(v(57)), &blocked), Some(v(57)));
    }

    /// The rules restated as plainly as possible, to check the real ones against.
    fn oracle(
        builds: &[Build],
        platform: &Platform,
        channel: Channel,
        blocked: &BTreeSet<Version>,
        current: Version,
    ) -> Option<Version> {
        let mut allowed = Vec::new();
        for b in builds {
            let sidecar_ok = match channel {
                Channel::Stable => b.channel != Channel::Beta,
                Channel::Beta => true,
            };
            if b.platform == *platform && sidecar_ok && !blocked.contains(&b.version) {
                allowed.push(b.version);
            }
        }
        allowed.sort();
        let target = *allowed.last()?;
        if target > current {
            return Some(target);
        }
        if blocked.contains(&current) && target != current {
            return Some(target);
        }
        None
    }

    fn arb_builds() -> impl Strategy<Value = Vec<Build>> {
        let one = (
            prop::sample::select(vec!["windows-amd64", "linux-amd64"]),
            0u64..8,
            any::<bool>(),
        )
            .prop_map(|(p, patch, beta)| build(p, (0, 6, patch), if beta { Channel::Beta } else { Channel::Stable }));
        prop::collection::vec(one, 0..12)
    }

    proptest! {
        #[test]
        fn the_rules_agree_with_the_oracle_and_keep_their_promises(
            builds in arb_builds(),
            blocked in prop::collection::btree_set((0u64..8).prop_map(|p| Version::new(0, 6, p)), 0..4),
            beta in any::<bool>(),
            linux in any::<bool>(),
            current in (0u64..8).prop_map(|p| Version::new(0, 6, p)),
        ) {
            let channel = if beta { Channel::Beta } else { Channel::Stable };
            let platform: Platform = if linux { "linux-amd64" } else { "windows-amd64" }.parse().unwrap();
            let target = latest(&builds, &platform, channel, &blocked);
            let offer = needs_update(current, target.map(|b| b.version), &blocked);
            prop_assert_eq!(offer, oracle(&builds, &platform, channel, &blocked, current));
            if let Some(t) = target {
                // A stable agent is never offered a build whose sidecar says beta.
                if channel == Channel::Stable {
                    prop_assert_eq!(t.channel, Channel::Stable);
                }
                // A blocked version is never offered.
                prop_assert!(!blocked.contains(&t.version));
                prop_assert_eq!(&t.platform, &platform);
            }
            // An agent on the target version needs nothing.
            prop_assert_eq!(needs_update(current, Some(current), &blocked), None);
            // An agent on a blocked version is moved off it whenever anything else is allowed.
            if blocked.contains(&current) {
                if let Some(t) = target {
                    prop_assert_eq!(offer, Some(t.version));
                }
            }
        }
    }
}
