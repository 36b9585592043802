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
