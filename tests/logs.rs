//! What the server logs, read back from a captured subscriber. Its own test
//! binary, so its own process: the subscriber is the process's global
//! default, and no test running beside it on another thread can race
//! tracing's per-callsite caches (a thread-local subscriber among parallel
//! tests sometimes missed events).

#[allow(dead_code)]
#[path = "it/common.rs"]
mod common;

use std::sync::{Arc, Mutex};

use rmmsim::protocol::Channel;

use common::*;

/// Everything the server logged, as text.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn u04_redispatch_is_logged() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let server = TestServer::start().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.48", &win(), Channel::Stable).await;
    let mut agent = server.agent(&key, "0.6.47").await;
    agent.heartbeat("0.6.47").await.unwrap();
    assert!(
        !buf.text().contains("[RE-DISPATCH]"),
        "no re-dispatch on the first send"
    );
    agent.heartbeat("0.6.47").await.unwrap();
    let text = buf.text();
    let line = text
        .lines()
        .find(|l| l.contains("[RE-DISPATCH]"))
        .expect("a [RE-DISPATCH] line");
    assert!(line.contains("to 0.6.48"), "{line}");
}
