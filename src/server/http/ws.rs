//! `GET /ws`: the socket side of a [`Session`]. Frames in, replies and
//! pushed updates out; the logic is all in the session.

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use tracing::debug;

use super::AppState;
use crate::protocol::{CLOSE_REPLACED, ErrorCode, MAX_FRAME_BYTES, ServerMessage};
use crate::server::session::{Closing, Session};

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

/// Upgrades to a WebSocket with frame limits and small buffers.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.max_message_size(READ_LIMIT)
        .max_frame_size(READ_LIMIT)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve_socket(state, socket))
}

async fn send(socket: &mut WebSocket, msg: &ServerMessage) -> bool {
    socket.send(Message::text(msg.to_json())).await.is_ok()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Serves one agent until it leaves, misbehaves past repair, or the server
/// shuts down.
async fn serve_socket(state: AppState, mut socket: WebSocket) {
    let (outbox, mut pushed) = mpsc::unbounded_channel();
    let mut session = Session::new(state.next_conn_id(), outbox);
    let mut shutdown = state.shutdown_signal();
    loop {
        let frame = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => {
                close(&mut socket, close_code::AWAY, "server shutting down").await;
                break;
            }
            msg = pushed.recv() => match msg {
                Some(msg) => if send(&mut socket, &msg).await { continue } else { break },
                // The core let go of this connection: the server is
                // stopping, or another connection of the row said hello.
                None if *shutdown.borrow() => {
                    close(&mut socket, close_code::AWAY, "server shutting down").await;
                    break;
                }
                None => {
                    close(&mut socket, CLOSE_REPLACED, "replaced by a newer connection").await;
                    break;
                }
            },
            frame = socket.recv() => frame,
        };
        let replies = match frame {
            None | Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Text(text))) if text.len() > MAX_FRAME_BYTES => {
                refuse_too_large(&mut socket).await;
                break;
            }
            Some(Ok(Message::Text(text))) => session.on_text(&mut state.core(), text.as_str()),
            Some(Ok(Message::Binary(b))) if b.len() > MAX_FRAME_BYTES => {
                refuse_too_large(&mut socket).await;
                break;
            }
            Some(Ok(Message::Binary(_))) => {
                smallvec::smallvec![ServerMessage::error(
                    ErrorCode::BinaryFrame,
                    "binary frames are not part of the protocol; send JSON text",
                )]
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(e)) => {
                if is_too_large(e) {
                    refuse_too_large(&mut socket).await;
                }
                break;
            }
        };
        for reply in &replies {
            if !send(&mut socket, reply).await {
                break;
            }
        }
        match session.closing_reason() {
            Some(Closing::Refused) => {
                close(&mut socket, close_code::POLICY, "refused").await;
                break;
            }
            Some(Closing::Replaced) => {
                close(&mut socket, CLOSE_REPLACED, "replaced by a newer connection").await;
                break;
            }
            None => {}
        }
    }
    session.on_close(&mut state.core());
}

/// `frame_too_large`, then the close with 1009.
async fn refuse_too_large(socket: &mut WebSocket) {
    let msg = format!("frame over {MAX_FRAME_BYTES} bytes");
    send(socket, &ServerMessage::error(ErrorCode::FrameTooLarge, msg)).await;
    close(socket, close_code::SIZE, "frame too large").await;
}

/// Resolves once the server shuts down (or its signal is gone).
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

fn is_too_large(e: axum::Error) -> bool {
    let inner = e.into_inner();
    debug!("websocket read failed: {inner}");
    matches!(
        inner.downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}
