//! The accept loop: `axum::serve` does not let a server time out a request's
//! headers or bound how many connections it holds, so `run` serves each
//! connection with hyper's HTTP/1 builder itself, as `axum::serve` does
//! underneath, adding both.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::serve::{Listener, ListenerExt};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::limits::{Event, Gauges, Slot};

/// What the accept loop enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct AcceptLimits {
    /// Connections open at once, at most; one accepted beyond is closed.
    pub max_open: Option<usize>,
    /// Time to send a request's headers; `None`: no limit.
    pub header_timeout: Option<Duration>,
    /// How long a connection may take nothing written to it; `None`: for ever.
    pub write_stall: Option<Duration>,
}

/// Serves `router` on every connection `listener` accepts until `shutdown`
/// resolves; then runs `on_shutdown`, lets every HTTP connection finish its
/// request and waits for them.
pub(super) async fn serve<L>(
    mut listener: L,
    router: Router,
    gauges: Arc<Gauges>,
    limits: AcceptLimits,
    shutdown: impl Future<Output = ()>,
    on_shutdown: impl FnOnce(),
) where
    L: Listener,
{
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            () = &mut shutdown => break,
        };
        // Over the budget: closed at once, before it costs anything more.
        let Some(slot) = gauges.admit_connection(limits.max_open) else {
            debug!("connection refused: {:?} open", limits.max_open);
            continue;
        };
        let io = Counted {
            io,
            slot,
            stall_limit: limits.write_stall,
            stalled: None,
        };
        tokio::spawn(serve_connection(
            io,
            router.clone(),
            gauges.clone(),
            limits,
            stopping.clone(),
        ));
    }
    drop(listener);
    on_shutdown();
    stop.send_replace(true);
    // Every connection task holds a receiver: wait until they are all gone.
    drop(stopping);
    stop.closed().await;
}

async fn serve_connection<I>(
    io: I,
    router: Router,
    gauges: Arc<Gauges>,
    limits: AcceptLimits,
    mut stopping: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service).with_upgrades());
    let mut asked_to_stop = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                match result {
                    Err(e) if e.is_timeout() => {
                        gauges.count(Event::HeaderTimeout);
                        debug!("connection closed: request headers did not arrive in time");
                    }
                    Err(e) => debug!("connection ended: {e}"),
                    Ok(()) => {}
                }
                break;
            }
            _ = stopping.wait_for(|&stop| stop), if !asked_to_stop => {
                asked_to_stop = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Sets TCP_NODELAY on every socket a TCP listener accepts: agents' frames
/// are small and each is answered, so Nagle's algorithm only delays them.
pub fn without_nagle(listener: tokio::net::TcpListener) -> impl Listener<Io = tokio::net::TcpStream> {
    listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            warn!("TCP_NODELAY on an accepted socket: {e}");
        }
    })
}

/// A connection that holds its place in the budget until it is dropped
/// (after a WebSocket upgrade the socket lives on in the session, and so does
/// its place), and fails once its peer has taken nothing written to it for
/// `stall_limit`. A WebSocket peer that sends pings and never reads fills
/// the session's bounded write buffer (tungstenite then keeps only the
/// latest pong); this is what closes it.
struct Counted<I> {
    io: I,
    slot: Slot,
    stall_limit: Option<Duration>,
    /// Armed when a write could not go through; disarmed by one that did.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> Counted<I> {
    /// Passes a write's outcome on, unless the peer has taken nothing for
    /// `stall_limit`: then an error that ends the connection.
    fn watch<T>(&mut self, cx: &mut Context<'_>, outcome: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let Some(limit) = self.stall_limit else {
            return outcome;
        };
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if stalled.as_mut().poll(cx).is_pending() {
            return outcome;
        }
        self.slot.count(Event::WriteOverflow);
        warn!("connection closed: its peer took nothing for {limit:?}");
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading")))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, outcome)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = without_nagle(listener);
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap(), "the accepted socket has Nagle on");
        drop(client);
    }
}
