//! In-memory pipes and loopback TCP carry the same protocol through the same
//! server, so the same scenario and seed give the same outcome.

use std::collections::BTreeMap;

use rmmsim::metrics::Report;
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

#[test]
fn ws_mem_and_ws_tcp_give_the_same_outcome() {
    let mut plan = load("re-enroll");
    cap(&mut plan, 8);
    let mem = run_on(&plan, TransportKind::WsMem);
    let tcp = run_on(&plan, TransportKind::WsTcp);
    assert!(mem.violations.is_empty() && tcp.violations.is_empty());
    assert_eq!(final_state(&mem), final_state(&tcp));
    assert!(
        mem.rows.server.orphaned > 0,
        "the comparison covers re-enrolled machines"
    );
    assert_eq!(mem.rows.server, tcp.rows.server);
    assert_eq!(mem.stranded.len(), tcp.stranded.len());
    let heartbeat = 60.0;
    for (a, b) in mem.builds.iter().zip(&tcp.builds) {
        for (x, y) in a.convergence.iter().zip(&b.convergence) {
            for (p, q) in [(x.figures.t50_s, y.figures.t50_s), (x.figures.t90_s, y.figures.t90_s)] {
                let (p, q) = (p.expect("reached"), q.expect("reached"));
                assert!((p - q).abs() <= heartbeat, "{} {}: {p} vs {q}", a.version, x.channel);
            }
        }
    }
    assert_eq!(tcp.scenario.transport, "ws-tcp");
    assert_eq!(
        (tcp.agents.connections_lost, tcp.agents.connect_failures),
        (0, 0),
        "no spurious drops over TCP"
    );
}
