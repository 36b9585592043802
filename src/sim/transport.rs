//! How agents' bytes reach the simulated server: in-memory pipes handed to
//! axum through a custom listener (`ws-mem`), or real loopback sockets
//! (`ws-tcp`). Each hub survives server restarts: while the server is down,
//! dials fail and agents back off, as they would against a real outage.

mod tcp;

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use axum::serve::Listener;
use bytes::Bytes;
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, watch};

use crate::agent::{Connector, Dial, Link, url_path};
use crate::protocol::{AgentMessage, ServerMessage};
use crate::server::AppState;
use crate::server::http::download_bytes;
use crate::server::session::Session;

pub use tcp::TcpHub;

/// Which transport a simulation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// WebSocket and HTTP over in-memory pipes: the whole stack but the kernel.
    #[default]
    WsMem,
    /// WebSocket and HTTP over loopback TCP.
    WsTcp,
    /// The server's session logic called in-process: no framing, no pipes.
    Direct,
}

impl TransportKind {
    /// Every transport.
    pub const ALL: [Self; 3] = [Self::WsMem, Self::WsTcp, Self::Direct];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::WsMem => "ws-mem",
            Self::WsTcp => "ws-tcp",
            Self::Direct => "direct",
        }
    }

    /// The transport of this name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Capacity of each direction of an in-memory pipe: frames are small, and a
/// download streams through in chunks of this size.
const PIPE_BYTES: usize = 16 * 1024;

type Slot<T> = Arc<Mutex<Option<T>>>;

fn lock<T>(slot: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// The in-memory "network": dials become pipes delivered to the current listener.
#[derive(Clone, Default)]
pub struct MemHub {
    slot: Slot<mpsc::UnboundedSender<DuplexStream>>,
}

impl MemHub {
    /// A listener for a (re)started server; dials go to it from now on.
    pub fn listen(&self) -> MemListener {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.slot) = Some(tx);
        MemListener { incoming: rx }
    }

    /// The server is gone: dials fail until the next [`listen`](Self::listen).
    pub fn down(&self) {
        *lock(&self.slot) = None;
    }
}

impl Dial for MemHub {
    type Io = DuplexStream;

    async fn dial(&self) -> io::Result<DuplexStream> {
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
        let tx = lock(&self.slot).clone().ok_or_else(refused)?;
        let (client, server) = tokio::io::duplex(PIPE_BYTES);
        tx.send(server).map_err(|_| refused())?;
        Ok(client)
    }
}

/// Accepts the pipes dialed on a [`MemHub`].
pub struct MemListener {
    incoming: mpsc::UnboundedReceiver<DuplexStream>,
}

impl Listener for MemListener {
    type Io = DuplexStream;
    type Addr = ();

    async fn accept(&mut self) -> (DuplexStream, ()) {
        match self.incoming.recv().await {
            Some(io) => (io, ()),
            // The hub moved on to a newer listener: this one never accepts again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Raises the soft open-files limit to at least `needed` (up to the hard
/// limit; the hard limit too when the process may). Errors say how many
/// descriptors are needed and how to get them.
pub fn ensure_open_files(needed: u64) -> anyhow::Result<u64> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft >= needed {
        return Ok(soft);
    }
    let target_hard = hard.max(needed);
    if rlimit::Resource::NOFILE.set(needed, target_hard).is_ok() {
        return Ok(needed);
    }
    if needed <= hard && rlimit::Resource::NOFILE.set(hard, hard).is_ok() {
        return Ok(hard);
    }
    anyhow::bail!(
        "this run needs about {needed} open files but the limit is {soft} (hard limit {hard}); \
         raise it (e.g. `ulimit -n {needed}`, or LimitNOFILE in a systemd unit) or use --transport ws-mem"
    )
}

/// The `direct` transport: no sockets, no framing. Each session is the
/// server's own [`Session`] called in-process with message values, and
/// downloads go through the download handler's own function.
#[derive(Clone, Default)]
pub struct DirectHub {
    slot: Slot<AppState>,
    digests: Arc<Mutex<VecDeque<(Bytes, String)>>>,
}

/// Buffers whose digest the `direct` transport remembers. Every agent
/// downloads the server's cached buffer of a build, so a promote to ten
/// thousand machines hashes it once, not ten thousand times.
const REMEMBERED_DIGESTS: usize = 8;

impl DirectHub {
    /// The server sessions connect to from now on.
    pub fn serve(&self, state: AppState) {
        *lock(&self.slot) = Some(state);
    }

    /// The server is gone: connects fail until the next [`serve`](Self::serve).
    pub fn down(&self) {
        *lock(&self.slot) = None;
    }

    fn state(&self) -> io::Result<AppState> {
        lock(&self.slot)
            .clone()
            .ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused))
    }
}

/// One in-process session.
pub struct DirectLink {
    state: AppState,
    session: Session,
    /// Replies not yet read, in order.
    replies: VecDeque<ServerMessage>,
    /// Frames the server pushed (manual updates, rollbacks).
    pushed: mpsc::Receiver<ServerMessage>,
    shutdown: watch::Receiver<bool>,
}

impl Connector for DirectHub {
    type Link = DirectLink;

    async fn connect(&self) -> io::Result<DirectLink> {
        let state = self.state()?;
        let (session, pushed) = Session::open(state.next_conn_id());
        let shutdown = state.shutdown_signal();
        Ok(DirectLink {
            state,
            session,
            replies: VecDeque::new(),
            pushed,
            shutdown,
        })
    }

    async fn download(&self, url: &str) -> io::Result<Bytes> {
        let name = url_path(url).trim_start_matches("/downloads/");
        download_bytes(&self.state()?, name).map_err(|e| io::Error::other(e.to_string()))
    }

    fn sha256(&self, bytes: &Bytes) -> String {
        // Keyed by the buffer itself, which the list keeps alive: while it
        // is remembered no other bytes can take its address, and `Bytes`
        // never change, so the same address and length are the same bytes.
        let same = |b: &Bytes| b.as_ptr() == bytes.as_ptr() && b.len() == bytes.len();
        if let Some((_, digest)) = lock(&self.digests).iter().find(|(b, _)| same(b)) {
            return digest.clone();
        }
        let digest = crate::protocol::sha256_hex(bytes);
        let mut remembered = lock(&self.digests);
        if remembered.len() == REMEMBERED_DIGESTS {
            remembered.pop_front();
        }
        remembered.push_back((bytes.clone(), digest.clone()));
        digest
    }
}

impl Link for DirectLink {
    async fn send(&mut self, msg: &AgentMessage) -> io::Result<()> {
        if *self.shutdown.borrow() || self.session.closing() || self.pushed.is_closed() {
            return Err(io::Error::from(io::ErrorKind::ConnectionReset));
        }
        let replies = self.session.on_message(&mut self.state.core(), msg.clone());
        self.replies.extend(replies);
        Ok(())
    }

    async fn recv(&mut self) -> Option<ServerMessage> {
        if let Some(reply) = self.replies.pop_front() {
            return Some(reply);
        }
        if self.session.closing() {
            return None;
        }
        // The core holds the only sender once the session is admitted: the
        // channel closes when the server shuts down or forgets the session.
        self.pushed.recv().await
    }

    fn try_recv(&mut self) -> Option<ServerMessage> {
        self.replies.pop_front()
    }

    async fn close(mut self) {
        self.session.on_close(&mut self.state.core());
    }
}

impl Drop for DirectLink {
    fn drop(&mut self) {
        // A session dropped without `close` (its agent stopped) still ends.
        if self.session.agent().is_some() {
            self.session.on_close(&mut self.state.core());
        }
    }
}
