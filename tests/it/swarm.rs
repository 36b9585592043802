//! `rmmsim swarm`'s engine against a real server: agents in real time over
//! TCP, round trips measured, and the server sees every one of them.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmmsim::protocol::{Channel, ErrorCode};
use rmmsim::swarm::{AllRefused, Refusal, StepReport, SwarmConfig, parse_server};

use crate::common::*;
use crate::process::wait_exit;

/// A swarm of `steps` against `server` with `site_key`, heartbeating every 300 ms.
fn config(server: SocketAddr, site_key: &str, steps: Vec<usize>) -> SwarmConfig {
    SwarmConfig {
        server: parse_server(&format!("ws://{server}")).unwrap(),
        site_key: site_key.to_owned(),
        steps,
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
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_connects_heartbeats_and_measures_round_trips() {
    let server = TestServer::start().await;
    let key = server.site("acme", "swarm", None).await;
    server.publish("0.6.58", &win(), Channel::Stable).await;
    let config = config(server.addr, &key.key, vec![5, 20]);
    let mut steps = Vec::new();
    rmmsim::swarm::run(config, |s| steps.push(s.clone()), |r| panic!("refused: {r}"))
        .await
        .unwrap();
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
    assert_eq!(
        (last.lost, last.refused, last.hello_refused, last.refused_agents),
        (0, 0, 0, 0)
    );
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

/// A wrong site key: the server refuses every hello. The swarm tells the
/// server's error at once, counts the refusals in its step report, and
/// stops instead of measuring nothing forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_whose_every_hello_is_refused_says_why_and_stops() {
    let server = TestServer::start().await;
    server.site("acme", "swarm", None).await;
    let told: Arc<Mutex<Vec<Refusal>>> = Arc::default();
    let mut steps: Vec<StepReport> = Vec::new();
    let sink = told.clone();
    let run = rmmsim::swarm::run(
        config(server.addr, "not-a-site-key", vec![4]),
        |s| steps.push(s.clone()),
        move |r| sink.lock().unwrap().push(r.clone()),
    );
    let err = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the swarm stops once every agent is refused")
        .unwrap_err();
    let refused = err.downcast_ref::<AllRefused>().expect("AllRefused");
    let unknown_key = Refusal {
        code: ErrorCode::UnknownSiteKey,
        message: "the site key admits no site".into(),
    };
    assert_eq!((refused.agents, &refused.refusals[..]), (4, &[unknown_key.clone()][..]));
    assert!(
        err.to_string()
            .contains("unknown_site_key: the site key admits no site"),
        "{err}"
    );
    assert_eq!(*told.lock().unwrap(), [unknown_key], "told once, at the first refusal");
    let [step] = &steps[..] else { panic!("{steps:?}") };
    assert_eq!(
        (step.agents, step.connected, step.refused_agents),
        (4, 0, 4),
        "{step:?}"
    );
    assert!(
        step.hello_refused >= 4 && step.refused >= step.hello_refused,
        "{step:?}"
    );
}

/// `rmmsim swarm` with a wrong site key: the server's error on stderr, the
/// refusals in the JSON line on stdout, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swarm_command_exits_non_zero_when_every_hello_is_refused() {
    let server = TestServer::start().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rmmsim"))
        .args(["swarm", "--server", &format!("ws://{}", server.addr)])
        .args([
            "--site-key",
            "wrong",
            "--agents",
            "3",
            "--heartbeat",
            "300ms",
            "--window",
            "1s",
        ])
        .env_remove("RMMSIM_SITE_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, child) = tokio::task::spawn_blocking(move || (wait_exit(&mut child), child))
        .await
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("the server refused a hello: unknown_site_key: the site key admits no site"),
        "{stderr}"
    );
    let step: StepReport = serde_json::from_str(stdout.trim()).expect(&stdout);
    assert_eq!((step.connected, step.refused_agents), (0, 3), "{stdout}");
    assert!(step.hello_refused >= 3, "{stdout}");
}

#[test]
fn server_addresses_are_ip_literals() {
    assert_eq!(parse_server("ws://127.0.0.1:8080").unwrap().port(), 8080);
    assert_eq!(parse_server("127.0.0.1:9").unwrap().port(), 9);
    assert!(parse_server("ws://127.0.0.1:8080/ws").is_ok());
    let err = parse_server("ws://localhost:8080").unwrap_err().to_string();
    assert!(err.contains("IP address"), "{err}");
}
