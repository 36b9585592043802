//! In-memory pipes, loopback TCP and the in-process session carry the same
//! protocol to the same server logic, so every shipped scenario gives the
//! same outcome on all three with the same seed: the same final version and
//! device ids per machine, the same orphan rows, and convergence times
//! within one heartbeat interval. (Counters such as re-sends may differ by
//! a few: over TCP the paused clock can advance while the kernel holds
//! bytes, which shifts some timings slightly.)

use std::collections::BTreeMap;

use rmmsim::metrics::Report;
use rmmsim::scenario::Plan;
use rmmsim::sim::TransportKind;

use crate::common::*;

/// Hostname → (final version, every device id): hostnames are per fleet
/// entry and index, so they match across runs.
fn final_state(r: &Report) -> BTreeMap<String, (String, Vec<String>)> {
    r.machines
        .iter()
        .map(|m| (m.hostname.clone(), (m.version.to_string(), m.device_ids.clone())))
        .collect()
}

/// Every scenario in `scenarios/`, its fleet entries cut to at most
/// max(8, a tenth) machines so three runs of each stay quick.
fn shipped_plans() -> Vec<(String, Plan)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let mut plan = rmmsim::scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            for g in &mut plan.groups {
                g.count = g.count.min(8.max(g.count / 10));
            }
            (p.file_stem().unwrap().to_string_lossy().into_owned(), plan)
        })
        .collect()
}

fn assert_same(name: &str, heartbeat: f64, a: &Report, b: &Report) {
    let (ta, tb) = (&a.scenario.transport, &b.scenario.transport);
    assert!(
        a.violations.is_empty() && b.violations.is_empty(),
        "{name}: {:?} {:?}",
        a.violations,
        b.violations
    );
    assert_eq!(final_state(a), final_state(b), "{name}: final state, {ta} vs {tb}");
    assert_eq!(a.rows.server, b.rows.server, "{name}: rows, {ta} vs {tb}");
    for (x, y) in a.builds.iter().zip(&b.builds) {
        for (p, q) in x.convergence.iter().zip(&y.convergence) {
            assert_eq!(
                (p.channel, p.reference_s),
                (q.channel, q.reference_s),
                "{name} {}",
                x.version
            );
            for (s, t) in [(p.figures.t50_s, q.figures.t50_s), (p.figures.t90_s, q.figures.t90_s)] {
                match (s, t) {
                    (Some(s), Some(t)) => assert!(
                        (s - t).abs() <= heartbeat,
                        "{name} {} {}: {s} s on {ta}, {t} s on {tb}",
                        x.version,
                        p.channel
                    ),
                    (s, t) => assert_eq!(s, t, "{name} {} {}: {ta} vs {tb}", x.version, p.channel),
                }
            }
        }
    }
}

#[test]
fn every_shipped_scenario_gives_the_same_outcome_on_all_three_transports() {
    let plans = shipped_plans();
    assert!(
        plans.len() >= 4,
        "the shipped scenarios: {:?}",
        plans.iter().map(|p| &p.0).collect::<Vec<_>>()
    );
    for (name, plan) in &plans {
        let heartbeat = plan
            .groups
            .iter()
            .map(|g| g.timing.heartbeat.as_secs_f64())
            .fold(0.0, f64::max);
        let mem = run_on(plan, TransportKind::WsMem);
        let tcp = run_on(plan, TransportKind::WsTcp);
        let direct = run_on(plan, TransportKind::Direct);
        assert_eq!(direct.scenario.transport, "direct");
        assert_same(name, heartbeat, &mem, &tcp);
        assert_same(name, heartbeat, &mem, &direct);
        assert_eq!(
            (tcp.agents.connect_failures, direct.agents.connect_failures),
            (mem.agents.connect_failures, mem.agents.connect_failures),
            "{name}: no spurious connect failures"
        );
    }
}
