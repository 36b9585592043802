//! One seed, one outcome: the same file and seed give the same report
//! (wall-clock figures aside), and another seed gives another.

use rmmsim::metrics::Report;

use crate::common::*;

fn without_wall(r: &Report) -> String {
    let mut v = serde_json::to_value(r).unwrap();
    v.as_object_mut().unwrap().remove("wall");
    serde_json::to_string(&v).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_report() {
    // beta-first has everything random at once: jitter, intermittent and
    // office-hours machines, install failures, an outage and a restart.
    let mut plan = load("beta-first");
    cap(&mut plan, 12);
    plan.gate.min_successes = 5;
    let a = run(&plan);
    let b = run(&plan);
    assert_eq!(without_wall(&a), without_wall(&b));
    assert!(a.server.heartbeats > 100_000, "a real run: {:?}", a.server);

    plan.seed += 1;
    let c = run(&plan);
    assert_ne!(without_wall(&a), without_wall(&c), "the seed decides");
}
