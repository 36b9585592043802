//! The stack over real sockets on the wall clock: what the in-memory tests
//! do not go through (the kernel, the TCP listener, download URLs naming
//! the server's address). The rest of the suite runs in memory;
//! `persistence.rs` restarts a server on TCP and `swarm.rs` runs `rmmsim
//! swarm`'s engine against one.

use hyper::{Method, StatusCode};
use rmmsim::agent::url_path;
use rmmsim::protocol::{Channel, sha256_hex};

use crate::common::*;

#[tokio::test]
async fn tcp_hello_heartbeat_update_download_and_report_round_trip() {
    let server = TestServer::start().await;
    let key = server.site("acme", "hq", None).await;
    let published = server.publish("0.6.48", &win(), Channel::Stable).await;
    let mut agent = server.agent(&key, "0.6.47").await;
    let offer = agent
        .heartbeat("0.6.47")
        .await
        .expect("the newer build is pushed with the heartbeat's ack");
    assert_eq!(offer.version, v("0.6.48"));
    let expected = format!("http://{}/downloads/{}", server.addr, published.file);
    assert_eq!(offer.url, expected, "the URL names the server's address");
    // Downloads need no token; the bytes are the ones the digest describes.
    let (status, bytes) = server
        .api()
        .without_token()
        .raw(Method::GET, url_path(&offer.url), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (bytes.len() as u64, sha256_hex(&bytes)),
        (offer.size, offer.sha256.clone())
    );
    agent.report(&offer, true, "0.6.48").await;
    assert_eq!(agent.heartbeat("0.6.48").await, None, "on the target: nothing more");
    let detail = server.api().agent(agent.id).await;
    assert_eq!(
        (detail["version"].as_str(), detail["updates"][0]["status"].as_str()),
        (Some("0.6.48"), Some("succeeded"))
    );
    agent.close().await;
    server.stop().await;
}
