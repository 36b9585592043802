//! Stable lag counts what stable machines could be offered: builds the
//! scanner accepts, per platform. It is measured on the same basis as
//! stranded machines, so a platform's stable is behind at the end exactly
//! when its stable machines are stranded as `channel_frozen`.

use std::collections::BTreeSet;

use rmmsim::metrics::{PlatformLag, Report};
use rmmsim::scenario::StrandReason;

use crate::common::*;

const H: f64 = 3600.0;

/// A scenario with 1.0.0 stable on both platforms, these further
/// `[[builds]]`, and two stable machines per platform on 1.0.0, simulated
/// for 4 hours.
fn lag_run(builds: impl IntoIterator<Item = Build>) -> Report {
    let plan = PlanBuilder::new("lag-basis", date("2026-01-05T00:00:00Z"), hours(4))
        .sample_every(mins(30))
        .client(Client::new("c").site("s"))
        .build(
            Build::new(OLD)
                .platforms([windows(), linux()])
                .channel(Channel::Stable)
                .published(secs(0)),
        )
        .fleet(Fleet::new(2, "c/s", OLD).name("win"))
        .fleet(Fleet::new(2, "c/s", OLD).name("lin").platform(linux()));
    run(&checked(&builds.into_iter().fold(plan, PlanBuilder::build)))
}

fn platform<'a>(r: &'a Report, name: &str) -> &'a PlatformLag {
    r.stable_lag
        .platforms
        .iter()
        .find(|p| p.platform.to_string() == name)
        .unwrap_or_else(|| panic!("no lag for {name}: {:?}", r.stable_lag.platforms))
}

/// Stable is behind on a platform at the end exactly when that platform's
/// stable machines (all on stable's newest here) are stranded as frozen.
fn assert_agrees_with_stranded(r: &Report) {
    let behind: BTreeSet<String> = r
        .stable_lag
        .platforms
        .iter()
        .filter(|p| p.at_end_builds > 0)
        .map(|p| p.platform.to_string())
        .collect();
    let frozen: BTreeSet<String> = r
        .stranded
        .iter()
        .filter(|s| s.reason == StrandReason::ChannelFrozen)
        .map(|s| {
            let m = r.machines.iter().find(|m| m.hostname == s.hostname).unwrap();
            m.platform.to_string()
        })
        .collect();
    assert_eq!(behind, frozen, "lag {:?}, stranded {:?}", r.stable_lag, r.stranded);
}

#[test]
fn a_build_without_a_valid_digest_does_not_put_stable_behind() {
    let r = lag_run([Build::new(Version::new(1, 1, 0))
        .platforms([windows(), linux()])
        .published(hours(1))
        .missing_digest()]);
    let lag = &r.stable_lag;
    assert_eq!((lag.max_builds, lag.max_s, lag.at_end_builds), (0, 0.0, 0), "{lag:?}");
    assert!(lag.builds.iter().all(|&b| b == 0));
    assert!(r.stranded.is_empty());
    assert_agrees_with_stranded(&r);
}

#[test]
fn a_linux_only_beta_build_does_not_put_windows_stable_behind() {
    let r = lag_run([
        Build::new(Version::new(1, 1, 0)).published(hours(1)),
        Build::new(Version::new(1, 2, 0))
            .platforms([linux()])
            .published(hours(2)),
        Build::new(Version::new(1, 3, 0))
            .platforms([linux()])
            .published(hours(3)),
    ]);
    let win = platform(&r, "windows-amd64");
    assert_eq!(
        (win.max_builds, win.max_s, win.at_end_builds, win.at_end_s),
        (1, 3.0 * H, 1, 3.0 * H)
    );
    let linux = platform(&r, "linux-amd64");
    assert_eq!(
        (linux.max_builds, linux.max_s, linux.at_end_builds, linux.at_end_s),
        (2, 2.0 * H, 2, 2.0 * H)
    );
    assert_eq!(r.stable_lag.platforms.len(), 2);
    // Today's fields are the worst platform's: the most builds (linux), the
    // longest wait (windows).
    let lag = &r.stable_lag;
    assert_eq!(
        (lag.max_builds, lag.max_s, lag.at_end_builds, lag.at_end_s),
        (2, 3.0 * H, 2, 3.0 * H)
    );
    // Samples every 30 minutes: 1 behind from 1h, 2 (linux) from 3h.
    assert_eq!(lag.builds, [0, 0, 1, 1, 1, 1, 2, 2, 2]);
    assert_agrees_with_stranded(&r);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["stable_lag"]["platforms"][0]["platform"], "linux-amd64");
    assert_eq!(json["stable_lag"]["platforms"][1]["max_builds"], 1);
    let md = rmmsim::metrics::markdown(&r);
    assert!(
        md.contains("(linux-amd64 up to 2, 2 at the end; windows-amd64 up to 1, 1 at the end)"),
        "{md}"
    );
}
