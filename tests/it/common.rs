//! The server under test (the same app and `server::run` as `rmmsim serve`,
//! a SQLite file, a temp downloads folder), a client for its API and a
//! hand-driven WebSocket agent. Two ways to reach it:
//!
//! - [`TestServer::mem`] (a [`MemServer`]): the simulator's in-memory pipes
//!   ([`MemHub`]) and a virtual clock; the API is called in-process,
//!   `app(state).oneshot(request)`, no socket. Its tests run on the paused
//!   clock (`#[tokio::test(start_paused = true)]`): server and test share one
//!   thread and nothing waits on the kernel, so time moves only when every
//!   task is idle. A wait for a frame that must not come
//!   ([`WsAgent::try_recv`]) then ends once the server has nothing left to
//!   do, at once and always the same way.
//! - [`TestServer::start`]: a real socket on 127.0.0.1:0 and the wall clock,
//!   for the few tests that prove the stack over TCP (and `rmmsim swarm`,
//!   which dials sockets).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::serve::Listener;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use rmmsim::agent::Dial;
use rmmsim::clock::{Clock, Timestamp};
use rmmsim::http_client::Call;
use rmmsim::protocol::{AgentId, Channel, DeviceId, Platform, ServerMessage, UpdateOffer, Version};
use rmmsim::server::publish::{self, Content, DigestMode, Publication};
use rmmsim::server::store::SqliteStore;
use rmmsim::server::{AppState, Core, CoreConfig, HealthGate, RunOptions, app};
use rmmsim::sim::MemHub;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::DuplexStream;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::either::Either;
use tower::ServiceExt;
use uuid::Uuid;

/// How long a test waits for a frame it expects before failing (not a
/// performance bound: only a guard against hanging; on the paused clock it
/// passes at once when nothing can happen any more).
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long a test waits to be sure a frame does not come: on the paused
/// clock, virtual time that passes once the server is idle.
pub const QUIET: Duration = Duration::from_millis(300);

pub const TOKEN: &str = "test-admin-token";

/// The `Host` of in-memory requests, and of the download URLs the server offers.
const MEM_HOST: &str = "rmmsim.test";

/// The date an in-memory server's virtual clock starts at.
const MEM_START: &str = "2026-05-28T00:00:00Z";

pub fn v(s: &str) -> Version {
    s.parse().unwrap()
}

pub fn win() -> Platform {
    "windows-amd64".parse().unwrap()
}

pub fn linux() -> Platform {
    "linux-amd64".parse().unwrap()
}

/// How tests reach a server: its address, its API, its WebSocket.
pub trait Net {
    /// What a test can dial: a socket address, or `()` in memory.
    type Addr: Copy;
    fn addr(&self) -> Self::Addr;
    /// The admin API (no token).
    fn api(&self, state: &AppState) -> Api;
    /// A WebSocket connection to `/ws`, before `hello`.
    fn connect(&self) -> impl Future<Output = WsAgent>;
    /// The server is going away: new connections fail.
    fn down(&self) {}
}

/// Loopback TCP on the wall clock.
pub struct Tcp(SocketAddr);

impl Net for Tcp {
    type Addr = SocketAddr;

    fn addr(&self) -> SocketAddr {
        self.0
    }

    fn api(&self, _: &AppState) -> Api {
        Api {
            to: To::Tcp(self.0),
            token: None,
        }
    }

    fn connect(&self) -> impl Future<Output = WsAgent> {
        WsAgent::connect(self.0)
    }
}

/// In-memory pipes and the in-process app, on a virtual clock.
pub struct Mem {
    hub: MemHub,
    clock: Clock,
}

impl Net for Mem {
    type Addr = ();

    fn addr(&self) {}

    fn api(&self, state: &AppState) -> Api {
        Api {
            to: To::App(state.clone()),
            token: None,
        }
    }

    async fn connect(&self) -> WsAgent {
        let pipe = self.hub.dial().await.expect("the in-memory server is up");
        WsAgent::handshake(Either::Right(pipe), MEM_HOST).await
    }

    fn down(&self) {
        self.hub.down();
    }
}

/// A running server and the folder holding its downloads and database.
pub struct TestServer<N: Net = Tcp> {
    /// Where it listens ([`Net::Addr`]).
    pub addr: N::Addr,
    pub dir: TempDir,
    net: N,
    state: AppState,
    gate: HealthGate,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

/// A server on in-memory pipes; see the module's documentation.
pub type MemServer = TestServer<Mem>;

/// The server's state over a folder (a restart keeps the database).
fn open_state(dir: &Path, clock: Clock, public_url: String, gate: HealthGate) -> AppState {
    let downloads = dir.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let store = SqliteStore::open(&dir.join("rmmsim.sqlite3")).unwrap();
    let config = CoreConfig {
        downloads,
        public_url,
        gate,
        seed: 7,
        max_enrolments_per_minute: None,
    };
    AppState::new(Core::open(Box::new(store), clock, config).unwrap(), TOKEN)
}

impl<N: Net> TestServer<N> {
    /// Serves `state` on `listener` until stopped.
    fn serve<L>(listener: L, net: N, dir: TempDir, state: AppState, gate: HealthGate, options: RunOptions) -> Self
    where
        L: Listener,
        L::Addr: fmt::Debug,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(rmmsim::server::run(listener, state.clone(), options, async {
            let _ = stopped.await;
        }));
        Self {
            addr: net.addr(),
            dir,
            net,
            state,
            gate,
            stop,
            task,
        }
    }

    /// Shuts down gracefully; hands back the folder and the way in.
    async fn halt(self) -> (TempDir, N, HealthGate) {
        self.net.down();
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
        (self.dir, self.net, self.gate)
    }

    /// Shuts down gracefully and hands back the folder.
    pub async fn stop(self) -> TempDir {
        self.halt().await.0
    }

    pub fn downloads(&self) -> PathBuf {
        self.dir.path().join("downloads")
    }

    /// The admin API, with the admin token.
    pub fn api(&self) -> Api {
        self.net.api(&self.state).with_token(TOKEN)
    }

    /// A WebSocket connection, before `hello`.
    pub async fn connect(&self) -> WsAgent {
        self.net.connect().await
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
        let mut a = self.connect().await;
        a.hello_as(DeviceId::Bare(Uuid::from_u128(rand_u128())), version, &key.key)
            .await;
        a
    }

    /// A connected agent with a chosen device id.
    pub async fn agent_as(&self, key: &SiteKey, device: DeviceId, version: &str) -> WsAgent {
        let mut a = self.connect().await;
        a.hello_as(device, version, &key.key).await;
        a
    }
}

impl TestServer {
    /// A server on 127.0.0.1:0 and the wall clock.
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = open_state(dir.path(), Clock::Wall, format!("http://{addr}"), gate);
        Self::serve(listener, Tcp(addr), dir, state, gate, options)
    }
}

impl MemServer {
    /// A server on in-memory pipes, its clock at [`MEM_START`] (virtual).
    pub async fn mem() -> Self {
        Self::mem_with_gate(HealthGate::default()).await
    }

    pub async fn mem_with_gate(gate: HealthGate) -> Self {
        let net = Mem {
            hub: MemHub::default(),
            clock: Clock::virtual_from(MEM_START.parse::<Timestamp>().unwrap()),
        };
        Self::mem_over(tempfile::tempdir().unwrap(), net, gate)
    }

    fn mem_over(dir: TempDir, net: Mem, gate: HealthGate) -> Self {
        let state = open_state(dir.path(), net.clock, format!("http://{MEM_HOST}"), gate);
        let listener = net.hub.listen();
        Self::serve(listener, net, dir, state, gate, RunOptions::default())
    }

    /// Stops the server gracefully and starts it again over the same folder,
    /// with the same gate; its clock runs on.
    pub async fn restart(self) -> Self {
        let (dir, net, gate) = self.halt().await;
        Self::mem_over(dir, net, gate)
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

/// The admin API: HTTP/1.1 over a socket, or the app called in-process.
#[derive(Clone)]
pub struct Api {
    to: To,
    pub token: Option<String>,
}

/// Where an [`Api`]'s requests go.
#[derive(Clone)]
enum To {
    Tcp(SocketAddr),
    App(AppState),
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = match &self.to {
            To::Tcp(addr) => addr.to_string(),
            To::App(_) => "in-process".into(),
        };
        f.debug_struct("Api")
            .field("to", &to)
            .field("token", &self.token)
            .finish()
    }
}

/// One request through `app(state)`, in-process, no socket (axum's testing idiom).
pub async fn oneshot(state: &AppState, request: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes())
}

impl Api {
    /// The API of a server listening on `addr` (e.g. a `rmmsim serve` process).
    pub fn tcp(addr: SocketAddr, token: &str) -> Self {
        Self {
            to: To::Tcp(addr),
            token: Some(token.into()),
        }
    }

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

    /// One request (over TCP, on a fresh connection); the body as bytes.
    pub async fn raw(&self, method: Method, path: &str, body: Option<Bytes>) -> (StatusCode, Bytes) {
        let mut call = Call::new(method, path);
        if let Some(token) = &self.token {
            call = call.bearer(token.as_str());
        }
        if let Some(body) = body {
            call = call.json(body);
        }
        let answer = async {
            match &self.to {
                To::Tcp(addr) => {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let answer = call.send(stream, &addr.to_string()).await.unwrap();
                    (answer.status, answer.body)
                }
                To::App(state) => oneshot(state, call.request(MEM_HOST).unwrap()).await,
            }
        };
        tokio::time::timeout(PATIENCE, answer).await.expect("HTTP answer")
    }

    pub async fn agent(&self, id: AgentId) -> Value {
        let (s, body) = self.get(&format!("/api/agents/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body
    }

    /// The agent rows of `GET /api/agents`: the machines, without the
    /// server's pseudo-agent (U13) that the route lists first.
    pub async fn agents(&self) -> Vec<Value> {
        let (s, body) = self.get("/api/agents").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let rows = body.as_array().unwrap();
        assert_eq!(rows.first().map(|r| &r["pseudo"]), Some(&json!(true)), "{body}");
        rows.iter().filter(|r| r["pseudo"] == false).cloned().collect()
    }

    pub async fn rollouts(&self) -> Value {
        self.get("/api/updates/rollouts").await.1
    }
}

/// What a [`WsAgent`] talks over: a socket or an in-memory pipe.
type AgentIo = Either<TcpStream, DuplexStream>;

/// A WebSocket agent driven by hand.
pub struct WsAgent {
    ws: WebSocketStream<AgentIo>,
    pub device: Option<DeviceId>,
    pub id: AgentId,
}

impl WsAgent {
    /// Connects to a server on a socket.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self::handshake(Either::Left(stream), &addr.to_string()).await
    }

    /// The WebSocket handshake on a stream to the server.
    async fn handshake(io: AgentIo, host: &str) -> Self {
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{host}/ws"), io)
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

    /// A frame if one arrives within [`QUIET`]; on the paused clock, a frame
    /// if the server sends one before it goes idle.
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
