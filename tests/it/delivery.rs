//! U1–U5: push on heartbeat, channel resolution, needs_update, re-dispatch,
//! manual updates.

use hyper::StatusCode;
use rmmsim::agent::url_path;
use rmmsim::protocol::sha256_hex;
use rmmsim::protocol::{Channel, ServerMessage};
use serde_json::json;

use crate::common::*;

#[tokio::test(start_paused = true)]
async fn u01_every_heartbeat_is_answered_and_a_newer_build_is_pushed() {
    let server = TestServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    let mut agent = server.agent(&key, "0.6.47").await;
    assert_eq!(agent.heartbeat("0.6.47").await, None, "nothing newer yet");

    let published = server.publish("0.6.48", &win(), Channel::Stable).await;
    let offer = agent
        .heartbeat("0.6.47")
        .await
        .expect("the server pushes the newer build on the heartbeat");
    assert_eq!(offer.version, v("0.6.48"));
    assert_eq!(offer.sha256, published.sha256.unwrap());
    assert_eq!(offer.size, published.size);
    assert!(
        offer.url.ends_with("/downloads/gururmm-agent-windows-amd64-0.6.48.exe"),
        "{}",
        offer.url
    );
    // The URL serves exactly the bytes the digest describes.
    let (status, bytes) = server.api().raw(hyper::Method::GET, url_path(&offer.url), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256_hex(&bytes), offer.sha256);
    // Nothing arrives between heartbeats: the agent never asks, the server only answers them.
    assert_eq!(agent.try_recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn u02_channel_resolves_agent_then_site_then_client_then_stable() {
    let server = TestServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    let api = server.api();
    server.publish("0.6.47", &win(), Channel::Stable).await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    let mut agent = server.agent(&key, "0.6.47").await;
    let id = agent.id;

    // Nothing set anywhere: stable.
    assert_eq!(api.agent(id).await["effective_channel"], "stable");
    assert_eq!(agent.heartbeat("0.6.47").await, None);
    // The client says beta: the agent inherits it through its site.
    let (s, _) = api
        .put(
            &format!("/api/clients/{}/channel", key.client_id),
            json!({ "channel": "beta" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.agent(id).await["effective_channel"], "beta");
    let offer = agent.heartbeat("0.6.47").await;
    assert_eq!(update_version(&offer).as_deref(), Some("0.6.48"));
    // The site says stable: it overrides the client.
    api.put(
        &format!("/api/sites/{}/channel", key.site_id),
        json!({ "channel": "stable" }),
    )
    .await;
    assert_eq!(api.agent(id).await["effective_channel"], "stable");
    // The agent says beta: it overrides the site.
    api.put(&format!("/api/agents/{id}/channel"), json!({ "channel": "beta" }))
        .await;
    assert_eq!(api.agent(id).await["effective_channel"], "beta");
    // Cleared again: back to the site's stable.
    let (s, body) = api
        .put(&format!("/api/agents/{id}/channel"), json!({ "channel": null }))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["channel"], serde_json::Value::Null);
    assert_eq!(body["effective_channel"], "stable");
}

#[tokio::test(start_paused = true)]
async fn u03_only_a_newer_target_is_needed_and_newer_agents_are_left_alone() {
    let server = TestServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.50", &win(), Channel::Stable).await;
    let mut older = server.agent(&key, "0.6.49").await;
    let mut current = server.agent(&key, "0.6.50").await;
    let mut newer = server.agent(&key, "0.6.51").await;
    assert_eq!(
        update_version(&older.heartbeat("0.6.49").await).as_deref(),
        Some("0.6.50")
    );
    assert_eq!(current.heartbeat("0.6.50").await, None, "on the target: nothing needed");
    assert_eq!(
        newer.heartbeat("0.6.51").await,
        None,
        "ahead of the target: no downgrade"
    );
}

#[tokio::test(start_paused = true)]
async fn u04_an_update_not_applied_is_sent_again_until_it_ends() {
    let server = TestServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.48", &win(), Channel::Stable).await;
    let api = server.api();
    let mut agent = server.agent(&key, "0.6.47").await;

    let first = agent.heartbeat("0.6.47").await.unwrap();
    let again = agent
        .heartbeat("0.6.47")
        .await
        .expect("re-dispatched on the next heartbeat");
    assert_eq!(again, first, "the same update, same id");
    let pending = &api.agent(agent.id).await["pending_update"];
    assert_eq!(pending["dispatches"], 2);
    assert_eq!(pending["status"], "pending");

    // A reported failure ends it; the next heartbeat decides afresh with a new update.
    agent.report(&first, false, "0.6.47").await;
    let fresh = agent.heartbeat("0.6.47").await.unwrap();
    assert_ne!(fresh.update_id, first.update_id);
    let detail = api.agent(agent.id).await;
    let statuses: Vec<_> = detail["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("failed"), json!("pending")]);
    assert_eq!(detail["updates"][0]["error"], "install failed");

    // Coming back on the target version ends it as succeeded; nothing more is sent.
    assert_eq!(agent.heartbeat("0.6.48").await, None);
    let detail = api.agent(agent.id).await;
    assert_eq!(detail["updates"][1]["status"], "succeeded");
    assert_eq!(detail["pending_update"], serde_json::Value::Null);
    let (_, stats) = api.get("/api/stats").await;
    assert_eq!(stats["counters"]["redispatches"], 1);
    assert_eq!(stats["counters"]["dispatches"], 2);
}

#[tokio::test(start_paused = true)]
async fn u05_manual_update_is_pushed_now_or_on_the_next_heartbeat() {
    let server = TestServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    let api = server.api();
    server.publish("0.6.46", &win(), Channel::Stable).await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    let mut agent = server.agent(&key, "0.6.47").await;
    assert_eq!(agent.heartbeat("0.6.47").await, None);

    // A named version, even a beta one for a stable agent: the admin's call. Pushed at once.
    let (s, body) = api
        .post(
            &format!("/api/agents/{}/update", agent.id),
            json!({ "version": "0.6.48" }),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["pushed"], true);
    assert_eq!(body["update"]["reason"], "manual");
    match agent.recv().await {
        ServerMessage::Update(u) => assert_eq!(u.version, v("0.6.48")),
        other => panic!("expected a pushed update, got {other:?}"),
    }

    // Offline: recorded, then sent on the next heartbeat after reconnecting (U4).
    let id = agent.id;
    let device = agent.device.unwrap();
    agent.close().await;
    eventually("the agent is offline", || async {
        api.agent(id).await["online"] == false
    })
    .await;
    let (s, body) = api
        .post(&format!("/api/agents/{id}/update"), json!({ "version": "0.6.46" }))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["pushed"], false);
    let mut agent = server.agent_as(&key, device, "0.6.47").await;
    assert_eq!(
        update_version(&agent.heartbeat("0.6.47").await).as_deref(),
        Some("0.6.46")
    );

    // Refusals: a version with no build, the version it already runs.
    let (s, _) = api
        .post(&format!("/api/agents/{id}/update"), json!({ "version": "0.9.0" }))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body) = api
        .post(&format!("/api/agents/{id}/update"), json!({ "version": "0.6.47" }))
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_on_version"))
    );
    // No version: the latest of its channel (stable: 0.6.47, which it runs).
    let (s, _) = api.post(&format!("/api/agents/{id}/update"), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test(start_paused = true)]
async fn u04_a_pending_beta_update_is_not_resent_once_the_agent_is_stable() {
    let server = TestServer::mem().await;
    let key = server.site("acme", "lab", Some(Channel::Beta)).await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    let api = server.api();
    let mut agent = server.agent(&key, "0.6.47").await;
    assert_eq!(
        update_version(&agent.heartbeat("0.6.47").await).as_deref(),
        Some("0.6.48")
    );
    // The site goes back to stable while the agent is still installing.
    api.put(
        &format!("/api/sites/{}/channel", key.site_id),
        json!({ "channel": "stable" }),
    )
    .await;
    assert_eq!(
        agent.heartbeat("0.6.47").await,
        None,
        "a stable agent is never sent a beta build (U7)"
    );
    let detail = api.agent(agent.id).await;
    assert_eq!(detail["updates"][0]["status"], "superseded");
    assert_eq!(detail["updates"][0]["error"], "its channel no longer allows it");
    // A manual update is the administrator's choice and is re-sent regardless.
    let (s, _) = api
        .post(
            &format!("/api/agents/{}/update", agent.id),
            json!({ "version": "0.6.48" }),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    agent.recv().await;
    assert_eq!(
        update_version(&agent.heartbeat("0.6.47").await).as_deref(),
        Some("0.6.48")
    );
}
