//! Events keep their times while the server is down for a restart: what
//! does not need the server happens on time, the rest is refused and says so.

use crate::common::*;

fn scenario() -> PlanBuilder {
    one_update(
        "restart-timeline",
        3,
        "2026-06-01T00:00:00Z",
        hours(3),
        hours(1) + mins(5),
    )
    .health_gate(0, 1.0)
    .client(Client::new("acme").site(Site::new("lab").channel(Channel::Beta)))
    .fleet(Fleet::new(10, "acme/lab", OLD))
    .event(hours(1), Event::server_restart(mins(30)))
    .event(hours(1) + mins(10), Event::disconnect(0.5, hours(1)))
    .event(hours(1) + mins(15), Event::promote(NEW))
}

#[test]
fn events_during_a_restart_keep_their_times() {
    let r = run(&checked(&scenario()));
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
