//! What a connection may cost the server: its outgoing buffer, how long it
//! may take to send headers, to say `hello`, to stay silent, and how many
//! agent connections the server holds. Limits are small so the tests are
//! quick; each waits for what it expects with a bound, never for a time.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::SinkExt;
use rmmsim::server::http::limits::CONNECTION_RESERVE;
use rmmsim::server::{HealthGate, RunOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::common::*;

/// Short enough to keep the tests quick, long enough that a loaded machine
/// does not trip them when the test means to stay within them.
const SHORT: Duration = Duration::from_millis(600);

async fn server(options: RunOptions) -> TestServer {
    TestServer::start_with(tempfile::tempdir().unwrap(), HealthGate::default(), options).await
}

/// `connections` of `GET /api/stats`.
async fn connections(s: &TestServer) -> Value {
    let (status, body) = s.api().get("/api/stats").await;
    assert_eq!(status, hyper::StatusCode::OK, "{body}");
    body["connections"].clone()
}

/// Polls the stats until `field` of `connections` reaches `want` (or more).
async fn wait_for_count(s: &TestServer, field: &str, want: u64) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let c = connections(s).await;
        if c[field].as_u64() >= Some(want) {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{field} never reached {want}: {c}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads until the server closes the connection (EOF or reset); false if
/// it is still open after PATIENCE.
async fn closed_by_server(stream: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.is_ok()
}

/// `GET /healthz` on a fresh connection, by hand: the status line's code,
/// `None` when the server closed the connection without answering.
async fn healthz(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("an answer or a close within PATIENCE")
        .ok()?;
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_client_that_pings_and_never_reads_is_closed_once_its_write_buffer_stays_full() {
    let s = server(RunOptions {
        idle_timeout: Some(SHORT),
        ..RunOptions::default()
    })
    .await;
    // A small receive buffer, so the kernel holds little of what the server sends.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(s.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", s.addr), stream)
        .await
        .unwrap();
    // Every ping makes the server queue a pong this client never reads: at
    // most 400,000 (about 50 MiB of pongs), far past the 1 MiB bound plus
    // what the kernel buffers. The server keeps reading them (the pings keep
    // the session from being idle) until nothing it writes has been taken for
    // the idle timeout.
    let payload = vec![7u8; 125];
    'pinging: for _ in 0..400_000 / 1000 {
        for _ in 0..1000 {
            if ws.feed(Message::Ping(payload.clone().into())).await.is_err() {
                break 'pinging;
            }
        }
        if ws.flush().await.is_err() {
            break;
        }
    }
    let c = wait_for_count(&s, "write_overflows", 1).await;
    assert_eq!(c["sessions"], 0, "{c}");
    s.stop().await;
}

#[tokio::test]
async fn a_websocket_that_never_says_hello_is_closed_at_the_hello_deadline() {
    let s = server(RunOptions {
        hello_timeout: Some(SHORT),
        ..RunOptions::default()
    })
    .await;
    let key = s.site("acme", "hq", None).await;
    let mut silent = WsAgent::connect(s.addr).await;
    let mut prompt = s.agent(&key, "0.6.47").await;
    assert_eq!(silent.close_code().await, Some(1008));
    let c = wait_for_count(&s, "hello_timeouts", 1).await;
    assert_eq!(c["idle_timeouts"], 0, "{c}");
    // The agent that said hello in time is past the hello deadline and still served.
    tokio::time::sleep(SHORT * 2).await;
    assert_eq!(prompt.heartbeat("0.6.47").await, None);
    assert_eq!(connections(&s).await["hello_timeouts"], 1);
    s.stop().await;
}

#[tokio::test]
async fn a_session_that_goes_silent_is_closed_after_the_idle_timeout() {
    let s = server(RunOptions {
        idle_timeout: Some(SHORT),
        ..RunOptions::default()
    })
    .await;
    let key = s.site("acme", "hq", None).await;
    let mut agent = s.agent(&key, "0.6.47").await;
    // Heartbeats a quarter of the timeout apart keep it open past the timeout.
    for _ in 0..8 {
        tokio::time::sleep(SHORT / 4).await;
        assert_eq!(agent.heartbeat("0.6.47").await, None);
    }
    assert_eq!(connections(&s).await["idle_timeouts"], 0);
    assert_eq!(agent.close_code().await, Some(1008));
    wait_for_count(&s, "idle_timeouts", 1).await;
    let online = s.api().agent(agent.id).await;
    assert_eq!(online["online"], false, "{online}");
    s.stop().await;
}

#[tokio::test]
async fn request_headers_that_trickle_in_or_never_come_time_out() {
    let s = server(RunOptions {
        header_timeout: Some(SHORT),
        ..RunOptions::default()
    })
    .await;
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    let (mut trickle, mut writer) = TcpStream::connect(s.addr).await.unwrap().into_split();
    writer.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    // One header byte every tenth of the timeout, at most 100 of them.
    let trickling = async move {
        for _ in 0..100 {
            if writer.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(SHORT / 10).await;
        }
        std::future::pending::<()>().await
    };
    let closed = tokio::select! {
        closed = closed_by_server(&mut trickle) => closed,
        () = trickling => unreachable!(),
    };
    assert!(closed, "trickled headers were waited for");
    assert!(
        closed_by_server(&mut idle).await,
        "a connection that sent nothing stayed open"
    );
    wait_for_count(&s, "header_timeouts", 2).await;
    assert_eq!(healthz(s.addr).await, Some(200));
    s.stop().await;
}

#[tokio::test]
async fn beyond_max_connections_agents_are_refused_while_healthz_and_the_api_answer() {
    const MAX: usize = 20;
    let s = server(RunOptions {
        max_connections: Some(MAX),
        ..RunOptions::default()
    })
    .await;
    let key = s.site("acme", "hq", None).await;
    let mut agents = Vec::new();
    for _ in 0..MAX {
        agents.push(s.agent(&key, "0.6.47").await);
    }
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr)).await;
    let Err(tungstenite::Error::Http(response)) = refused else {
        panic!("the agent over the budget was not refused with an HTTP answer: {refused:?}");
    };
    assert_eq!(response.status(), 503);
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["error"]["code"], "server_busy", "{body}");
    assert_eq!(healthz(s.addr).await, Some(200));
    let c = connections(&s).await;
    assert_eq!(
        (&c["sessions"], &c["max_sessions"], &c["refused_busy"]),
        (&json!(MAX), &json!(MAX), &json!(1)),
        "{c}"
    );
    // U13: the refusal is a warning of the server's pseudo-agent.
    let (_, warnings) = s.api().get("/api/logs/signatures?level=warn").await;
    let busy: Vec<&Value> = warnings
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["signature"].as_str().unwrap().contains("server_busy"))
        .collect();
    assert_eq!(busy.len(), 1, "{warnings}");
    assert_eq!(
        (&busy[0]["count"], &busy[0]["first_version"]),
        (&json!(1), &json!(env!("CARGO_PKG_VERSION")))
    );
    // Every admitted agent is still served; one leaving makes room for another.
    assert_eq!(agents[0].heartbeat("0.6.47").await, None);
    drop(agents.pop());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while connections(&s).await["sessions"] != json!(MAX - 1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session's place was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut next = s.agent(&key, "0.6.47").await;
    assert_eq!(next.heartbeat("0.6.47").await, None);
    s.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_budget_and_its_reserve_are_closed_at_once() {
    const MAX: usize = 2;
    let s = server(RunOptions {
        max_connections: Some(MAX),
        header_timeout: Some(PATIENCE * 3),
        ..RunOptions::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..MAX + CONNECTION_RESERVE {
        held.push(TcpStream::connect(s.addr).await.unwrap());
    }
    // The kernel completes the connect; the server closes it on accept.
    let mut over = TcpStream::connect(s.addr).await.unwrap();
    assert!(
        closed_by_server(&mut over).await,
        "a connection over the budget stayed open"
    );
    // Once a few leave, the server answers again.
    held.truncate(MAX + CONNECTION_RESERVE - 4);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while healthz(s.addr).await != Some(200) {
        assert!(tokio::time::Instant::now() < deadline, "/healthz never answered again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = connections(&s).await;
    assert!(c["dropped_at_accept"].as_u64() >= Some(1), "{c}");
    drop(held);
    s.stop().await;
}

#[tokio::test]
async fn stats_show_the_budget_and_the_open_connections() {
    let s = server(RunOptions {
        max_connections: Some(7),
        ..RunOptions::default()
    })
    .await;
    let key = s.site("acme", "hq", None).await;
    let _agent = s.agent(&key, "0.6.47").await;
    let c = connections(&s).await;
    assert_eq!((&c["max_sessions"], &c["sessions"]), (&json!(7), &json!(1)), "{c}");
    // The agent's socket and the stats request's own connection.
    assert!(c["open"].as_u64() >= Some(2), "{c}");
    let (_, stats) = s.api().get("/api/stats").await;
    assert_eq!(stats["push_overflows"], 0, "{stats}");
    s.stop().await;
}
