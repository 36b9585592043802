//! One seed, one outcome: the same file and seed give the same report
//! (wall-clock figures aside), and another seed gives another; telling a
//! progress sink how far the run has come changes nothing.

use std::sync::{Arc, Mutex};

use rmmsim::metrics::Report;
use rmmsim::sim::{self, Progress, ProgressSink, SimOptions, TransportKind};

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

#[test]
fn a_progress_sink_hears_the_run_advance_and_changes_nothing() {
    let mut plan = load("beta-first");
    cap(&mut plan, 6);
    plan.gate.min_successes = 3;
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let heard = heard.clone();
        Arc::new(move |p: Progress| heard.lock().unwrap().push(p)) as ProgressSink
    };
    let options = SimOptions {
        transport: TransportKind::WsMem,
        progress: Some(sink),
    };
    let told = sim::execute(&plan, &options).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(without_wall(&told), without_wall(&run(&plan)));

    let heard = heard.lock().unwrap();
    // One tick every 200th of the run, the last one at its end or just before.
    assert!(heard.len() >= 199, "{} ticks", heard.len());
    assert!(heard.iter().all(|p| p.total == plan.duration && p.done <= p.total));
    assert!(heard.windows(2).all(|w| w[0].done < w[1].done), "time only moves on");
    assert!(heard.last().unwrap().done >= plan.duration - plan.duration / 200);
}
