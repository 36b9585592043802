//! U13, log feedback: agents' `log` frames grouped by signature per agent
//! version, kept across restarts; the server's own errors under its
//! pseudo-agent; the API's filters; and the field-health gate (this
//! project's addition).

use std::time::Duration;

use hyper::StatusCode;
use rmmsim::protocol::{Channel, DeviceId};
use rmmsim::server::{HealthGate, SERVER_HOSTNAME};
use serde_json::{Value, json};

use crate::common::*;
use crate::process::Served;

/// Sends a `log` frame, then a heartbeat: its `ack` says the frame was handled.
async fn log(agent: &mut WsAgent, version: &str, level: &str, message: &str) {
    agent
        .send_json(json!({ "type": "log", "level": level, "message": message }))
        .await;
    agent.heartbeat(version).await;
}

async fn signatures(api: &Api, query: &str) -> Vec<Value> {
    let (s, body) = api.get(&format!("/api/logs/signatures{query}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

async fn signature(api: &Api, id: &Value) -> Value {
    let (s, body) = api.get(&format!("/api/logs/signatures/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

/// (version, count, machines) of each of a signature's versions.
fn per_version(detail: &Value) -> Vec<(String, u64, u64)> {
    let rows = detail["versions"].as_array().unwrap();
    rows.iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (r["version"].as_str().unwrap().to_owned(), n("count"), n("machines"))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn u13_a_signature_is_stored_per_version_with_its_machines() {
    let server = MemServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    let mut a = server.agent(&key, "0.6.47").await;
    let mut b = server.agent(&key, "0.6.47").await;
    let mut c = server.agent(&key, "0.6.48").await;
    log(&mut a, "0.6.47", "ERROR", "disk C: 91% full (1204 MB free)").await;
    log(&mut a, "0.6.47", "error", "disk C: 97% full (12 MB free)").await;
    log(&mut b, "0.6.47", "error", "disk C: 99% full (3 MB free)").await;
    // Another drive is another signature: a letter is no value.
    log(&mut b, "0.6.47", "error", "disk D: 99% full (3 MB free)").await;
    log(&mut c, "0.6.48", "error", "disk C: 50% full (9000 MB free)").await;
    log(&mut c, "0.6.48", "info", "heartbeat sent in 12ms").await;
    let api = server.api();
    let rows = signatures(&api, "").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let disk = &rows[0];
    assert_eq!(disk["signature"], "disk C: <num>% full (<num> MB free)");
    assert_eq!(disk["count"], 4);
    assert_eq!(disk["first_version"], "0.6.47");
    assert_eq!(disk["sample"], "disk C: 91% full (1204 MB free)");
    let detail = signature(&api, &disk["id"]).await;
    assert_eq!(per_version(&detail), [("0.6.47".into(), 3, 2), ("0.6.48".into(), 1, 1)]);
    let (_, stats) = api.get("/api/stats").await;
    assert_eq!(stats["counters"]["logs"], 6);
}

#[tokio::test(start_paused = true)]
async fn u13_signatures_survive_a_restart_and_machines_are_not_counted_twice() {
    let server = MemServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    let device = DeviceId::Bare(machine());
    let mut a = server.agent_as(&key, device, "0.6.47").await;
    log(&mut a, "0.6.47", "error", "update 17 failed: exit code 0x80070005").await;
    let api = server.api();
    let before = signatures(&api, "").await;
    a.close().await;
    let server = server.restart().await;
    let api = server.api();
    assert_eq!(signatures(&api, "").await, before, "the same rows after the restart");
    let mut a = server.agent_as(&key, device, "0.6.47").await;
    let mut b = server.agent(&key, "0.6.47").await;
    log(&mut a, "0.6.47", "error", "update 18 failed: exit code 0x80070002").await;
    log(&mut b, "0.6.47", "error", "update 19 failed: exit code 0x1").await;
    let detail = signature(&api, &before[0]["id"]).await;
    assert_eq!(per_version(&detail), [("0.6.47".into(), 3, 2)]);
}

#[tokio::test(start_paused = true)]
async fn u13_the_server_pseudo_agent_receives_a_server_error() {
    let server = MemServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    let _real = server.agent(&key, "0.6.47").await;
    // A flood of refused hellos: one signature, counted.
    for _ in 0..20 {
        let mut intruder = server.connect().await;
        intruder
            .send_json(json!({
                "type": "hello", "device_id": machine().to_string(), "hostname": "x",
                "os": "windows", "arch": "amd64", "version": "0.6.47", "site_key": "wrong",
            }))
            .await;
        assert_eq!(intruder.close_code().await, Some(1008));
    }
    let api = server.api();
    let rows = signatures(&api, "?level=warn").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["signature"], "hello from <uuid> refused: unknown site key");
    assert_eq!(rows[0]["count"], 20);
    assert_eq!(rows[0]["first_version"], env!("CARGO_PKG_VERSION"));
    let detail = signature(&api, &rows[0]["id"]).await;
    assert_eq!(per_version(&detail), [(env!("CARGO_PKG_VERSION").into(), 20, 1)]);
    // The pseudo-agent is listed, marked, and counted nowhere else.
    let (_, agents) = api.get("/api/agents").await;
    let agents = agents.as_array().unwrap();
    let pseudo: Vec<&Value> = agents.iter().filter(|a| a["pseudo"] == true).collect();
    assert_eq!(agents.len(), 2, "the pseudo-agent and the real one");
    assert_eq!(pseudo.len(), 1);
    assert_eq!(
        (&pseudo[0]["id"], &pseudo[0]["hostname"]),
        (&json!(0), &json!(SERVER_HOSTNAME))
    );
    assert_eq!(api.agent(rmmsim::protocol::AgentId(0)).await["pseudo"], true);
    let (_, stats) = api.get("/api/stats").await;
    assert_eq!(
        (stats["agent_rows"].clone(), stats["online"].clone()),
        (json!(1), json!(1))
    );
    let (s, _) = api.post("/api/agents/0/update", json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "never offered an update");
}

#[tokio::test(start_paused = true)]
async fn u13_new_in_names_the_signatures_a_version_introduced() {
    let server = MemServer::mem().await;
    let key = server.site("acme", "lab", Some(Channel::Beta)).await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    let mut a = server.agent(&key, "0.6.47").await;
    log(&mut a, "0.6.47", "error", "old trouble in /var/lib/rmm/a.db").await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    let offer = a.heartbeat("0.6.47").await.expect("the beta build");
    a.report(&offer, true, "0.6.48").await;
    a.heartbeat("0.6.48").await;
    log(&mut a, "0.6.48", "error", "old trouble in /var/lib/rmm/b.db").await;
    log(&mut a, "0.6.48", "error", "new trouble with service \"Spooler\"").await;
    let api = server.api();
    let new = signatures(&api, "?new_in=0.6.48").await;
    let names: Vec<&str> = new.iter().map(|r| r["signature"].as_str().unwrap()).collect();
    assert_eq!(names, ["new trouble with service \"<str>\""]);
    let old = signatures(&api, "?new_in=0.6.47").await;
    assert_eq!(old[0]["signature"], "old trouble in <path>");
    assert_eq!(signatures(&api, "?version=0.6.48").await.len(), 2);
    assert_eq!(signatures(&api, "?version=0.6.48&new_in=0.6.47").await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn u13_signature_filters_narrow_and_bad_values_answer_400() {
    let server = MemServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    let mut a = server.agent(&key, "0.6.47").await;
    log(&mut a, "0.6.47", "error", "first").await;
    a.close().await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let mut a = server.agent(&key, "0.6.47").await;
    log(&mut a, "0.6.47", "Warn", "second").await;
    let api = server.api();
    assert_eq!(signatures(&api, "?level=WARN").await[0]["signature"], "second");
    assert_eq!(signatures(&api, "?level=error").await[0]["signature"], "first");
    assert_eq!(signatures(&api, "?since=2026-05-28T00:30:00Z").await.len(), 1);
    assert_eq!(signatures(&api, "?since=2026-05-27T00:00:00Z").await.len(), 2);
    assert!(signatures(&api, "?version=9.9.9").await.is_empty());
    for bad in [
        "?version=0.6",
        "?new_in=latest",
        "?since=yesterday",
        "?level=",
        "?colour=red",
    ] {
        let (s, body) = api.get(&format!("/api/logs/signatures{bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{bad}: {body}");
    }
    let (s, body) = api.get("/api/logs/signatures/abc").await;
    assert_eq!(
        (s, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_path"))
    );
    let (s, body) = api.get("/api/logs/signatures/99").await;
    assert_eq!(
        (s, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let (s, _) = api.without_token().get("/api/logs/signatures").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// One success passes the beta part; new errors at most 2 per machine-hour.
const FIELD_GATE: HealthGate = HealthGate {
    min_successes: 1,
    max_failure_rate: 0.5,
    max_new_error_rate: Some(2.0),
};

/// A beta agent updated to 0.6.48 and kept on it for an hour, heartbeating
/// every 4 minutes (under the idle timeout).
async fn an_hour_on_0_6_48(server: &MemServer) -> WsAgent {
    let key = server.site("acme", "lab", Some(Channel::Beta)).await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    let mut a = server.agent(&key, "0.6.47").await;
    let offer = a.heartbeat("0.6.47").await.expect("the beta build");
    a.report(&offer, true, "0.6.48").await;
    a.heartbeat("0.6.48").await;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_secs(240)).await;
        a.heartbeat("0.6.48").await;
    }
    a
}

#[tokio::test(start_paused = true)]
async fn u13_u09_field_health_gate_refuses_a_build_with_frequent_new_errors() {
    let server = MemServer::mem_with_gate(FIELD_GATE).await;
    let mut a = an_hour_on_0_6_48(&server).await;
    for n in 0..3 {
        log(&mut a, "0.6.48", "error", &format!("service {n} crashed")).await;
    }
    let api = server.api();
    let (s, body) = api.post("/api/updates/rollouts/0.6.48/promote", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "health_gate");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`service <num> crashed` 3.00/machine-hour"),
        "{message}"
    );
    let details = &body["error"]["details"];
    assert_eq!(
        (&details["machine_hours"], &details["max_new_error_rate"]),
        (&json!(1.0), &json!(2.0))
    );
    assert_eq!(details["new_errors"][0]["over"], true);
    let (s, body) = api
        .post("/api/updates/rollouts/0.6.48/promote", json!({ "force": true }))
        .await;
    assert_eq!((s, &body["forced"]), (StatusCode::OK, &json!(true)), "{body}");
}

#[tokio::test(start_paused = true)]
async fn u13_u09_field_health_gate_passes_rare_new_errors_and_is_off_by_default() {
    let server = MemServer::mem_with_gate(FIELD_GATE).await;
    let mut a = an_hour_on_0_6_48(&server).await;
    log(&mut a, "0.6.48", "error", "service 1 crashed").await;
    log(&mut a, "0.6.48", "warn", "service 1 slow").await;
    let api = server.api();
    let rollouts = api.rollouts().await;
    let figures = &rollouts["rollouts"][0]["gate"];
    assert_eq!(figures["new_errors"][0]["rate_per_machine_hour"], 1.0, "{rollouts}");
    assert_eq!(figures["new_errors"][0]["over"], false, "{rollouts}");
    let (s, body) = api.post("/api/updates/rollouts/0.6.48/promote", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Without the limit the same field never refuses.
    let server = MemServer::mem_with_gate(HealthGate {
        max_new_error_rate: None,
        ..FIELD_GATE
    })
    .await;
    let mut a = an_hour_on_0_6_48(&server).await;
    for _ in 0..50 {
        log(&mut a, "0.6.48", "error", "service 1 crashed").await;
    }
    let (s, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.48/promote", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn u13_serve_sets_the_field_gate_and_counts_refused_enrolments_under_the_pseudo_agent() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Served::command(dir.path());
    bad.args(["--max-new-error-rate", "-1"]);
    let status = bad.stderr(std::process::Stdio::null()).status().unwrap();
    assert_eq!(status.code(), Some(2), "a negative rate is bad usage");
    let mut cmd = Served::command(dir.path());
    cmd.args(["--max-new-error-rate", "0.5", "--max-enrolments-per-minute", "1"]);
    let serve = Served::spawn(cmd);
    let api = serve.api();
    assert_eq!(api.rollouts().await["gate"]["max_new_error_rate"], 0.5);
    let (_, client) = api.post("/api/clients", json!({ "name": "acme" })).await;
    let path = format!("/api/clients/{}/sites", client["id"]);
    let (_, site) = api.post(&path, json!({ "name": "hq" })).await;
    let key = site["site_key"].as_str().unwrap();
    let mut first = WsAgent::connect(serve.addr).await;
    first.hello_as(DeviceId::Bare(machine()), "0.6.47", key).await;
    for _ in 0..3 {
        let mut refused = WsAgent::connect(serve.addr).await;
        refused
            .send_json(json!({
                "type": "hello", "device_id": machine().to_string(), "hostname": "pc",
                "os": "windows", "arch": "amd64", "version": "0.6.47", "site_key": key,
            }))
            .await;
        assert_eq!(refused.close_code().await, Some(1008));
    }
    let rows = signatures(&api, "?level=warn").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0]["signature"],
        "hello from <uuid> refused: site <num> enrolled <num> new agents in the last minute; try again later"
    );
    assert_eq!(rows[0]["count"], 3);
}
