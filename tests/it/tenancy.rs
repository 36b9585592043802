//! A device id is bound to its tenant, a row has one session, and the
//! health gate counts outcomes it can trust (this project's rules,
//! update-model.md), with the small hardening of `hello` and
//! `update_result` that goes with them.

use std::time::Duration;

use rmmsim::protocol::{CLOSE_REPLACED, Channel, DeviceId, ErrorCode, ServerMessage};
use rmmsim::server::HealthGate;
use serde_json::{Value, json};

use crate::common::*;
use crate::process::Served;

async fn expect_error(agent: &mut WsAgent, code: ErrorCode) -> String {
    match agent.recv().await {
        ServerMessage::Error { code: got, message } => {
            assert_eq!(got, code, "{message}");
            message
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
}

fn hello(device: &DeviceId, hostname: &str, os: &str, version: &str, key: &SiteKey) -> Value {
    json!({
        "type": "hello", "device_id": device.to_string(), "hostname": hostname,
        "os": os, "arch": "amd64", "version": version, "site_key": key.key,
    })
}

fn rollout<'a>(rollouts: &'a Value, version: &str, platform: &str) -> &'a Value {
    rollouts["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version && r["platform"] == platform)
        .unwrap_or_else(|| panic!("no rollout {version} {platform}: {rollouts}"))
}

#[tokio::test]
async fn a_hello_with_another_client_s_site_key_cannot_take_a_row() {
    let server = TestServer::start().await;
    let victim_key = server.site("acme", "hq", None).await;
    let attacker_key = server.site("evil", "lab", Some(Channel::Beta)).await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    let m = machine();
    let mut victim = server.agent_as(&victim_key, DeviceId::Bare(m), "0.6.40").await;
    let offer = victim.heartbeat("0.6.40").await.expect("the stable build");
    assert_eq!(offer.version, v("0.6.47"));
    let before = server.api().agent(victim.id).await;

    let mut attacker = WsAgent::connect(server.addr).await;
    attacker
        .send_json(hello(&DeviceId::Bare(m), "evil-pc", "windows", "0.6.40", &attacker_key))
        .await;
    let message = expect_error(&mut attacker, ErrorCode::IdentityConflict).await;
    assert!(message.contains(&m.to_string()), "{message}");
    assert_eq!(attacker.close_code().await, Some(1008));

    let after = server.api().agent(victim.id).await;
    for field in [
        "site_id",
        "client_id",
        "hostname",
        "effective_channel",
        "platform",
        "version",
    ] {
        assert_eq!(after[field], before[field], "{field} untouched");
    }
    assert_eq!(after["online"], true);
    assert_eq!(after["site_moves"], json!([]));
    // Still stable: the same stable update again, never the beta build.
    let again = victim.heartbeat("0.6.40").await.expect("the pending update");
    assert_eq!((again.update_id, again.version), (offer.update_id, v("0.6.47")));

    // A row of its own for the same machine under the other client (the
    // legacy form of the id) cannot report on the victim's update.
    let mut twin = server.agent_as(&attacker_key, DeviceId::Legacy(m), "0.6.40").await;
    twin.send_json(json!({
        "type": "update_result", "update_id": offer.update_id, "success": false,
        "version": "0.6.40", "error": "x",
    }))
    .await;
    expect_error(&mut twin, ErrorCode::UnknownUpdate).await;
    let detail = server.api().agent(victim.id).await;
    assert_eq!(detail["pending_update"]["id"], offer.update_id.0);
    assert_eq!(
        detail["pending_update"]["status"], "pending",
        "the report did not end it"
    );
}

#[tokio::test]
async fn a_hello_with_another_site_of_the_same_client_moves_the_row_and_records_it() {
    let server = TestServer::start().await;
    let hq = server.site("acme", "hq", None).await;
    let lab = server.site("acme", "lab", Some(Channel::Beta)).await;
    let m = machine();
    let first = server.agent_as(&hq, DeviceId::Bare(m), "0.6.40").await;
    let id = first.id;
    first.close().await;
    let moved = server.agent_as(&lab, DeviceId::Bare(m), "0.6.40").await;
    assert_eq!(moved.id, id, "the same row");
    let detail = server.api().agent(id).await;
    assert_eq!(detail["site_id"], lab.site_id);
    assert_eq!(detail["effective_channel"], "beta");
    let moves = detail["site_moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{detail}");
    assert_eq!(
        (&moves[0]["from_site_id"], &moves[0]["to_site_id"]),
        (&json!(hq.site_id), &json!(lab.site_id))
    );
    assert!(moves[0]["moved_at"].is_string());
}

#[tokio::test]
async fn a_second_connection_of_a_row_closes_the_first() {
    let server = TestServer::start().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.48", &win(), Channel::Stable).await;
    let m = machine();
    let mut first = server.agent_as(&key, DeviceId::Bare(m), "0.6.47").await;
    let mut second = server.agent_as(&key, DeviceId::Bare(m), "0.6.47").await;
    assert_eq!(first.id, second.id);
    assert_eq!(first.close_code().await, Some(CLOSE_REPLACED));
    assert!(second.heartbeat("0.6.47").await.is_some(), "the newer one is served");
    let (_, stats) = server.api().get("/api/stats").await;
    assert_eq!(
        (stats["agent_rows"].as_u64(), stats["online"].as_u64()),
        (Some(1), Some(1))
    );
    // A manual update reaches the live connection.
    let (s, body) = server
        .api()
        .post(&format!("/api/agents/{}/update", second.id), json!({}))
        .await;
    assert_eq!(body["pushed"], true, "{s} {body}");
    second.close().await;
    let detail = server.api().agent(first.id).await;
    assert_eq!(detail["online"], false, "closing the last one ends the row's session");
}

#[tokio::test]
async fn made_up_enrolments_after_the_publish_do_not_pass_the_gate() {
    let server = TestServer::with_gate(HealthGate {
        min_successes: 3,
        max_failure_rate: 0.5,
        max_new_error_rate: None,
    })
    .await;
    let beta = server.site("acme", "lab", Some(Channel::Beta)).await;
    // One real beta machine, enrolled before the build appears.
    let mut real = server.agent(&beta, "0.6.47").await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    // Rows made after the publish (a later millisecond on the wall clock).
    tokio::time::sleep(Duration::from_millis(5)).await;
    for _ in 0..3 {
        let mut fake = server.agent(&beta, "0.6.47").await;
        let offer = fake.heartbeat("0.6.47").await.unwrap();
        fake.report(&offer, true, "0.6.48").await;
        fake.close().await;
    }
    // The real machine fails once, then succeeds: one machine, one outcome.
    let offer = real.heartbeat("0.6.47").await.unwrap();
    real.report(&offer, false, "0.6.47").await;
    let offer = real.heartbeat("0.6.47").await.unwrap();
    real.report(&offer, true, "0.6.48").await;
    eventually("every outcome on the rollout row", || async {
        let r = server.api().rollouts().await;
        let row = rollout(&r, "0.6.48", "windows-amd64");
        row["successes"] == 4 && row["failures"] == 1
    })
    .await;

    let (s, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.48/promote", json!({}))
        .await;
    assert_eq!(
        (s.as_u16(), &body["error"]["code"]),
        (409, &json!("health_gate")),
        "{body}"
    );
    let gate = &body["error"]["details"];
    let figures = |g: &Value| {
        [
            "successes",
            "failures",
            "counted",
            "ignored",
            "ignored_repeats",
            "ignored_enrolled_after_publish",
        ]
        .map(|k| g[k].as_u64().unwrap_or(u64::MAX))
    };
    assert_eq!(figures(gate), [1, 0, 1, 4, 1, 3], "{gate}");
    let r = server.api().rollouts().await;
    assert_eq!(
        figures(&rollout(&r, "0.6.48", "windows-amd64")["gate"]),
        [1, 0, 1, 4, 1, 3]
    );

    let (s, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.48/promote", json!({ "force": true }))
        .await;
    assert_eq!(s.as_u16(), 200, "{body}");
    assert_eq!(
        (body["forced"].as_bool(), body["gate"]["ignored"].as_u64()),
        (Some(true), Some(4))
    );
}

#[tokio::test]
async fn an_update_id_out_of_range_is_an_invalid_message_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let key = server.site("acme", "hq", None).await;
    let mut a = server.agent(&key, "0.6.47").await;
    for id in [u64::MAX, 1 << 63] {
        a.send_text(&format!(
            r#"{{"type":"update_result","update_id":{id},"success":true,"version":"0.6.48"}}"#
        ))
        .await;
        let message = expect_error(&mut a, ErrorCode::InvalidMessage).await;
        assert!(message.contains("out of range"), "{message}");
    }
    assert_eq!(a.heartbeat("0.6.47").await, None, "still served");
}

#[tokio::test]
async fn a_hostname_with_control_characters_is_refused_at_hello() {
    let server = TestServer::start().await;
    let key = server.site("acme", "hq", None).await;
    let mut a = WsAgent::connect(server.addr).await;
    for bad in ["pc\n[ERROR] forged", "pc\u{1b}[31m", "pc\u{0}", "pc\u{85}"] {
        a.send_json(hello(&DeviceId::Bare(machine()), bad, "windows", "0.6.47", &key))
            .await;
        let message = expect_error(&mut a, ErrorCode::InvalidMessage).await;
        assert!(message.contains("control characters"), "{message}");
    }
    assert!(server.api().agents().await.is_empty(), "no row made");
    a.hello_as(DeviceId::Bare(machine()), "0.6.47", &key.key).await;
}

#[tokio::test]
async fn a_hello_on_another_platform_re_resolves_the_pending_update() {
    let server = TestServer::start().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.58", &win(), Channel::Stable).await;
    server.publish("0.6.57", &linux(), Channel::Stable).await;
    let m = machine();
    let mut a = server.agent_as(&key, DeviceId::Bare(m), "0.6.40").await;
    let windows = a.heartbeat("0.6.40").await.unwrap();
    assert!(windows.url.contains("windows-amd64"), "{}", windows.url);
    a.close().await;

    let mut a = WsAgent::connect(server.addr).await;
    a.send_json(hello(&DeviceId::Bare(m), "pc", "linux", "0.6.40", &key))
        .await;
    let ServerMessage::Welcome { agent_id } = a.recv().await else {
        panic!("not admitted")
    };
    let offer = a.heartbeat("0.6.40").await.expect("the Linux build");
    assert_eq!(offer.version, v("0.6.57"));
    assert!(offer.url.contains("linux-amd64"), "{}", offer.url);
    assert_ne!(offer.update_id, windows.update_id);
    let detail = server.api().agent(agent_id).await;
    let first = &detail["updates"][0];
    assert_eq!(
        (&first["id"], &first["status"]),
        (&json!(windows.update_id.0), &json!("superseded"))
    );
    assert!(first["error"].as_str().unwrap().contains("linux-amd64"), "{first}");
}

/// A site of `client` on a `rmmsim serve` process.
async fn site_on(serve: &Served, client: u64, name: &str) -> SiteKey {
    let (_, site) = serve
        .api()
        .post(&format!("/api/clients/{client}/sites"), json!({ "name": name }))
        .await;
    SiteKey {
        key: site["site_key"].as_str().unwrap().into(),
        site_id: site["id"].as_u64().unwrap(),
        client_id: client,
    }
}

#[tokio::test]
async fn serve_caps_enrolments_per_site_key_per_minute() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Served::command(dir.path());
    cmd.args(["--max-enrolments-per-minute", "2"]);
    let serve = Served::spawn(cmd);
    let (_, client) = serve.api().post("/api/clients", json!({ "name": "acme" })).await;
    let client = client["id"].as_u64().unwrap();
    let (hq, branch) = (
        site_on(&serve, client, "hq").await,
        site_on(&serve, client, "branch").await,
    );
    let first = DeviceId::Bare(machine());
    for device in [first, DeviceId::Bare(machine())] {
        WsAgent::connect(serve.addr)
            .await
            .hello_as(device, "0.6.47", &hq.key)
            .await;
    }
    let mut third = WsAgent::connect(serve.addr).await;
    third
        .send_json(hello(&DeviceId::Bare(machine()), "pc3", "windows", "0.6.47", &hq))
        .await;
    let message = expect_error(&mut third, ErrorCode::EnrolmentRateLimited).await;
    assert!(message.contains("2 new agents"), "{message}");
    assert_eq!(third.close_code().await, Some(1008));
    // A row that exists is not an enrolment; another site key has its own cap.
    WsAgent::connect(serve.addr)
        .await
        .hello_as(first, "0.6.47", &hq.key)
        .await;
    WsAgent::connect(serve.addr)
        .await
        .hello_as(DeviceId::Bare(machine()), "0.6.47", &branch.key)
        .await;
    assert_eq!(serve.api().agents().await.len(), 3);
}
