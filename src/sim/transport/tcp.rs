//! `ws-tcp`: loopback sockets, and what they need that pipes do not for
//! the paused clock to stay honest.
//!
//! tokio's paused clock moves when the runtime has nothing to run: the time
//! driver polls the I/O driver with a zero timeout and, if that wakes no
//! task, advances the clock to the next timer. A byte the kernel still holds
//! is invisible to that poll. The server used to write its replies on
//! sockets with Nagle's algorithm on, so of `update` and `ack`, written back
//! to back, the kernel held `ack` until the agent's delayed acknowledgement
//! (tens of real milliseconds); the clock jumped meanwhile, every later reply
//! arrived a timer late, and an agent whose download or install step ended at
//! that timer restarted before reading the `update` its heartbeat had
//! brought. An in-memory pipe wakes its reader directly: on `ws-mem` a reply
//! is read at the instant it is sent.
//!
//! So both ends send at once (`TCP_NODELAY`), and, whatever else the kernel
//! may hold, every byte written counts as in flight until the other end reads
//! it (or closes), as does every connect under way. While anything is in
//! flight a task of the hub keeps yielding, and a runtime with a task to run
//! polls the I/O driver without moving the clock: a reply over TCP takes no
//! virtual time, as over a pipe.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tracing::warn;

use super::{Slot, lock};
use crate::agent::Dial;

/// Connects in flight at once over TCP. A burst of connects past the listen
/// backlog is dropped by the kernel and retried on real timers, a second or
/// more (the clock held meanwhile); pacing keeps the burst small.
const TCP_CONNECTS_IN_FLIGHT: usize = 64;
/// Listen backlog for the simulated server (the default of 128 drops bursts).
const TCP_BACKLOG: u32 = 4096;
/// Polls of the I/O driver with something in flight and nothing moving
/// after which the hold lets the clock go, with a warning: seconds of real
/// time, far longer than the kernel holds a byte (a delayed acknowledgement,
/// a retried connect). Only a miscount (bytes counted that nobody will read)
/// gets there, and it must not freeze the simulation.
const STALL_POLLS: u32 = 1 << 22;

/// Loopback TCP: dials connect to the current listener's port.
#[derive(Clone)]
pub struct TcpHub {
    addr: Slot<SocketAddr>,
    pacing: Arc<Semaphore>,
    shared: Arc<Shared>,
}

/// What every socket of a hub shares.
#[derive(Default)]
struct Shared {
    flight: Flight,
    /// Connections one end of which has been seen, by (dialer's address,
    /// listener's address): the dialer learns its address once connected
    /// and the listener once it accepts, in either order.
    waiting: Mutex<HashMap<(SocketAddr, SocketAddr), Arc<Wire>>>,
}

impl TcpHub {
    /// A hub, and its task that holds the clock while anything is in
    /// flight; call it inside the simulation's runtime.
    pub fn start() -> Self {
        Self::with_stall_polls(STALL_POLLS)
    }

    /// A hub whose hold gives up after `stall_polls` (see [`STALL_POLLS`]).
    fn with_stall_polls(stall_polls: u32) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(hold_clock(shared.clone(), stall_polls));
        Self {
            addr: Arc::default(),
            pacing: Arc::new(Semaphore::new(TCP_CONNECTS_IN_FLIGHT)),
            shared,
        }
    }

    /// Binds a fresh listener on 127.0.0.1 with a deep backlog.
    pub fn listen(&self) -> io::Result<TcpHubListener> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let listener = socket.listen(TCP_BACKLOG)?;
        let local = listener.local_addr()?;
        *lock(&self.addr) = Some(local);
        Ok(TcpHubListener {
            listener,
            local,
            shared: self.shared.clone(),
        })
    }

    /// The server is gone: dials fail until the next [`listen`](Self::listen).
    pub fn down(&self) {
        *lock(&self.addr) = None;
    }
}

impl Dial for TcpHub {
    type Io = TcpEnd;

    async fn dial(&self) -> io::Result<TcpEnd> {
        let addr = (*lock(&self.addr)).ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused))?;
        let _permit = self.pacing.acquire().await.map_err(io::Error::other)?;
        let connecting = Connecting::start(&self.shared.flight);
        let stream = TcpStream::connect(addr).await?;
        drop(connecting);
        stream.set_nodelay(true)?;
        let key = (stream.local_addr()?, addr);
        Ok(TcpEnd::new(stream, &self.shared, key, DIALER))
    }
}

/// The simulated server's listener: accepted sockets are counted like the
/// dialed ones.
pub struct TcpHubListener {
    listener: TcpListener,
    local: SocketAddr,
    shared: Arc<Shared>,
}

impl Listener for TcpHubListener {
    type Io = TcpEnd;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpEnd, SocketAddr) {
        // axum's own accept loop, with its handling of accept errors.
        let (stream, peer) = Listener::accept(&mut self.listener).await;
        if let Err(e) = stream.set_nodelay(true) {
            warn!("TCP_NODELAY on an accepted socket: {e}");
        }
        (TcpEnd::new(stream, &self.shared, (peer, self.local), ACCEPTOR), peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// What is in flight over all of a hub's sockets: unread bytes and connects
/// under way.
#[derive(Default)]
struct Flight {
    units: AtomicUsize,
    /// Bumped whenever something goes in or out of flight: the hold's sign
    /// of progress.
    moves: AtomicU64,
    /// The hold is waiting for something to go in flight.
    asleep: AtomicBool,
    wake: Notify,
}

impl Flight {
    fn add(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.moves.fetch_add(1, Ordering::Relaxed);
        self.units.fetch_add(n, Ordering::Relaxed);
        if self.asleep.swap(false, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    fn sub(&self, n: usize) {
        if n > 0 {
            self.moves.fetch_add(1, Ordering::Relaxed);
            self.units.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// While anything is in flight, yields instead of letting the runtime
/// park: a current-thread runtime with a yielded task polls the I/O driver
/// with a zero timeout and leaves the paused clock where it is.
async fn hold_clock(shared: Arc<Shared>, stall_polls: u32) {
    let flight = &shared.flight;
    // Units given up on after a stall (normally none).
    let mut lost = 0;
    let mut still = 0u32;
    let mut seen = flight.moves.load(Ordering::Relaxed);
    loop {
        let units = flight.units.load(Ordering::Relaxed);
        lost = lost.min(units);
        let moves = flight.moves.load(Ordering::Relaxed);
        if moves != seen {
            (seen, still) = (moves, 0);
        }
        if units > lost && still < stall_polls {
            still += 1;
            tokio::task::yield_now().await;
            continue;
        }
        if units > lost {
            warn!(
                "{} bytes or connects in flight and none moving: the clock goes on",
                units - lost
            );
            lost = units;
        }
        still = 0;
        flight.asleep.store(true, Ordering::Relaxed);
        flight.wake.notified().await;
    }
}

/// A connect under way, in flight until dropped.
struct Connecting<'a>(&'a Flight);

impl<'a> Connecting<'a> {
    fn start(flight: &'a Flight) -> Self {
        flight.add(1);
        Self(flight)
    }
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0.sub(1);
    }
}

/// The end that connected.
const DIALER: usize = 0;
/// The end the listener accepted.
const ACCEPTOR: usize = 1;

/// One connection's bytes in flight, per end that is to read them.
struct Wire {
    ends: Mutex<[EndState; 2]>,
}

#[derive(Default)]
struct EndState {
    /// Bytes written to this end and not yet read by it.
    unread: usize,
    /// This end's socket exists (the listener may not have accepted yet).
    attached: bool,
    /// This end is gone: what is written to it is never read.
    closed: bool,
}

impl Wire {
    fn wrote(&self, flight: &Flight, by: usize, n: usize) {
        let mut ends = lock(&self.ends);
        let to = &mut ends[1 - by];
        if !to.closed {
            to.unread += n;
            flight.add(n);
        }
    }

    fn read(&self, flight: &Flight, by: usize, n: usize) {
        let mut ends = lock(&self.ends);
        // More may arrive than was counted: what a dialer wrote before it
        // closed, unaccepted, was given up on then.
        let counted = n.min(ends[by].unread);
        ends[by].unread -= counted;
        flight.sub(counted);
    }

    /// One end is gone: what was written to it is never read, nor what it
    /// wrote if the other end never appeared.
    fn close(&self, flight: &Flight, side: usize) {
        let mut ends = lock(&self.ends);
        let other_attached = ends[1 - side].attached;
        for (i, end) in ends.iter_mut().enumerate() {
            if i == side || !other_attached {
                flight.sub(std::mem::take(&mut end.unread));
                end.closed = true;
            }
        }
    }
}

/// One end of a loopback connection, counting what it writes and reads.
pub struct TcpEnd {
    stream: TcpStream,
    wire: Arc<Wire>,
    side: usize,
    key: (SocketAddr, SocketAddr),
    shared: Arc<Shared>,
}

impl TcpEnd {
    /// Finds the connection's other end, or waits for it.
    fn new(stream: TcpStream, shared: &Arc<Shared>, key: (SocketAddr, SocketAddr), side: usize) -> Self {
        let mut waiting = lock(&shared.waiting);
        let wire = waiting.remove(&key).unwrap_or_else(|| {
            let wire = Arc::new(Wire { ends: Mutex::default() });
            waiting.insert(key, wire.clone());
            wire
        });
        drop(waiting);
        lock(&wire.ends)[side].attached = true;
        Self {
            stream,
            wire,
            side,
            key,
            shared: shared.clone(),
        }
    }
}

impl Drop for TcpEnd {
    fn drop(&mut self) {
        self.wire.close(&self.shared.flight, self.side);
        let mut waiting = lock(&self.shared.waiting);
        if waiting.get(&self.key).is_some_and(|w| Arc::ptr_eq(w, &self.wire)) {
            waiting.remove(&self.key);
        }
    }
}

impl AsyncRead for TcpEnd {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.wire
                .read(&self.shared.flight, self.side, buf.filled().len() - before);
        }
        polled
    }
}

impl AsyncWrite for TcpEnd {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.wire.wrote(&self.shared.flight, self.side, n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.wire.wrote(&self.shared.flight, self.side, n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use axum::serve::Listener;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::TcpHub;
    use crate::agent::Dial;

    fn in_flight(hub: &TcpHub) -> usize {
        hub.shared.flight.units.load(Ordering::Relaxed)
    }

    #[tokio::test(start_paused = true)]
    async fn both_ends_send_small_frames_at_once() {
        let hub = TcpHub::start();
        let mut listener = hub.listen().unwrap();
        let client = hub.dial().await.unwrap();
        let (server, _) = listener.accept().await;
        assert!(client.stream.nodelay().unwrap() && server.stream.nodelay().unwrap());
    }

    /// Ten rounds in which the reply is held back by the kernel: a server
    /// answering each byte with two, in two writes, on a socket with Nagle's
    /// algorithm on (from the second round on, the kernel holds the second
    /// write until the client acknowledges the first, which it delays by
    /// tens of real milliseconds). None of it may take virtual time.
    async fn replies_held_back_by_the_kernel(hub: TcpHub) {
        let mut listener = hub.listen().unwrap();
        tokio::spawn(async move {
            let (mut server, _) = listener.accept().await;
            server.stream.set_nodelay(false).unwrap();
            let mut byte = [0u8; 1];
            while server.read_exact(&mut byte).await.is_ok() {
                server.write_all(&byte).await.unwrap();
                server.write_all(&byte).await.unwrap();
            }
        });
        // The client is a task of its own, as an agent is (a wake-up of the
        // test's own future would stop the clock anyway).
        let client = tokio::spawn(async move {
            let before = in_flight(&hub);
            let mut client = hub.dial().await.unwrap();
            let start = tokio::time::Instant::now();
            for round in 0..10u8 {
                client.write_all(&[round]).await.unwrap();
                let mut reply = [0u8; 2];
                // A timer due in a second loses to the reply, however long
                // the kernel takes over it.
                tokio::select! {
                    biased;
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        panic!("round {round}: the clock moved while a reply was on the wire")
                    }
                    read = client.read_exact(&mut reply) => { read.unwrap(); }
                }
                assert_eq!(reply, [round; 2]);
            }
            assert_eq!(start.elapsed(), Duration::ZERO);
            assert_eq!(in_flight(&hub), before);
        });
        client.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_the_kernel_holds_back_holds_the_clock() {
        replies_held_back_by_the_kernel(TcpHub::start()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_nobody_will_read_do_not_hold_the_clock() {
        let hub = TcpHub::start();
        let mut listener = hub.listen().unwrap();
        // Written to an end that closes without reading them.
        let mut client = hub.dial().await.unwrap();
        let (mut server, _) = listener.accept().await;
        server.write_all(b"unread").await.unwrap();
        assert_eq!(in_flight(&hub), 6);
        drop(client);
        assert_eq!(in_flight(&hub), 0);
        // Written after the other end closed.
        server.write_all(b"x").await.ok();
        assert_eq!(in_flight(&hub), 0);
        drop(server);
        // Written to a connection the listener never accepted.
        client = hub.dial().await.unwrap();
        client.write_all(b"hello?").await.unwrap();
        assert_eq!(in_flight(&hub), 6);
        drop(listener);
        drop(client);
        assert_eq!(in_flight(&hub), 0);
        assert!(
            hub.shared.waiting.lock().unwrap().is_empty(),
            "no connection left waiting"
        );
        // With nothing in flight the clock moves again.
        let start = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_miscount_does_not_freeze_the_clock_for_good() {
        // Enough polls to outlast a delayed acknowledgement, few enough to
        // give up within a second.
        let hub = TcpHub::with_stall_polls(200_000);
        // Something counted in flight that nobody will ever take out.
        hub.shared.flight.add(3);
        let start = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        // What goes in flight afterwards holds the clock again.
        replies_held_back_by_the_kernel(hub).await;
    }
}
