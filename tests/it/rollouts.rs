//! U9–U11: promote (global sidecar flip, health gate), rollback (block and
//! downgrade), rollout rows.

use std::fs;

use hyper::StatusCode;
use rmmsim::protocol::{Channel, ServerMessage};
use rmmsim::server::HealthGate;
use rmmsim::server::publish::build_file_name;
use serde_json::{Value, json};

use crate::common::*;

fn no_gate() -> HealthGate {
    HealthGate {
        min_successes: 0,
        max_failure_rate: 1.0,
        max_new_error_rate: None,
    }
}

fn sidecar(server: &MemServer, platform: &rmmsim::protocol::Platform, version: &str) -> Option<String> {
    let path = server
        .downloads()
        .join(format!("{}.channel", build_file_name(platform, v(version))));
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn rollout<'a>(rollouts: &'a Value, version: &str, platform: &str) -> &'a Value {
    rollouts["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version && r["platform"] == platform)
        .unwrap_or_else(|| panic!("no rollout row {version} {platform}: {rollouts}"))
}

#[tokio::test(start_paused = true)]
async fn u09_frozen_stable_in_miniature_beta_moves_stable_waits_for_the_promote() {
    let server = TestServer::mem_with_gate(no_gate()).await;
    let stable_key = server.site("acme", "hq", None).await;
    let beta_key = server.site("acme", "lab", Some(Channel::Beta)).await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    let mut stable = server.agent(&stable_key, "0.6.47").await;
    let mut beta = server.agent(&beta_key, "0.6.47").await;

    assert_eq!(
        stable.heartbeat("0.6.47").await,
        None,
        "0.6.48 is beta: the stable agent is offered nothing"
    );
    assert_eq!(
        update_version(&beta.heartbeat("0.6.47").await).as_deref(),
        Some("0.6.48")
    );

    let (s, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.48/promote", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(sidecar(&server, &win(), "0.6.48").as_deref(), Some("stable"));
    assert_eq!(
        update_version(&stable.heartbeat("0.6.47").await).as_deref(),
        Some("0.6.48"),
        "next heartbeat after the promote"
    );
}

#[tokio::test(start_paused = true)]
async fn u09_a_promote_naming_windows_flips_the_linux_sidecar_too() {
    let server = TestServer::mem_with_gate(no_gate()).await;
    server.publish("0.6.58", &win(), Channel::Beta).await;
    server.publish("0.6.58", &linux(), Channel::Beta).await;
    let (s, body) = server
        .api()
        .post(
            "/api/updates/rollouts/0.6.58/promote",
            json!({ "os": "windows", "arch": "amd64" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(sidecar(&server, &win(), "0.6.58").as_deref(), Some("stable"));
    assert_eq!(
        sidecar(&server, &linux(), "0.6.58").as_deref(),
        Some("stable"),
        "global flip"
    );
    assert_eq!(body["sidecars_flipped"].as_array().unwrap().len(), 2);
    // Only the named platform's rollout row is marked promoted.
    let rollouts = server.api().rollouts().await;
    assert_eq!(rollout(&rollouts, "0.6.58", "windows-amd64")["status"], "promoted");
    assert_eq!(rollout(&rollouts, "0.6.58", "linux-amd64")["status"], "beta");
    // And the scan agrees: both builds are stable now.
    let (_, scan) = server.api().get("/api/updates/versions").await;
    assert!(
        scan["builds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["channel"] == "stable"),
        "{scan}"
    );
}

#[tokio::test(start_paused = true)]
async fn u09_the_health_gate_refuses_with_its_numbers_unless_forced() {
    let server = TestServer::mem_with_gate(HealthGate {
        min_successes: 2,
        max_failure_rate: 0.25,
        max_new_error_rate: None,
    })
    .await;
    let beta_key = server.site("acme", "lab", Some(Channel::Beta)).await;
    // The gate counts machines enrolled before the build was published.
    let mut ok = server.agent(&beta_key, "0.6.47").await;
    let mut bad = server.agent(&beta_key, "0.6.47").await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    // One beta agent succeeds, one fails: 1 success < 2, failure rate 0.5 > 0.25.
    let offer = ok.heartbeat("0.6.47").await.unwrap();
    ok.report(&offer, true, "0.6.48").await;
    let offer = bad.heartbeat("0.6.47").await.unwrap();
    bad.report(&offer, false, "0.6.47").await;
    eventually("both outcomes counted", || async {
        let r = server.api().rollouts().await;
        let row = rollout(&r, "0.6.48", "windows-amd64");
        row["successes"] == 1 && row["failures"] == 1
    })
    .await;

    let (s, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.48/promote", json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "health_gate");
    let gate = &body["error"]["details"];
    assert_eq!(
        (gate["successes"].as_u64(), gate["failures"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(gate["failure_rate"], 0.5);
    assert_eq!(gate["min_successes"], 2);
    assert_eq!(
        sidecar(&server, &win(), "0.6.48").as_deref(),
        Some("beta"),
        "a refused promote changes nothing"
    );

    let (s, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.48/promote", json!({ "force": true }))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["forced"], true);
    assert_eq!(sidecar(&server, &win(), "0.6.48").as_deref(), Some("stable"));
    let (s, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.48/promote", json!({ "force": true }))
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_promoted"))
    );
}

#[tokio::test(start_paused = true)]
async fn u10_a_rollback_moves_agents_off_the_blocked_version_to_the_newest_allowed() {
    let server = TestServer::mem_with_gate(no_gate()).await;
    let key = server.site("acme", "hq", None).await;
    let beta_key = server.site("acme", "lab", Some(Channel::Beta)).await;
    server.publish("0.6.57", &win(), Channel::Stable).await;
    server.publish("0.6.58", &win(), Channel::Beta).await;
    server
        .api()
        .post("/api/updates/rollouts/0.6.58/promote", json!({}))
        .await;
    server.publish("0.6.59", &win(), Channel::Beta).await;
    let mut online = server.agent(&key, "0.6.58").await;
    let mut beta = server.agent(&beta_key, "0.6.57").await;
    // The beta agent has 0.6.59 pending; the stable one runs 0.6.58 happily.
    assert_eq!(online.heartbeat("0.6.58").await, None);
    assert_eq!(
        update_version(&beta.heartbeat("0.6.57").await).as_deref(),
        Some("0.6.59")
    );
    let offline_device = machine();
    let offline = server
        .agent_as(&key, rmmsim::protocol::DeviceId::Bare(offline_device), "0.6.58")
        .await;
    offline.close().await;

    let (s, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.58/rollback", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["agents_running"], 2);
    assert_eq!(body["downgrades_pushed"], json!([online.id]));
    // Pushed at once to the connected agent: down to the newest allowed stable.
    match online.recv().await {
        ServerMessage::Update(u) => assert_eq!(u.version, v("0.6.57")),
        other => panic!("expected a downgrade, got {other:?}"),
    }
    assert_eq!(sidecar(&server, &win(), "0.6.58"), None, "sidecar removed");
    // The offline agent is moved on its next heartbeat (U3).
    let mut back = server
        .agent_as(&key, rmmsim::protocol::DeviceId::Bare(offline_device), "0.6.58")
        .await;
    assert_eq!(
        update_version(&back.heartbeat("0.6.58").await).as_deref(),
        Some("0.6.57")
    );
    // Blocked for good, even for beta; a second rollback is refused.
    let mut fresh_beta = server.agent(&beta_key, "0.6.57").await;
    assert_eq!(
        update_version(&fresh_beta.heartbeat("0.6.57").await).as_deref(),
        Some("0.6.59")
    );
    let rollouts = server.api().rollouts().await;
    assert_eq!(rollouts["blocked"][0]["version"], "0.6.58");
    assert_eq!(rollout(&rollouts, "0.6.58", "windows-amd64")["status"], "rolled_back");
    let (s, _) = server
        .api()
        .post("/api/updates/rollouts/0.6.58/rollback", json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test(start_paused = true)]
async fn u10_a_rollback_cancels_pending_updates_to_the_version() {
    let server = TestServer::mem_with_gate(no_gate()).await;
    let beta_key = server.site("acme", "lab", Some(Channel::Beta)).await;
    server.publish("0.6.57", &win(), Channel::Stable).await;
    server.publish("0.6.58", &win(), Channel::Beta).await;
    let mut agent = server.agent(&beta_key, "0.6.57").await;
    let offer = agent.heartbeat("0.6.57").await.unwrap();
    assert_eq!(offer.version, v("0.6.58"));
    let (_, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.58/rollback", json!({}))
        .await;
    assert_eq!(body["updates_cancelled"], 1);
    assert_eq!(
        agent.heartbeat("0.6.57").await,
        None,
        "the cancelled update is not re-sent"
    );
    let detail = server.api().agent(agent.id).await;
    assert_eq!(detail["updates"][0]["status"], "superseded");
}

#[tokio::test(start_paused = true)]
async fn u11_every_beta_build_gets_a_rollout_row_that_counts_and_records_its_history() {
    let server = TestServer::mem_with_gate(HealthGate {
        min_successes: 1,
        max_failure_rate: 0.5,
        max_new_error_rate: None,
    })
    .await;
    let beta_key = server.site("acme", "lab", Some(Channel::Beta)).await;
    // Enrolled before the publish, so the gate counts it.
    let mut a = server.agent(&beta_key, "0.6.47").await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    let rollouts = server.api().rollouts().await;
    assert_eq!(
        rollouts["rollouts"].as_array().unwrap().len(),
        1,
        "stable-published builds have no row: {rollouts}"
    );
    let row = rollout(&rollouts, "0.6.48", "windows-amd64");
    assert_eq!(row["status"], "beta");
    assert!(row["published_at"].is_string());
    assert_eq!(row["promoted_at"], Value::Null);

    let offer = a.heartbeat("0.6.47").await.unwrap();
    a.report(&offer, false, "0.6.47").await;
    let offer = a.heartbeat("0.6.47").await.unwrap();
    // Coming back on the version is a success too (the agent restarted).
    assert_eq!(offer.version, v("0.6.48"));
    assert_eq!(a.heartbeat("0.6.48").await, None);
    let rollouts = server.api().rollouts().await;
    let row = rollout(&rollouts, "0.6.48", "windows-amd64");
    assert_eq!(
        (row["successes"].as_u64(), row["failures"].as_u64()),
        (Some(1), Some(1))
    );

    server
        .api()
        .post("/api/updates/rollouts/0.6.48/promote", json!({}))
        .await;
    let rollouts = server.api().rollouts().await;
    let row = rollout(&rollouts, "0.6.48", "windows-amd64");
    assert_eq!(row["status"], "promoted");
    assert!(row["promoted_at"].is_string());
    server
        .api()
        .post("/api/updates/rollouts/0.6.48/rollback", json!({}))
        .await;
    let rollouts = server.api().rollouts().await;
    let row = rollout(&rollouts, "0.6.48", "windows-amd64");
    assert_eq!(row["status"], "rolled_back");
    assert!(row["rolled_back_at"].is_string());
}

#[tokio::test(start_paused = true)]
async fn u10_a_rollback_keeps_one_pending_update_per_agent() {
    let server = TestServer::mem_with_gate(no_gate()).await;
    let beta_key = server.site("acme", "lab", Some(Channel::Beta)).await;
    server.publish("0.6.56", &win(), Channel::Stable).await;
    server.publish("0.6.57", &win(), Channel::Stable).await;
    server.publish("0.6.58", &win(), Channel::Beta).await;
    // A beta agent on 0.6.57 is on its way to 0.6.58 when 0.6.57 is rolled back.
    let mut agent = server.agent(&beta_key, "0.6.57").await;
    let first = agent.heartbeat("0.6.57").await.unwrap();
    assert_eq!(first.version, v("0.6.58"));
    server
        .api()
        .post("/api/updates/rollouts/0.6.57/rollback", json!({}))
        .await;
    let detail = server.api().agent(agent.id).await;
    let pending: Vec<_> = detail["updates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["status"] == "pending")
        .collect();
    assert_eq!(pending.len(), 1, "{detail}");
    assert_eq!(pending[0]["id"], first.update_id.0);
    // Restarting the server does not bring a second one back.
    let id = agent.id;
    agent.close().await;
    let server = server.restart().await;
    let detail = server.api().agent(id).await;
    assert_eq!(detail["pending_update"]["id"], first.update_id.0);
    let pending = detail["updates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["status"] == "pending")
        .count();
    assert_eq!(pending, 1);
}

/// Files of 0.6.58 that the scan does not offer.
struct Skipped {
    /// The Windows build, whose `.sha256` was taken away.
    windows: String,
    /// What that `.sha256` held, to put back.
    digest: String,
    /// A per-site build (never offered, U6) with a `beta` sidecar.
    site: String,
}

/// 0.6.57 stable on Windows; 0.6.58 beta on Windows and Linux, scanned, then
/// the Windows one loses its `.sha256` and a per-site 0.6.58 lands, and the
/// folder is scanned again: only Linux's 0.6.58 is offered.
async fn with_a_skipped_build(server: &MemServer) -> Skipped {
    server.publish("0.6.57", &win(), Channel::Stable).await;
    let windows = server.publish("0.6.58", &win(), Channel::Beta).await.file;
    server.publish("0.6.58", &linux(), Channel::Beta).await;
    let dir = server.downloads();
    let digest_path = dir.join(format!("{windows}.sha256"));
    let digest = fs::read_to_string(&digest_path).unwrap();
    fs::remove_file(digest_path).unwrap();
    let site = "gururmm-agent-windows-amd64-site-3f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10-0.6.58.exe".to_owned();
    fs::write(dir.join(&site), b"per-site").unwrap();
    fs::write(dir.join(format!("{site}.channel")), "beta\n").unwrap();
    let scan = server.rescan().await;
    let offered: Vec<_> = scan["builds"].as_array().unwrap().iter().map(|b| &b["file"]).collect();
    let expected = [
        build_file_name(&linux(), v("0.6.58")),
        build_file_name(&win(), v("0.6.57")),
    ];
    assert_eq!(offered, expected.map(Value::from).iter().collect::<Vec<_>>());
    Skipped { windows, digest, site }
}

fn put_digest(server: &MemServer, file: &str, digest: &str) {
    fs::write(server.downloads().join(format!("{file}.sha256")), digest).unwrap();
}

/// A build of a scan's answer, by file name.
fn scanned_build<'a>(scan: &'a Value, file: &str) -> &'a Value {
    let builds = scan["builds"].as_array().unwrap();
    builds
        .iter()
        .find(|b| b["file"] == file)
        .unwrap_or_else(|| panic!("{file} not offered: {scan}"))
}

#[tokio::test(start_paused = true)]
async fn u09_promote_flips_sidecars_of_skipped_files() {
    let server = TestServer::mem_with_gate(no_gate()).await;
    let key = server.site("acme", "hq", None).await;
    let Skipped { windows, digest, site } = with_a_skipped_build(&server).await;

    let (s, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.58/promote", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["sidecars_flipped"],
        json!([build_file_name(&linux(), v("0.6.58")), &windows, &site]),
        "every sidecar of the version, offered or not"
    );
    assert_eq!(sidecar(&server, &win(), "0.6.58").as_deref(), Some("stable"));
    let site_sidecar = fs::read_to_string(server.downloads().join(format!("{site}.channel"))).unwrap();
    assert_eq!(site_sidecar.trim(), "stable", "per-site name form");

    // The skipped build is completed: it lands stable, and stable agents get it.
    let mut stable = server.agent(&key, "0.6.57").await;
    assert_eq!(stable.heartbeat("0.6.57").await, None, "not offered while skipped");
    put_digest(&server, &windows, &digest);
    let scan = server.rescan().await;
    let build = scanned_build(&scan, &windows);
    assert_eq!(build["channel"], "stable", "{scan}");
    assert_eq!(
        update_version(&stable.heartbeat("0.6.57").await).as_deref(),
        Some("0.6.58")
    );
}

#[tokio::test(start_paused = true)]
async fn u10_rollback_removes_sidecars_of_skipped_files() {
    let server = TestServer::mem_with_gate(no_gate()).await;
    let Skipped { windows, digest, site } = with_a_skipped_build(&server).await;

    let (s, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.58/rollback", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["sidecars_removed"],
        json!([build_file_name(&linux(), v("0.6.58")), &windows, &site])
    );
    assert_eq!(sidecar(&server, &win(), "0.6.58"), None);
    assert_eq!(sidecar(&server, &linux(), "0.6.58"), None);
    assert!(!server.downloads().join(format!("{site}.channel")).exists());

    // Completed later, the build has no sidecar left: stable, and blocked.
    put_digest(&server, &windows, &digest);
    let scan = server.rescan().await;
    let build = scanned_build(&scan, &windows);
    assert_eq!(
        (build["channel"].as_str(), build["blocked"].as_bool()),
        (Some("stable"), Some(true)),
        "{scan}"
    );
}

/// Moves an agent row to `channel` (`null`: inherit) through the API.
async fn set_agent_channel(server: &MemServer, agent: &WsAgent, channel: Value) {
    let path = format!("/api/agents/{}/channel", agent.id);
    let (s, body) = server.api().put(&path, json!({ "channel": channel })).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

/// A stable agent offered a beta build during a short spell on beta: the
/// server supersedes the update once the agent is stable again, but the
/// agent was already downloading it and installs it.
async fn superseded_beta_offer(server: &MemServer) -> (SiteKey, WsAgent, rmmsim::protocol::UpdateOffer) {
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    let mut agent = server.agent(&key, "0.6.47").await;
    set_agent_channel(server, &agent, json!("beta")).await;
    let offer = agent.heartbeat("0.6.47").await.expect("the beta build");
    assert_eq!(offer.version, v("0.6.48"));
    set_agent_channel(server, &agent, Value::Null).await;
    assert_eq!(agent.heartbeat("0.6.47").await, None, "not re-sent to a stable agent");
    let detail = server.api().agent(agent.id).await;
    assert_eq!(detail["updates"][0]["status"], "superseded", "{detail}");
    (key, agent, offer)
}

fn counts(rollouts: &Value) -> (Option<u64>, Option<u64>) {
    let row = rollout(rollouts, "0.6.48", "windows-amd64");
    (row["successes"].as_u64(), row["failures"].as_u64())
}

#[tokio::test(start_paused = true)]
async fn u11_a_success_report_for_a_superseded_update_counts_once_on_its_versions_rollout_row() {
    let server = TestServer::mem_with_gate(no_gate()).await;
    let (_, mut agent, offer) = superseded_beta_offer(&server).await;
    assert_eq!(counts(&server.api().rollouts().await), (Some(0), Some(0)));
    // The install happened; the agent says so, and says it again.
    agent.report(&offer, true, "0.6.48").await;
    agent.report(&offer, true, "0.6.48").await;
    // Frames are handled in order: once this heartbeat is answered, both
    // reports have been.
    assert_eq!(agent.heartbeat("0.6.48").await, None);
    assert_eq!(counts(&server.api().rollouts().await), (Some(1), Some(0)));
    // The update itself stays superseded; the report is recorded on it.
    let detail = server.api().agent(agent.id).await;
    assert_eq!(detail["updates"][0]["status"], "superseded");
    assert_eq!(detail["updates"][0]["late_outcome"], "succeeded");
    assert_eq!(detail["pending_update"], Value::Null);
    let (_, stats) = server.api().get("/api/stats").await;
    assert_eq!(stats["counters"]["successes"], 0, "no update ended in success");
}

#[tokio::test(start_paused = true)]
async fn u11_a_failure_report_for_a_superseded_update_counts_as_a_failure_of_its_version() {
    let server = TestServer::mem_with_gate(no_gate()).await;
    let (_, mut agent, offer) = superseded_beta_offer(&server).await;
    agent.report(&offer, false, "0.6.47").await;
    assert_eq!(agent.heartbeat("0.6.47").await, None);
    assert_eq!(counts(&server.api().rollouts().await), (Some(0), Some(1)));
}

#[tokio::test(start_paused = true)]
async fn u11_an_install_already_counted_by_a_later_update_is_not_counted_twice() {
    let server = TestServer::mem_with_gate(no_gate()).await;
    let (key, mut agent, offer) = superseded_beta_offer(&server).await;
    // Back on beta: a new update to the same build, which the busy agent
    // ignores; it comes back on the build from the first offer, and that
    // ends the new update as succeeded.
    set_agent_channel(&server, &agent, json!("beta")).await;
    let second = agent.heartbeat("0.6.47").await.expect("a new update");
    assert_ne!(second.update_id, offer.update_id);
    let device = agent.device.unwrap();
    agent.close().await;
    let mut back = server.agent_as(&key, device, "0.6.48").await;
    back.report(&offer, true, "0.6.48").await;
    assert_eq!(back.heartbeat("0.6.48").await, None);
    assert_eq!(
        counts(&server.api().rollouts().await),
        (Some(1), Some(0)),
        "one install"
    );
    let detail = server.api().agent(back.id).await;
    assert_eq!(detail["updates"][1]["status"], "succeeded", "{detail}");
    assert_eq!(detail["updates"][0]["late_outcome"], "succeeded");
}
