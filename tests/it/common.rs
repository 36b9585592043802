//! A real server on 127.0.0.1:0 (SQLite file, temp downloads folder, wall
//! clock), an HTTP client for its API and a hand-driven WebSocket agent.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rmmsim::clock::Clock;
use rmmsim::protocol::{AgentId, Channel, DeviceId, Platform, ServerMessage, UpdateOffer, Version};
use rmmsim::server::publish::{self, Content, DigestMode, Publication};
use rmmsim::server::store::SqliteStore;
use rmmsim::server::{AppState, Core, CoreConfig, HealthGate, RunOptions};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// How long a test waits for a frame it expects before failing (not a
/// performance bound: only a guard against hanging).
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long a test waits to be sure a frame does not come.
pub const QUIET: Duration = Duration::from_millis(300);

pub const TOKEN: &str = "test-admin-token";

pub fn v(s: &str) -> Version {
    s.parse().unwrap()
}

pub fn win() -> Platform {
    "windows-amd64".parse().unwrap()
}

pub fn linux() -> Platform {
    "linux-amd64".parse().unwrap()
}

/// A running server and the folder holding its downloads and database.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), HealthGate::default()).await
    }

    pub async fn with_gate(gate: HealthGate) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), gate).await
    }

    /// Starts a server over an existing folder (a restart keeps the database).
    pub async fn start_in(dir: TempDir, gate: HealthGate) -> Self {
        Self::start_with(dir, gate, RunOptions::default()).await
    }

    /// Starts a server with chosen limits and timeouts.
    pub async fn start_with(dir: TempDir, gate: HealthGate, options: RunOptions) -> Self {
        let downloads = dir.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let store = SqliteStore::open(&dir.path().join("rmmsim.sqlite3")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = CoreConfig {
            downloads,
            public_url: format!("http://{addr}"),
            gate,
            seed: 7,
        };
        let core = Core::open(Box::new(store), Clock::Wall, config).unwrap();
        let state = AppState::new(core, TOKEN);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(rmmsim::server::run(listener, state.clone(), options, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Shuts down gracefully and hands back the folder.
    pub async fn stop(mut self) -> TempDir {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
        self.dir
    }

    pub fn downloads(&self) -> PathBuf {
        self.dir.path().join("downloads")
    }

    pub fn api(&self) -> Api {
        Api {
            addr: self.addr,
            token: Some(TOKEN.into()),
        }
    }

    /// Creates (or finds) a client and a site, returning the site's key.
    pub async fn site(&self, client: &str, site: &str, channel: Option<Channel>) -> SiteKey {
        let api = self.api();
        let (_, clients) = api.get("/api/clients").await;
        let client_id = match clients.as_array().unwrap().iter().find(|c| c["name"] == client) {
            Some(c) => c["id"].as_u64().unwrap(),
            None => {
                let (s, c) = api.post("/api/clients", json!({ "name": client })).await;
                assert_eq!(s, StatusCode::CREATED, "{c}");
                c["id"].as_u64().unwrap()
            }
        };
        let (s, body) = api
            .post(
                &format!("/api/clients/{client_id}/sites"),
                json!({ "name": site, "channel": channel }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        SiteKey {
            key: body["site_key"].as_str().unwrap().to_owned(),
            site_id: body["id"].as_u64().unwrap(),
            client_id,
        }
    }

    /// Publishes a build (deterministic 4 KiB) without rescanning.
    pub fn publish_only(&self, version: &str, platform: &Platform, channel: Channel) -> publish::Published {
        publish_into(&self.downloads(), version, platform, channel, DigestMode::Correct)
    }

    /// Publishes a build and rescans.
    pub async fn publish(&self, version: &str, platform: &Platform, channel: Channel) -> publish::Published {
        let out = self.publish_only(version, platform, channel);
        self.rescan().await;
        out
    }

    pub async fn rescan(&self) -> Value {
        let (s, body) = self.api().post("/api/updates/rescan", json!({})).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body
    }

    /// A connected, welcomed Windows agent.
    pub async fn agent(&self, key: &SiteKey, version: &str) -> WsAgent {
        let mut a = WsAgent::connect(self.addr).await;
        a.hello_as(DeviceId::Bare(Uuid::from_u128(rand_u128())), version, &key.key)
            .await;
        a
    }

    /// A connected agent with a chosen device id.
    pub async fn agent_as(&self, key: &SiteKey, device: DeviceId, version: &str) -> WsAgent {
        let mut a = WsAgent::connect(self.addr).await;
        a.hello_as(device, version, &key.key).await;
        a
    }
}

pub fn publish_into(
    dir: &Path,
    version: &str,
    platform: &Platform,
    channel: Channel,
    digest: DigestMode,
) -> publish::Published {
    publish::publish(
        dir,
        &Publication {
            version: v(version),
            platform: platform.clone(),
            content: Content::Synthetic(4096),
            channel,
            digest,
            overwrite: true,
        },
    )
    .unwrap()
}

/// Distinct machine uuids for the agents of a test.
fn rand_u128() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    0x6f1c_2a9e_0b7d_4c1e_9a51_0000_0000_0000 | u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn machine() -> Uuid {
    Uuid::from_u128(rand_u128())
}

#[derive(Debug, Clone)]
pub struct SiteKey {
    pub key: String,
    pub site_id: u64,
    pub client_id: u64,
}

/// The admin API over plain HTTP/1.1.
#[derive(Debug, Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl Api {
    pub fn without_token(&self) -> Self {
        Self {
            token: None,
            ..self.clone()
        }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.json(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.json(Method::POST, path, Some(body.to_string().into())).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.json(Method::PUT, path, Some(body.to_string().into())).await
    }

    async fn json(&self, method: Method, path: &str, body: Option<Bytes>) -> (StatusCode, Value) {
        let (status, bytes) = self.raw(method, path, body).await;
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    /// One request on a fresh connection; the body as bytes.
    pub async fn raw(&self, method: Method, path: &str, body: Option<Bytes>) -> (StatusCode, Bytes) {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default())).unwrap();
        let resp = tokio::time::timeout(PATIENCE, sender.send_request(req))
            .await
            .expect("HTTP answer")
            .unwrap();
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }

    pub async fn agent(&self, id: AgentId) -> Value {
        let (s, body) = self.get(&format!("/api/agents/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body
    }

    pub async fn agents(&self) -> Vec<Value> {
        let (s, body) = self.get("/api/agents").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body.as_array().unwrap().clone()
    }

    pub async fn rollouts(&self) -> Value {
        self.get("/api/updates/rollouts").await.1
    }
}

/// A WebSocket agent driven by hand.
pub struct WsAgent {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub device: Option<DeviceId>,
    pub id: AgentId,
}

impl WsAgent {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        Self {
            ws,
            device: None,
            id: AgentId(0),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.try_send_text(text).await.unwrap();
    }

    /// Sends, and says whether the connection took it.
    pub async fn try_send_text(&mut self, text: &str) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.send(Message::text(text)).await
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.unwrap();
    }

    /// The next frame (`None` when the connection ended, cleanly or not).
    async fn next_frame(&mut self) -> Option<Message> {
        let frame = tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("a frame within PATIENCE");
        frame.and_then(Result::ok)
    }

    /// The next text frame, or `None` when the server closed the socket.
    pub async fn recv_or_close(&mut self) -> Option<ServerMessage> {
        loop {
            match self.next_frame().await? {
                Message::Text(t) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The code of the close frame that ends the connection (`None` when it
    /// ends without one, e.g. reset), skipping frames before it.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            if let Message::Close(f) = self.next_frame().await? {
                return f.map(|f| f.code.into());
            }
        }
    }

    pub async fn recv(&mut self) -> ServerMessage {
        self.recv_or_close().await.expect("a frame, not a close")
    }

    /// A frame if one arrives within [`QUIET`].
    pub async fn try_recv(&mut self) -> Option<ServerMessage> {
        match tokio::time::timeout(QUIET, self.ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => Some(serde_json::from_str(t.as_str()).unwrap()),
            _ => None,
        }
    }

    pub async fn hello_as(&mut self, device: DeviceId, version: &str, key: &str) -> AgentId {
        self.send_json(json!({
            "type": "hello", "device_id": device.to_string(), "hostname": format!("pc-{}", &device.machine().to_string()[..8]),
            "os": "windows", "arch": "amd64", "version": version, "site_key": key,
        }))
        .await;
        match self.recv().await {
            ServerMessage::Welcome { agent_id } => {
                self.device = Some(device);
                self.id = agent_id;
                agent_id
            }
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Sends a heartbeat; returns the update offered with it, if any.
    pub async fn heartbeat(&mut self, version: &str) -> Option<UpdateOffer> {
        self.send_json(json!({ "type": "heartbeat", "version": version })).await;
        let mut offer = None;
        loop {
            match self.recv().await {
                ServerMessage::Ack {} => return offer,
                ServerMessage::Update(u) => offer = Some(u),
                other => panic!("unexpected frame after heartbeat: {other:?}"),
            }
        }
    }

    pub async fn report(&mut self, update: &UpdateOffer, success: bool, version: &str) {
        let error = (!success).then_some("install failed");
        self.send_json(json!({
            "type": "update_result", "update_id": update.update_id, "success": success,
            "version": version, "error": error,
        }))
        .await;
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Let the server see the close before the test looks at `online`.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(PATIENCE, self.ws.next()).await {}
    }
}

/// Waits until `check` holds, polling; panics after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn update_version(offer: &Option<UpdateOffer>) -> Option<String> {
    offer.as_ref().map(|u| u.version.to_string())
}
