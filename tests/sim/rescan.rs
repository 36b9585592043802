//! The server rescans the downloads folder every `[server] rescan_every`,
//! as `serve` does: a published build is offered from the next scan on, so
//! beta times include the wait; `0s` scans at every publish; a promote
//! rescans at once whatever the period (U9).

use std::time::Duration;

use rmmsim::metrics::Report;
use rmmsim::scenario::{Action, EventPlan, Plan};

use crate::common::*;

/// 100 always-on beta machines, heartbeat 60s without jitter, instant
/// updates: a machine runs the build at its first heartbeat that is offered
/// it. 1.0.1 lands at 1h, the moment of a periodic scan (every 30s from the
/// server's start at 0s), so it waits for the scan at 1h 30s.
fn plan() -> Plan {
    let share_at = |at| Expect::new("fraction_on").version(NEW).at(at).max(1.0);
    checked(
        &one_update("rescan", 9, "2026-06-01T00:00:00Z", hours(2), hours(1))
            .agent(|a| instant(a).heartbeat(secs(60)))
            .client(Client::new("c").site(Site::new("lab").channel(Channel::Beta)))
            .fleet(Fleet::new(100, "c/lab", OLD))
            .expect(share_at(hours(1) + secs(29)))
            .expect(share_at(hours(1) + secs(45))),
    )
}

fn beta_times(r: &Report) -> (f64, f64) {
    let build = r.builds.iter().find(|b| b.version == NEW).unwrap();
    let beta = build.convergence.iter().find(|c| c.channel == Channel::Beta).unwrap();
    assert_eq!(beta.reference, "publish");
    let f = &beta.figures;
    assert_eq!((f.population, f.reached), (100, 100));
    (f.t50_s.unwrap(), f.t100_s.unwrap())
}

/// The share on 1.0.1 at 1h 29s and at 1h 45s.
fn shares(r: &Report) -> (f64, f64) {
    (r.expectations[0].observed.unwrap(), r.expectations[1].observed.unwrap())
}

#[test]
fn a_publish_is_offered_from_the_next_scan_on() {
    let plan = plan();
    assert_eq!(plan.rescan_every, Duration::from_secs(30), "serve's default");
    let r = run(&plan);
    assert_passed(&r);
    // Nobody is offered it before the scan at 1h 30s; after it, the
    // machines heartbeating by 1h 45s take it.
    let (before, after) = shares(&r);
    assert_eq!(before, 0.0);
    assert!(after > 0.1, "{after}");
    // Beta times count from the publish: the 30s wait, then half a
    // heartbeat for half the fleet and a whole one for all of it.
    let (t50, t100) = beta_times(&r);
    assert!((t50 - 60.0).abs() <= 6.0, "t50 = {t50}");
    assert!((30.0..=90.0).contains(&t100), "t100 = {t100}");
    let publish = r.timeline.iter().find(|t| t.action == "publish 1.0.1").unwrap();
    assert_eq!(
        publish.outcome,
        "windows-amd64 as beta; visible at the next scan, in 30s"
    );

    // A publish between scans waits only for the rest of the period.
    let mut plan = plan;
    plan.events.iter_mut().for_each(|e| {
        if e.action == Action::Publish(NEW) {
            e.at += Duration::from_secs(20);
        }
    });
    let r = run(&plan);
    let publish = r.timeline.iter().find(|t| t.action == "publish 1.0.1").unwrap();
    assert_eq!(
        publish.outcome,
        "windows-amd64 as beta; visible at the next scan, in 10s"
    );
    let t50 = beta_times(&r).0;
    assert!((32.0..50.0).contains(&t50), "t50 = {t50}: 10s, then half a heartbeat");
}

#[test]
fn no_period_scans_at_every_publish() {
    let mut plan = plan();
    plan.rescan_every = Duration::ZERO;
    let r = run(&plan);
    // The figures of a scan at the publish: half the fleet by half a
    // heartbeat, all of it by one.
    let (before, _) = shares(&r);
    assert!(before > 0.3, "{before}");
    let (t50, t100) = beta_times(&r);
    assert!((t50 - 30.0).abs() <= 6.0, "t50 = {t50}");
    assert!(t100 <= 60.0, "t100 = {t100}");
    let publish = r.timeline.iter().find(|t| t.action == "publish 1.0.1").unwrap();
    assert_eq!(publish.outcome, "windows-amd64 as beta");
}

#[test]
fn a_promote_rescans_at_once_whatever_the_period() {
    // The same machines on stable, scans every hour. 1.0.1 lands at 10s and
    // is first scanned at 1h: a promote at 30m is refused, as `serve` would
    // refuse a build it has not scanned; the one at 1h 20m flips the
    // sidecar and rescans at once, long before the scan at 2h.
    let mut plan = plan();
    plan.clients[0].sites[0].channel = None;
    plan.rescan_every = Duration::from_secs(3600);
    plan.gate.min_successes = 0;
    plan.expects.clear();
    let event = |secs: u64, action| EventPlan {
        at: Duration::from_secs(secs),
        action,
    };
    let promote = Action::Promote {
        version: NEW,
        scope: None,
        force: false,
    };
    plan.events = vec![
        event(0, Action::Publish(Version::new(1, 0, 0))),
        event(10, Action::Publish(NEW)),
        event(30 * 60, promote.clone()),
        event(80 * 60, promote),
    ];
    let r = run(&plan);
    assert_passed(&r);
    let outcomes: Vec<&str> = r.timeline.iter().map(|t| t.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "windows-amd64 as stable; visible at the next scan, in 1h",
            "windows-amd64 as beta; visible at the next scan, in 59m 50s",
            "refused: version 1.0.1 not found",
            "gate passed: 0 successes, 0 failures",
        ]
    );
    let build = r.builds.iter().find(|b| b.version == NEW).unwrap();
    let stable = build.convergence.iter().find(|c| c.channel == Channel::Stable).unwrap();
    assert_eq!((stable.reference.as_str(), stable.reference_s), ("promote", 4800.0));
    let t100 = stable.figures.t100_s.unwrap();
    assert!(t100 <= 60.0, "t100 = {t100}: the promote's own scan made it visible");
}

#[test]
fn a_publish_while_the_server_is_down_is_seen_when_it_starts_again() {
    // 1.0.1 lands at 59m 50s, due to be seen by the scan at 1h 0s, but
    // the server stops at 59m 55s for 15 minutes, and another event comes
    // before it is back: the scan that was due finds no server (and the
    // simulation goes on), and the server's own scan as it starts sees the
    // build.
    let mut plan = plan();
    plan.expects.clear();
    let event = |secs: u64, action| EventPlan {
        at: Duration::from_secs(secs),
        action,
    };
    plan.events = vec![
        event(0, Action::Publish(Version::new(1, 0, 0))),
        event(
            3590,
            Action::ServerRestart {
                down: Duration::from_secs(15 * 60),
            },
        ),
        event(3600, Action::Publish(NEW)),
        event(
            3700,
            Action::SetChannel {
                target: rmmsim::scenario::Target::All,
                channel: Some(Channel::Beta),
            },
        ),
    ];
    let r = run(&plan);
    assert_passed(&r);
    assert_eq!(r.final_versions.get(&NEW), Some(&100), "{:?}", r.timeline);
}
