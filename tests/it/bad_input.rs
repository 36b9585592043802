//! Bad input gets a clear error, and the server keeps serving everyone else
//! with no row lost or changed.

use futures_util::future::join_all;
use hyper::{Method, StatusCode};
use rmmsim::protocol::{Channel, ErrorCode, MAX_FRAME_BYTES, ServerMessage};
use serde_json::{Value, json};

use crate::common::*;

async fn expect_error(agent: &mut WsAgent, code: ErrorCode) -> String {
    match agent.recv().await {
        ServerMessage::Error { code: got, message } => {
            assert_eq!(got, code, "{message}");
            assert!(!message.is_empty());
            message
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
}

/// A server with one well-behaved agent; the test checks it is unharmed.
async fn setup() -> (MemServer, SiteKey, WsAgent, Vec<Value>) {
    let server = TestServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.48", &win(), Channel::Stable).await;
    let mut good = server.agent(&key, "0.6.47").await;
    assert!(good.heartbeat("0.6.47").await.is_some());
    let rows = server.api().agents().await;
    (server, key, good, rows)
}

async fn still_fine(server: &MemServer, good: &mut WsAgent, rows: &[Value]) {
    assert!(
        good.heartbeat("0.6.47").await.is_some(),
        "the other agent is still served"
    );
    let now = server.api().agents().await;
    let keep = |r: &Value| json!([r["id"], r["device_id"], r["version"], r["site_id"], r["enrolled_at"]]);
    for row in rows {
        let same = now.iter().find(|n| n["id"] == row["id"]).expect("no row lost");
        assert_eq!(keep(same), keep(row), "row unchanged");
    }
}

#[tokio::test(start_paused = true)]
async fn malformed_json_unknown_type_and_bad_fields_get_error_frames() {
    let (server, key, mut good, rows) = setup().await;
    let mut a = server.connect().await;
    a.send_text("{not json").await;
    assert!(expect_error(&mut a, ErrorCode::BadJson).await.contains("not JSON"));
    a.send_json(json!({ "type": "reboot" })).await;
    assert!(expect_error(&mut a, ErrorCode::UnknownType).await.contains("reboot"));
    a.send_json(json!({ "type": "hello", "device_id": "not-a-uuid" })).await;
    expect_error(&mut a, ErrorCode::InvalidMessage).await;
    // The connection is still usable: a good hello works after all that.
    a.hello_as(rmmsim::protocol::DeviceId::Bare(machine()), "0.6.47", &key.key)
        .await;
    a.send_json(json!({ "type": "heartbeat", "version": "0.6" })).await;
    assert!(
        expect_error(&mut a, ErrorCode::InvalidMessage)
            .await
            .contains("invalid version")
    );
    a.send_json(json!({ "type": "hello", "device_id": machine().to_string(), "hostname": "x", "os": "windows", "arch": "amd64", "version": "0.6.47", "site_key": key.key })).await;
    expect_error(&mut a, ErrorCode::AlreadyHello).await;
    a.send_json(json!({ "type": "update_result", "update_id": 999_999, "success": true, "version": "0.6.48" }))
        .await;
    expect_error(&mut a, ErrorCode::UnknownUpdate).await;
    still_fine(&server, &mut good, &rows).await;
}

#[tokio::test(start_paused = true)]
async fn a_report_on_another_machine_s_finished_update_is_refused() {
    let (server, key, mut good, rows) = setup().await;
    // `good` was sent an update; it succeeds and ends.
    let offer = good.heartbeat("0.6.47").await.unwrap();
    good.report(&offer, true, "0.6.48").await;
    let mut other = server.agent(&key, "0.6.47").await;
    other
        .send_json(
            json!({ "type": "update_result", "update_id": offer.update_id, "success": true, "version": "0.6.48" }),
        )
        .await;
    expect_error(&mut other, ErrorCode::UnknownUpdate).await;
    // The machine it was sent to may repeat its report harmlessly.
    good.report(&offer, true, "0.6.48").await;
    assert_eq!(good.heartbeat("0.6.48").await, None);
    let detail = server.api().agent(good.id).await;
    assert_eq!(detail["updates"][0]["status"], "succeeded");
    let _ = rows;
}

#[tokio::test(start_paused = true)]
async fn a_frame_before_hello_is_refused_and_admits_nothing() {
    let (server, _key, mut good, rows) = setup().await;
    let mut a = server.connect().await;
    a.send_json(json!({ "type": "heartbeat", "version": "0.6.47" })).await;
    expect_error(&mut a, ErrorCode::HelloRequired).await;
    still_fine(&server, &mut good, &rows).await;
    assert_eq!(server.api().agents().await.len(), rows.len());
}

#[tokio::test(start_paused = true)]
async fn a_wrong_site_key_is_refused_and_the_connection_closed() {
    let (server, _key, mut good, rows) = setup().await;
    let mut a = server.connect().await;
    a.send_json(json!({ "type": "hello", "device_id": machine().to_string(), "hostname": "x", "os": "windows", "arch": "amd64", "version": "0.6.47", "site_key": "wrong" })).await;
    expect_error(&mut a, ErrorCode::UnknownSiteKey).await;
    assert_eq!(a.recv_or_close().await, None, "closed after the refusal");
    still_fine(&server, &mut good, &rows).await;
    assert_eq!(
        server.api().agents().await.len(),
        rows.len(),
        "no row for the refused agent"
    );
}

#[tokio::test(start_paused = true)]
async fn binary_and_oversized_frames_are_refused() {
    let (server, key, mut good, rows) = setup().await;
    let mut a = server.agent(&key, "0.6.47").await;
    a.send_binary(vec![1, 2, 3]).await;
    expect_error(&mut a, ErrorCode::BinaryFrame).await;
    assert!(
        a.heartbeat("0.6.47").await.is_some(),
        "still usable after a binary frame"
    );
    let huge = format!(
        r#"{{"type":"log","level":"info","message":"{}"}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    );
    a.send_text(&huge).await;
    expect_error(&mut a, ErrorCode::FrameTooLarge).await;
    assert_eq!(
        a.close_code().await,
        Some(1009),
        "closed with 1009 after an oversized frame"
    );
    // Far larger: the server stops reading mid-frame and drops the
    // connection; the agent may or may not see the error first.
    let mut b = server.agent(&key, "0.6.47").await;
    if b.try_send_text(&"x".repeat(64 * MAX_FRAME_BYTES)).await.is_ok() {
        while b.recv_or_close().await.is_some() {}
    }
    still_fine(&server, &mut good, &rows).await;
}

#[tokio::test(start_paused = true)]
async fn api_bad_input_gets_4xx_json_and_changes_nothing() {
    let (server, key, mut good, rows) = setup().await;
    let api = server.api();
    let id = good.id;
    let cases: Vec<(Method, String, Option<&str>, StatusCode, &str)> = vec![
        (
            Method::GET,
            "/api/agents/999".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/api/agents".into(),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/api/agents/abc".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            Method::POST,
            "/api/agents/999/update".into(),
            Some("{}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            format!("/api/agents/{id}/update"),
            Some("{\"version\":"),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            Method::POST,
            format!("/api/agents/{id}/update"),
            Some(r#"{"version":"0.6"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            Method::POST,
            format!("/api/agents/{id}/update"),
            Some(r#"{"verison":"0.6.48"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            Method::PUT,
            format!("/api/agents/{id}/channel"),
            Some(r#"{"channel":"alpha"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            Method::PUT,
            format!("/api/agents/{id}/channel"),
            Some("{}"),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            Method::PUT,
            "/api/sites/99/channel".into(),
            Some(r#"{"channel":"beta"}"#),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/updates/rollouts/0.6/promote".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            Method::POST,
            "/api/updates/rollouts/0.9.9/promote".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/updates/rollouts/0.9.9/rollback".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/updates/rollouts/0.6.48/promote".into(),
            Some(r#"{"os":"windows"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            Method::POST,
            "/api/clients".into(),
            Some(r#"{"name":""}"#),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            Method::POST,
            "/api/clients".into(),
            Some(r#"{"name":"a\tb"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            Method::POST,
            "/api/clients/1/sites".into(),
            Some(r#"{"name":"lab\u0007"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            Method::POST,
            "/api/clients".into(),
            Some(r#"{"name":"acme"}"#),
            StatusCode::CONFLICT,
            "client_exists",
        ),
        (
            Method::POST,
            "/api/clients/42/sites".into(),
            Some(r#"{"name":"x"}"#),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/api/nothing".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    let results =
        join_all(cases.iter().map(|(m, path, body, _, _)| {
            api.raw(m.clone(), path, body.map(|b| hyper::body::Bytes::from(b.to_owned())))
        }))
        .await;
    for ((method, path, _, status, code), (got, bytes)) in cases.iter().zip(results) {
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{method} {path}: not JSON"));
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{method} {path}: {body}"
        );
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The message names the bad input once.
    let (_, bytes) = api.raw(Method::POST, "/api/updates/rollouts/0.6/promote", None).await;
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(message.matches("invalid version `0.6`").count(), 1, "{message}");
    let _ = key;
    still_fine(&server, &mut good, &rows).await;
}

#[tokio::test(start_paused = true)]
async fn admin_routes_need_the_right_token_and_agent_routes_need_none() {
    let (server, _key, mut good, rows) = setup().await;
    for api in [server.api().without_token(), server.api().with_token("wrong")] {
        for (method, path) in [
            (Method::GET, "/api/agents"),
            (Method::POST, "/api/updates/rollouts/0.6.48/rollback"),
            (Method::POST, "/api/clients"),
        ] {
            let (s, bytes) = api.raw(method.clone(), path, Some("{\"name\":\"evil\"}".into())).await;
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                (s, body["error"]["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{method} {path}"
            );
        }
    }
    // Nothing happened: no rollback, no client.
    let (_, rollouts) = server.api().get("/api/updates/rollouts").await;
    assert_eq!(rollouts["blocked"], json!([]));
    let (_, clients) = server.api().get("/api/clients").await;
    assert_eq!(clients.as_array().unwrap().len(), 1);
    let (s, _) = server.api().without_token().raw(Method::GET, "/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    still_fine(&server, &mut good, &rows).await;
}
