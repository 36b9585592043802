//! A scan never undoes a promote: a rescan that read the folder before a
//! promote began is discarded, not applied after it.

use hyper::StatusCode;
use rmmsim::protocol::Channel;
use serde_json::json;

use crate::common::{TestServer, win};

/// Forty promotes, each raced by a manual rescan: after both answered, the
/// catalog says stable every time. Bounded: forty tries on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u09_a_rescan_racing_a_promote_never_leaves_the_version_beta() {
    let server = TestServer::start().await;
    let api = server.api();
    for i in 0..40 {
        let version = format!("1.0.{i}");
        server.publish(&version, &win(), Channel::Beta).await;
        let promote = format!("/api/updates/rollouts/{version}/promote");
        let ((rs, rescan), (ps, promoted)) = tokio::join!(
            api.post("/api/updates/rescan", json!({})),
            api.post(&promote, json!({ "force": true }))
        );
        assert_eq!(rs, StatusCode::OK, "{rescan}");
        assert_eq!(ps, StatusCode::OK, "{promoted}");
        let (_, versions) = api.get("/api/updates/versions").await;
        let build = versions["builds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["version"] == version.as_str())
            .unwrap()
            .clone();
        assert_eq!(
            build["channel"], "stable",
            "try {i}: the promote answered 200, the catalog says {build}"
        );
    }
}
