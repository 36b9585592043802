//! A file database survives a restart of the server with everything intact.

use rmmsim::protocol::Channel;
use rmmsim::server::HealthGate;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn state_survives_a_restart_agents_pending_updates_blocked_versions_rollouts() {
    let gate = HealthGate {
        min_successes: 0,
        max_failure_rate: 1.0,
        max_new_error_rate: None,
    };
    let server = TestServer::with_gate(gate).await;
    let key = server.site("acme", "hq", Some(Channel::Beta)).await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    server.publish("0.6.49", &win(), Channel::Beta).await;
    let mut agent = server.agent(&key, "0.6.47").await;
    let offer = agent.heartbeat("0.6.47").await.unwrap();
    assert_eq!(offer.version, v("0.6.49"));
    let api = server.api();
    api.post("/api/updates/rollouts/0.6.48/promote", json!({})).await;
    api.post("/api/updates/rollouts/0.6.49/rollback", json!({})).await;
    let mut second = server.agent(&key, "0.6.47").await;
    let pending = second.heartbeat("0.6.47").await.unwrap();
    assert_eq!(pending.version, v("0.6.48"));
    let device = second.device.unwrap();
    let before_agents = api.agents().await;
    let before_rollouts = api.rollouts().await;
    let (_, before_clients) = api.get("/api/clients").await;
    agent.close().await;
    second.close().await;

    let dir = server.stop().await;
    let server = TestServer::start_in(dir, gate).await;
    let api = server.api();
    let strip_online = |mut rows: Vec<serde_json::Value>| {
        for r in &mut rows {
            r.as_object_mut().unwrap().remove("online");
        }
        rows
    };
    assert_eq!(strip_online(api.agents().await), strip_online(before_agents));
    assert_eq!(api.rollouts().await, before_rollouts);
    assert_eq!(api.get("/api/clients").await.1, before_clients);
    // The pending update is still pending: re-sent with the same id after the restart.
    let mut second = server.agent_as(&key, device, "0.6.47").await;
    let again = second.heartbeat("0.6.47").await.unwrap();
    assert_eq!(
        (again.update_id, again.version, &again.sha256),
        (pending.update_id, pending.version, &pending.sha256)
    );
    // The blocked version stays blocked.
    let mut third = server.agent(&key, "0.6.47").await;
    assert_eq!(
        update_version(&third.heartbeat("0.6.47").await).as_deref(),
        Some("0.6.48")
    );
}
