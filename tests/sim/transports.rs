//! In-memory pipes, loopback TCP and the in-process session carry the same
//! protocol to the same server logic, so every shipped scenario gives the
//! same outcome on all three with the same seed: the same final version and
//! device ids per machine, the same orphan rows, the same server and agent
//! counters, the same convergence times: the same report but for the
//! wall-clock figures. Over TCP this rests on the hub holding the paused
//! clock while bytes are on the wire (src/sim/transport/tcp.rs).

use std::collections::BTreeMap;
use std::time::Duration;

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

/// The server's counters and what the agents saw, exactly.
fn assert_same_counters(name: &str, a: &Report, b: &Report) {
    let (ta, tb) = (&a.scenario.transport, &b.scenario.transport);
    assert_eq!(a.server, b.server, "{name}: server counters, {ta} vs {tb}");
    assert_eq!(a.agents, b.agents, "{name}: agent counters, {ta} vs {tb}");
}

/// The report as JSON, without what may differ between transports: the
/// wall-clock figures and the transport's name.
fn without_wall(r: &Report) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap();
    v.as_object_mut().unwrap().remove("wall");
    v["scenario"].as_object_mut().unwrap().remove("transport");
    v
}

fn assert_same(name: &str, a: &Report, b: &Report) {
    let (ta, tb) = (&a.scenario.transport, &b.scenario.transport);
    assert!(
        a.violations.is_empty() && b.violations.is_empty(),
        "{name}: {:?} {:?}",
        a.violations,
        b.violations
    );
    assert_eq!(final_state(a), final_state(b), "{name}: final state, {ta} vs {tb}");
    assert_eq!(a.rows.server, b.rows.server, "{name}: rows, {ta} vs {tb}");
    assert_same_counters(name, a, b);
    for (x, y) in a.builds.iter().zip(&b.builds) {
        assert_eq!(
            serde_json::to_value(&x.convergence).unwrap(),
            serde_json::to_value(&y.convergence).unwrap(),
            "{name}: convergence of {}, {ta} vs {tb}",
            x.version
        );
    }
    // And everything else: timeline, stranded machines, curves, stable lag.
    assert_eq!(without_wall(a), without_wall(b), "{name}: report, {ta} vs {tb}");
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
        let mem = run_on(plan, TransportKind::WsMem);
        let tcp = run_on(plan, TransportKind::WsTcp);
        let direct = run_on(plan, TransportKind::Direct);
        assert_eq!(direct.scenario.transport, "direct");
        assert_same(name, &mem, &tcp);
        assert_same(name, &mem, &direct);
    }
}

/// One beta machine whose download outlasts its heartbeat interval: the
/// heartbeat during the download brings the pending update again (U4).
/// One beta machine whose 61 s download outlasts its 60 s heartbeat.
fn long_download() -> Plan {
    checked(
        &one_update("long-download", 5, "2026-06-01T00:00:00Z", mins(15), mins(2))
            .agent(|a| a.heartbeat(secs(60)).jitter(0.0).download(secs(61)))
            .client(Client::new("acme").site(Site::new("lab").channel(Channel::Beta)))
            .fleet(Fleet::new(1, "acme/lab", OLD)),
    )
}

#[test]
fn an_update_re_sent_during_a_download_is_seen_on_every_transport() {
    // The two measurements: one machine with a 61 s download, and a
    // beta rollout to ten machines with a five-minute download.
    let one = long_download();
    let mut ten = one.clone();
    ten.groups[0].count = 10;
    ten.groups[0].timing.download = Duration::from_secs(300);
    ten.duration = Duration::from_secs(3600);
    for (name, plan) in [("one machine, 61 s", one), ("ten machines, 5 min", ten)] {
        let mem = run_on(&plan, TransportKind::WsMem);
        assert!(
            mem.agents.offers_while_busy > 0 && mem.server.redispatches > 0,
            "{name}: the download outlasts a heartbeat: {:?} {:?}",
            mem.server,
            mem.agents
        );
        for other in [TransportKind::WsTcp, TransportKind::Direct] {
            assert_same(name, &mem, &run_on(&plan, other));
        }
    }
}
