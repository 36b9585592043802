//! `GET /ws`: the socket side of a [`Session`]. Frames in, replies and
//! pushed updates out; the logic is all in the session.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tracing::{debug, warn};

use super::AppState;
use super::limits::{Event, Gauges, MAX_WRITE_BUFFER};
use super::{ApiError, SessionLimits};
use crate::protocol::{CLOSE_REPLACED, ErrorCode, MAX_FRAME_BYTES, ServerMessage};
use crate::server::session::{Closing, Replies, Session};

/// Small buffers: agents send small frames, and a server holds thousands of
/// sockets (tungstenite's defaults are 128 KiB each way).
const READ_BUFFER: usize = 4 * 1024;

/// What the socket reads at most. Frames over the protocol's
/// [`MAX_FRAME_BYTES`] but under this are read whole and then refused, so the
/// agent gets the `frame_too_large` error and the 1009 close in order; a
/// larger one stops the read mid-frame, and unread bytes make the kernel
/// reset the connection, which may overtake them. Kept small: it is also what
/// any connection, admitted or not, can make the server buffer.
const READ_LIMIT: usize = 4 * MAX_FRAME_BYTES;

/// How long closing a connection may take: a peer that reads nothing would
/// otherwise keep the close frame, and the session, waiting for ever.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Upgrades to a WebSocket with frame limits and small buffers, unless
/// `max_connections` sessions are open: then 503 `server_busy`, at once.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    limits: Option<Extension<SessionLimits>>,
) -> Response {
    let limits = SessionLimits::of(limits);
    let Some(slot) = state.gauges().admit_session(limits.max_sessions) else {
        debug!("agent connection refused: {:?} sessions open", limits.max_sessions);
        let msg = "the server holds as many agent connections as it may; try again later";
        return ApiError::new(ErrorCode::ServerBusy, msg).into_response();
    };
    ws.max_message_size(READ_LIMIT)
        .max_frame_size(READ_LIMIT)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            serve_socket(state, socket, limits).await;
            drop(slot);
        })
}

/// One socket and the time by which the peer must next be heard from.
struct Socket {
    ws: WebSocket,
    gauges: Arc<Gauges>,
    /// Before `hello`: the hello deadline; after: the idle deadline.
    deadline: Option<Instant>,
}

/// Why a send did not go through: the connection is over either way.
struct SendFailed;

impl Socket {
    /// Sends a frame; counts the peer leaving too much unread, or not taking
    /// the frame before the deadline, as a write overflow.
    async fn send(&mut self, msg: &ServerMessage) -> Result<(), SendFailed> {
        let sent = match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, self.ws.send(Message::text(msg.to_json())))
                .await
                .unwrap_or(Err(axum::Error::new(Overflow))),
            None => self.ws.send(Message::text(msg.to_json())).await,
        };
        sent.map_err(|e| {
            if is_overflow(&e) {
                self.overflowed();
            }
            SendFailed
        })
    }

    /// Sends a close frame, waiting no longer than [`CLOSE_GRACE`].
    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, self.ws.send(Message::Close(Some(frame)))).await;
    }

    fn overflowed(&self) {
        self.gauges.count(Event::WriteOverflow);
        warn!("agent connection closed: it left {MAX_WRITE_BUFFER} bytes unread, or took nothing in time");
    }

    /// Resolves at the deadline; never without one.
    async fn timed_out(deadline: Option<Instant>) {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }
}

/// The peer did not take what was sent before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("the peer took nothing before the deadline")]
struct Overflow;

/// Serves one agent until it leaves, misbehaves past repair, stays silent
/// too long, or the server shuts down.
async fn serve_socket(state: AppState, ws: WebSocket, limits: SessionLimits) {
    let (mut session, mut pushed) = Session::open(state.next_conn_id());
    let mut shutdown = state.shutdown_signal();
    let mut socket = Socket {
        ws,
        gauges: state.gauges().clone(),
        deadline: limits.hello_timeout.map(|t| Instant::now() + t),
    };
    loop {
        let frame = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => {
                socket.close(close_code::AWAY, "server shutting down").await;
                break;
            }
            () = Socket::timed_out(socket.deadline) => {
                let (event, reason) = match session.agent() {
                    None => (Event::HelloTimeout, "no hello in time"),
                    Some(_) => (Event::IdleTimeout, "silent too long"),
                };
                state.gauges().count(event);
                debug!("agent connection closed: {reason}");
                socket.deadline = None;
                socket.close(close_code::POLICY, reason).await;
                break;
            }
            msg = pushed.recv() => match msg {
                Some(msg) => if socket.send(&msg).await.is_ok() { continue } else { break },
                // The core let go of this connection: the server is
                // stopping, or another connection of the row said hello.
                None if *shutdown.borrow() => {
                    socket.close(close_code::AWAY, "server shutting down").await;
                    break;
                }
                None => {
                    close_for(&mut socket, Closing::Replaced).await;
                    break;
                }
            },
            frame = socket.ws.recv() => frame,
        };
        let Some(replies) = answer(frame, &mut session, &state, &mut socket).await else {
            break;
        };
        // Any frame from an admitted agent starts its idle clock over.
        if session.agent().is_some() {
            socket.deadline = limits.idle_timeout.map(|t| Instant::now() + t);
        }
        if send_all(&mut socket, &replies).await.is_err() {
            break;
        }
        if let Some(closing) = session.closing_reason() {
            close_for(&mut socket, closing).await;
            break;
        }
    }
    session.on_close(&mut state.core());
}

/// The replies to one frame read from the socket; `None` ends the
/// connection (the peer left, or the frame could not be read or was too
/// large, which was answered).
async fn answer(
    frame: Option<Result<Message, axum::Error>>,
    session: &mut Session,
    state: &AppState,
    socket: &mut Socket,
) -> Option<Replies> {
    let replies = match frame {
        None | Some(Ok(Message::Close(_))) => return None,
        Some(Ok(Message::Text(text))) if text.len() > MAX_FRAME_BYTES => {
            refuse_too_large(socket).await;
            return None;
        }
        Some(Ok(Message::Text(text))) => session.on_text(&mut state.core(), text.as_str()),
        Some(Ok(Message::Binary(b))) if b.len() > MAX_FRAME_BYTES => {
            refuse_too_large(socket).await;
            return None;
        }
        Some(Ok(Message::Binary(_))) => {
            smallvec::smallvec![ServerMessage::error(
                ErrorCode::BinaryFrame,
                "binary frames are not part of the protocol; send JSON text",
            )]
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Replies::new(),
        Some(Err(e)) => {
            if is_overflow(&e) {
                socket.overflowed();
            } else if is_too_large(e) {
                refuse_too_large(socket).await;
            }
            return None;
        }
    };
    Some(replies)
}

/// The close the server sends when it ends a session itself.
async fn close_for(socket: &mut Socket, closing: Closing) {
    match closing {
        Closing::Refused => socket.close(close_code::POLICY, "refused").await,
        Closing::Replaced => socket.close(CLOSE_REPLACED, "replaced by a newer connection").await,
    }
}

async fn send_all(socket: &mut Socket, replies: &Replies) -> Result<(), SendFailed> {
    for reply in replies {
        socket.send(reply).await?;
    }
    Ok(())
}

/// `frame_too_large`, then the close with 1009.
async fn refuse_too_large(socket: &mut Socket) {
    let msg = format!("frame over {MAX_FRAME_BYTES} bytes");
    let _ = socket.send(&ServerMessage::error(ErrorCode::FrameTooLarge, msg)).await;
    socket.close(close_code::SIZE, "frame too large").await;
}

/// Resolves once the server shuts down (or its signal is gone).
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

/// The peer left too much unread (the write buffer is full), or took
/// nothing before the deadline.
fn is_overflow(e: &axum::Error) -> bool {
    let inner = std::error::Error::source(e);
    inner.is_some_and(|inner| {
        inner.is::<Overflow>() || matches!(inner.downcast_ref(), Some(tungstenite::Error::WriteBufferFull(_)))
    })
}

fn is_too_large(e: axum::Error) -> bool {
    let inner = e.into_inner();
    debug!("websocket read failed: {inner}");
    matches!(
        inner.downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}
