//! The convergence arithmetic against the obvious model: always-on agents
//! with heartbeat H and instant download, install and restart are uniformly
//! spread over their cycle, so after a promote half of them have the build
//! at about H/2 and all of them by H.

use rmmsim::protocol::{Channel, Version};

use crate::common::*;

const H: f64 = 60.0;

fn plan(agents: usize) -> rmmsim::scenario::Plan {
    parse(&format!(
        r#"
[scenario]
name = "arithmetic"
seed = 5
start = "2026-01-05T00:00:00Z"
duration = "2h"

[server]
health_gate = {{ min_successes = 0, max_failure_rate = 1.0 }}

[agent]
heartbeat = "{H}s"
jitter = 0.0
download = "0s"
install = "0s"
restart = "0s"

[[clients]]
name = "c"
sites = [{{ name = "s" }}]

[[builds]]
version = "1.0.0"
channel = "stable"
published = "0s"

[[builds]]
version = "1.0.1"
published = "10m"

[[fleet]]
count = {agents}
site = "c/s"
version = "1.0.0"

[[events]]
at = "1h"
promote = "1.0.1"
"#
    ))
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
    let builds: String = [
        ("1.0.0", "stable", "0s"),
        ("1.1.0", "beta", "1h"),
        ("1.2.0", "stable", "4h 59m"),
        ("1.3.0", "beta", "10h 10m"),
        ("1.4.0", "beta", "10h 20m"),
    ]
    .iter()
    .map(|(v, c, at)| format!("[[builds]]\nversion = \"{v}\"\nchannel = \"{c}\"\npublished = \"{at}\"\n\n"))
    .collect();
    let r = run(&parse(&format!(
        r#"
[scenario]
name = "lag"
start = "2026-01-05T00:00:00Z"
duration = "10h 50m"
sample_every = "1h"

[[clients]]
name = "c"
sites = [{{ name = "s" }}]

{builds}
[[fleet]]
count = 2
site = "c/s"
version = "1.0.0"
"#
    )));
    let lag = &r.stable_lag;
    // 1.1.0 waited from 1h until 1.2.0 landed as stable at 4h59m.
    assert_eq!(lag.max_s, (3 * 3600 + 59 * 60) as f64);
    // Two builds behind only after the last sample (10h), at the end.
    assert_eq!((lag.max_builds, lag.at_end_builds), (2, 2));
    assert_eq!(lag.at_end_s, 40.0 * 60.0);
    assert_eq!(lag.builds.iter().max(), Some(&1), "the samples alone see one");
}
