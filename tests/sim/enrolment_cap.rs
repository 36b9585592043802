//! `[server] max_enrolments_per_minute`: a site key enrols at most that many
//! new rows a minute; refused machines reconnect with backoff and are all
//! enrolled in the end. Without the key there is no cap.

use crate::common::*;

fn fleet(cap: Option<u32>) -> PlanBuilder {
    let plan = PlanBuilder::new("cap", date("2026-01-05T00:00:00Z"), mins(30))
        .agent(|a| a.heartbeat(secs(60)).reconnect_min(secs(5)).reconnect_max(mins(2)))
        .client(Client::new("c").site("s"))
        .build(Build::new(OLD).channel(Channel::Stable).published(secs(0)))
        .fleet(Fleet::new(30, "c/s", OLD));
    match cap {
        Some(cap) => plan.max_enrolments_per_minute(cap),
        None => plan,
    }
}

#[test]
fn a_capped_site_key_enrols_its_fleet_over_minutes_and_no_row_is_lost() {
    let capped = run(&checked(&fleet(Some(10))));
    assert!(capped.violations.is_empty(), "{:#?}", capped.violations);
    assert_eq!(capped.rows.server.total, 30, "{:?}", capped.rows);
    assert!(capped.agents.refusals > 0, "the cap refused some: {:?}", capped.agents);
    let free = run(&checked(&fleet(None)));
    assert_eq!((free.rows.server.total, free.agents.refusals), (30, 0));
}
