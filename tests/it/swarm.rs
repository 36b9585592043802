//! `rmmsim swarm`'s engine against a real server: agents in real time over
//! TCP, round trips measured, and the server sees every one of them.

use std::time::Duration;

use rmmsim::protocol::Channel;
use rmmsim::swarm::{SwarmConfig, parse_server};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_connects_heartbeats_and_measures_round_trips() {
    let server = TestServer::start().await;
    let key = server.site("acme", "swarm", None).await;
    server.publish("0.6.58", &win(), Channel::Stable).await;
    let config = SwarmConfig {
        server: parse_server(&format!("ws://{}", server.addr)).unwrap(),
        site_key: key.key.clone(),
        steps: vec![5, 20],
        heartbeat: Duration::from_millis(300),
        window: Duration::from_millis(900),
        hold: false,
        version: v("0.6.58"),
        platform: win(),
        sources: 2,
        seed: 4,
        download: Duration::from_secs(1),
        install: Duration::from_secs(1),
        restart: Duration::from_secs(1),
        histogram: true,
    };
    let mut steps = Vec::new();
    rmmsim::swarm::run(config, |s| steps.push(s.clone())).await.unwrap();
    assert_eq!(
        steps.iter().map(|s| (s.agents, s.connected)).collect::<Vec<_>>(),
        [(5, 5), (20, 20)]
    );
    let last = &steps[1];
    assert!(
        last.heartbeats >= 20,
        "every agent heartbeats in a window of three intervals: {last:?}"
    );
    assert!(last.rtt_ms.p50 > 0.0 && last.rtt_ms.p50 <= last.rtt_ms.p99 && last.rtt_ms.p99 <= last.rtt_ms.max);
    assert_eq!((last.lost, last.refused), (0, 0));
    // The histogram handed over gives back the swarm's own figures.
    let merged = rmmsim::swarm::merged_rtt(std::slice::from_ref(last)).expect("a histogram");
    assert_eq!(
        (merged.p50, merged.p99, merged.max),
        (last.rtt_ms.p50, last.rtt_ms.p99, last.rtt_ms.max)
    );
    let (_, stats) = server.api().get("/api/stats").await;
    assert_eq!(stats["agent_rows"], 20);
    assert!(stats["counters"]["heartbeats"].as_u64().unwrap() >= last.heartbeats);
    // The server's open-files limit bounds the agents it holds: stats says
    // what it is (the server runs in this process).
    let (soft, _) = rlimit::Resource::NOFILE.get().unwrap();
    assert_eq!(stats["open_files"], soft);
}

#[test]
fn server_addresses_are_ip_literals() {
    assert_eq!(parse_server("ws://127.0.0.1:8080").unwrap().port(), 8080);
    assert_eq!(parse_server("127.0.0.1:9").unwrap().port(), 9);
    assert!(parse_server("ws://127.0.0.1:8080/ws").is_ok());
    let err = parse_server("ws://localhost:8080").unwrap_err().to_string();
    assert!(err.contains("IP address"), "{err}");
}
