//! Events keep their times while the server is down for a restart: what
//! does not need the server happens on time, the rest is refused and says so.

use rmmsim::protocol::Version;

use crate::common::*;

const SCENARIO: &str = r#"
[scenario]
name = "restart-timeline"
seed = 3
start = "2026-06-01T00:00:00Z"
duration = "3h"

[server]
health_gate = { min_successes = 0, max_failure_rate = 1.0 }

[[clients]]
name = "acme"
sites = [{ name = "lab", channel = "beta" }]

[[builds]]
version = "1.0.0"
channel = "stable"
published = "0s"

[[builds]]
version = "1.0.1"
published = "1h 5m"

[[fleet]]
count = 10
site = "acme/lab"
version = "1.0.0"

[[events]]
at = "1h"
server_restart = "30m"

[[events]]
at = "1h 10m"
disconnect = 0.5
for = "1h"

[[events]]
at = "1h 15m"
promote = "1.0.1"
"#;

#[test]
fn events_during_a_restart_keep_their_times() {
    let r = run(&parse(SCENARIO));
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let at = |prefix: &str| {
        r.timeline
            .iter()
            .find(|t| t.action.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}"))
    };
    assert_eq!(at("server restart").outcome, "stopped; serving again at 1h 30m");
    assert_eq!(at("publish 1.0.1").at_s, 3900.0);
    assert!(at("publish 1.0.1").outcome.contains("sees it when it starts"));
    assert_eq!(at("disconnect").at_s, 4200.0);
    assert_eq!(at("promote").outcome, "refused: the server is down");
    let build = r.builds.iter().find(|b| b.version == Version::new(1, 0, 1)).unwrap();
    assert_eq!(build.published_s, Some(3900.0));
    assert_eq!(build.promoted_s, None);
    // Once back, the beta fleet takes the build it scanned at start-up.
    assert_eq!(r.final_versions.get(&Version::new(1, 0, 1)), Some(&10));
}
