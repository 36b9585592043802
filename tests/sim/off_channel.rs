//! A group set to beta and back to inherit 30 s later, with a 5-minute
//! download: every machine was offered the beta build while on beta, was
//! moved back to stable while downloading, and installed it anyway. The
//! server ends the pending update as superseded, but the install happened:
//! it counts on the build's rollout row, and the report lists the machines
//! as off their channel.

use rmmsim::protocol::Version;
use rmmsim::sim::{self, SimOptions, TransportKind};

use crate::common::*;

const SCENARIO: &str = r#"
[scenario]
name = "off-channel"
seed = 11
start = "2026-06-01T00:00:00Z"
duration = "2h"

[agent]
heartbeat = "20s"
download = "5m"

[[clients]]
name = "acme"
sites = [{ name = "hq" }]

[[builds]]
version = "1.0.0"
channel = "stable"
published = "0s"

[[builds]]
version = "1.0.1"
published = "10m"

[[fleet]]
name = "flip"
count = 18
site = "acme/hq"
version = "1.0.0"

[[events]]
at = "30m"
set_channel = "beta"
group = "flip"

[[events]]
at = "30m 30s"
set_channel = "inherit"
group = "flip"
"#;

fn outcome(text: &str) -> (rmmsim::scenario::Plan, rmmsim::metrics::Outcome) {
    let plan = parse(text);
    let options = SimOptions {
        transport: TransportKind::WsMem,
        progress: false,
    };
    let o = sim::run(&plan, &options).unwrap_or_else(|e| panic!("{e:#}"));
    (plan, o)
}

#[test]
fn installs_of_a_superseded_update_count_on_the_builds_rollout_row() {
    let (plan, o) = outcome(SCENARIO);
    let beta = Version::new(1, 0, 1);
    let on_beta = o
        .recorder
        .machines
        .iter()
        .filter(|m| m.version_at(plan.duration) == beta)
        .count();
    assert_eq!(on_beta, 18, "every machine installed the beta build");
    let row = o
        .rollouts
        .iter()
        .find(|r| r.version == beta && r.platform.to_string() == "windows-amd64")
        .expect("a rollout row for the beta build");
    assert_eq!((row.successes, row.failures), (18, 0), "{row:?}");
    // The pending updates still ended as superseded, not as succeeded.
    assert_eq!(o.counters.successes, 0);
}
