//! What the server logs, read back from a captured subscriber. Its own test
//! binary, so its own process: the subscriber is the process's global
//! default, and no test running beside it on another thread can race
//! tracing's per-callsite caches (a thread-local subscriber among parallel
//! tests sometimes missed events).

#[allow(dead_code)]
#[path = "it/common.rs"]
mod common;

use std::sync::{Arc, Mutex, OnceLock};

use rmmsim::protocol::{Channel, DeviceId};

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

/// The process's log at `debug`, as `rmmsim serve --log-level debug`
/// writes it: one subscriber for every test of this binary, installed by
/// the first to ask. Tests run side by side, so each reads the lines of its
/// own agents.
fn captured() -> Buf {
    static BUF: OnceLock<Buf> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
    .clone()
}

#[tokio::test]
async fn u04_redispatch_is_logged() {
    let buf = captured();
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

#[tokio::test]
async fn u01_u04_one_agents_hello_dispatch_and_result_are_logged_at_debug() {
    let buf = captured();
    let server = TestServer::start().await;
    let key = server.site("acme", "hq", None).await;
    server.publish("0.6.48", &win(), Channel::Stable).await;
    let device = DeviceId::Bare(machine());
    let mut agent = server.agent_as(&key, device, "0.6.47").await;
    let offer = agent.heartbeat("0.6.47").await.expect("an update");
    agent.report(&offer, true, "0.6.48").await;
    let mine = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(&device.to_string()))
            .map(str::to_owned)
            .collect()
    };
    eventually("the result is logged", || {
        let buf = buf.clone();
        async move { mine(&buf.text()).iter().any(|l| l.contains("result:")) }
    })
    .await;
    let lines = mine(&buf.text());
    let id = agent.id;
    let expected = [
        format!("hello: agent {id} ({device}, "),
        format!(
            "dispatch: update {} to agent {id} ({device}): 0.6.47 → 0.6.48, by its heartbeat",
            offer.update_id
        ),
        format!(
            "result: update {} of agent {id} ({device}) succeeded: it runs 0.6.48",
            offer.update_id
        ),
    ];
    for (line, want) in lines.iter().zip(&expected) {
        assert!(
            line.contains(" DEBUG ") && line.contains(want.as_str()),
            "{line}\nwanted {want}"
        );
    }
    assert_eq!(lines.len(), 3, "{lines:#?}");
}
