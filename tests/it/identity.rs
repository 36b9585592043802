//! U12: rows are keyed by device_id exactly, so crossing the identity
//! boundary in one update re-enrolls the machine and orphans its old row.

use rmmsim::protocol::{Channel, DeviceId};
use serde_json::Value;

use crate::common::*;

fn rows_of(agents: &[Value], machine: &uuid::Uuid) -> Vec<Value> {
    agents
        .iter()
        .filter(|a| a["machine"] == machine.to_string())
        .cloned()
        .collect()
}

#[tokio::test(start_paused = true)]
async fn u12_a_win_id_agent_crossing_the_boundary_comes_back_as_a_new_row_and_orphans_the_old() {
    let server = TestServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.58", &win(), Channel::Stable).await;
    let m = machine();
    let mut old = server.agent_as(&key, DeviceId::Legacy(m), "0.6.27").await;
    let old_id = old.id;
    let offer = old.heartbeat("0.6.27").await.unwrap();
    assert_eq!(offer.version, v("0.6.58"));
    // The agent installs, restarts, and the new build sends the bare uuid.
    old.close().await;
    let mut new = server.agent_as(&key, DeviceId::Bare(m), "0.6.58").await;
    new.report(&offer, true, "0.6.58").await;
    assert_eq!(new.heartbeat("0.6.58").await, None);
    assert_ne!(new.id, old_id, "a new row");

    let agents = server.api().agents().await;
    let rows = rows_of(&agents, &m);
    assert_eq!(rows.len(), 2, "exactly one orphan beside the live row: {rows:?}");
    let orphan = rows.iter().find(|r| r["id"] == old_id.0).unwrap();
    assert_eq!(orphan["device_id"], format!("win-{m}"));
    assert_eq!(orphan["version"], "0.6.27", "the orphan still shows the old version");
    assert_eq!(orphan["online"], false);
    let live = rows.iter().find(|r| r["id"] == new.id.0).unwrap();
    assert_eq!(
        (live["version"].as_str(), live["legacy_id"].as_bool()),
        (Some("0.6.58"), Some(false))
    );
    // The report from the new row closed the update sent to the old one.
    let detail = server.api().agent(old_id).await;
    assert_eq!(detail["updates"][0]["status"], "succeeded");
}

#[tokio::test(start_paused = true)]
async fn u12_an_agent_already_past_the_boundary_updates_in_place() {
    let server = TestServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.58", &win(), Channel::Stable).await;
    let m = machine();
    let mut agent = server.agent_as(&key, DeviceId::Bare(m), "0.6.45").await;
    let id = agent.id;
    let offer = agent.heartbeat("0.6.45").await.unwrap();
    agent.close().await;
    let mut agent = server.agent_as(&key, DeviceId::Bare(m), "0.6.58").await;
    assert_eq!(agent.id, id, "same row");
    agent.report(&offer, true, "0.6.58").await;
    assert_eq!(agent.heartbeat("0.6.58").await, None);
    let rows = rows_of(&server.api().agents().await, &m);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["version"], "0.6.58");
}
