//! The convergence arithmetic against the obvious model: always-on agents
//! with heartbeat H and instant download, install and restart are uniformly
//! spread over their cycle, so after a promote half of them have the build
//! at about H/2 and all of them by H.

use crate::common::*;

const H: f64 = 60.0;

fn plan(agents: u64) -> rmmsim::scenario::Plan {
    checked(
        &one_update("arithmetic", 5, "2026-01-05T00:00:00Z", hours(2), mins(10))
            .health_gate(0, 1.0)
            .agent(|a| instant(a).heartbeat(secs(H as u64)))
            .client(Client::new("c").site("s"))
            .fleet(Fleet::new(agents, "c/s", OLD))
            .event(hours(1), Event::promote(NEW)),
    )
}

#[test]
fn after_a_promote_half_the_fleet_has_it_at_h_over_2_and_all_by_h() {
    let r = run(&plan(1000));
    assert_passed(&r);
    let build = r.builds.iter().find(|b| b.version == Version::new(1, 0, 1)).unwrap();
    let stable = build
        .convergence
        .iter()
        .find(|c| c.channel == Channel::Stable && c.reference == "promote")
        .unwrap();
    let f = &stable.figures;
    assert_eq!((f.population, f.reached), (1000, 1000));
    let t50 = f.t50_s.unwrap();
    assert!(
        (t50 - H / 2.0).abs() <= 0.1 * H / 2.0,
        "t50 = {t50} s, expected {} s ± 10%",
        H / 2.0
    );
    let t100 = f.t100_s.unwrap();
    assert!(t100 <= H, "t100 = {t100} s > H = {H} s");
    // And before the promote, stable had nothing to take.
    assert_eq!(r.server.dispatches, 1000);
}

/// Stable lag's largest value is exact whatever the sampling: it is taken
/// just before a stable publish ends it, and at an end between samples.
#[test]
fn the_largest_stable_lag_falls_between_samples_and_at_the_end() {
    let builds = [
        ("1.0.0", Channel::Stable, secs(0)),
        ("1.1.0", Channel::Beta, hours(1)),
        ("1.2.0", Channel::Stable, hours(4) + mins(59)),
        ("1.3.0", Channel::Beta, hours(10) + mins(10)),
        ("1.4.0", Channel::Beta, hours(10) + mins(20)),
    ];
    let lag = PlanBuilder::new("lag", date("2026-01-05T00:00:00Z"), hours(10) + mins(50))
        .sample_every(hours(1))
        .client(Client::new("c").site("s"))
        .fleet(Fleet::new(2, "c/s", OLD));
    let lag = builds.into_iter().fold(lag, |plan, (v, channel, at)| {
        plan.build(Build::new(v.parse().unwrap()).channel(channel).published(at))
    });
    let r = run(&checked(&lag));
    let lag = &r.stable_lag;
    // 1.1.0 waited from 1h until 1.2.0 landed as stable at 4h59m.
    assert_eq!(lag.max_s, (3 * 3600 + 59 * 60) as f64);
    // Two builds behind only after the last sample (10h), at the end.
    assert_eq!((lag.max_builds, lag.at_end_builds), (2, 2));
    assert_eq!(lag.at_end_s, 40.0 * 60.0);
    assert_eq!(lag.builds.iter().max(), Some(&1), "the samples alone see one");
}
