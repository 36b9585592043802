//! The in-memory harness itself: on the paused clock, a wait for a frame
//! that must not come proves something only if the server gets to answer
//! first.

use rmmsim::protocol::{Channel, ServerMessage};
use serde_json::json;

use crate::common::*;

#[tokio::test(start_paused = true)]
async fn a_quiet_window_on_the_paused_clock_still_sees_what_the_server_sends() {
    let server = TestServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.48", &win(), Channel::Stable).await;
    let mut agent = server.agent(&key, "0.6.47").await;
    // The frame is in the pipe, not yet read: the window ends only after
    // the server has read it and answered.
    agent
        .send_json(json!({ "type": "heartbeat", "version": "0.6.47" }))
        .await;
    assert!(
        matches!(agent.try_recv().await, Some(ServerMessage::Update(_))),
        "the update pushed with the heartbeat's answer"
    );
    assert_eq!(agent.try_recv().await, Some(ServerMessage::Ack {}));
    assert_eq!(agent.try_recv().await, None, "and then nothing");
    // A push from an admin call arrives the same way.
    let path = format!("/api/agents/{}/update", agent.id);
    let (_, body) = server.api().post(&path, json!({ "version": "0.6.48" })).await;
    assert_eq!(body["pushed"], true, "{body}");
    assert!(matches!(agent.try_recv().await, Some(ServerMessage::Update(_))));
}
