//! How an agent reaches the server: a [`Connector`] opens [`Link`]s (one
//! WebSocket session each) and fetches downloads. The WebSocket connector
//! works over any byte stream a [`Dial`] hands it: an in-memory pipe or a
//! loopback TCP socket.

use std::future::Future;
use std::io;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::debug;

use crate::http_client::Call;
use crate::protocol::{AgentMessage, MAX_FRAME_BYTES, ServerMessage};

/// One open session with the server.
pub trait Link: Send {
    /// Sends a frame.
    fn send(&mut self, msg: &AgentMessage) -> impl Future<Output = io::Result<()>> + Send;
    /// The next frame, or `None` once the server closed the session.
    /// Cancel-safe: a frame is never half-read when the future is dropped.
    fn recv(&mut self) -> impl Future<Output = Option<ServerMessage>> + Send;
    /// A frame already received, if the link has one at hand without
    /// waiting (an in-process link has the replies of the last `send`).
    fn try_recv(&mut self) -> Option<ServerMessage> {
        None
    }
    /// Closes the session politely.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Opens sessions and downloads builds.
pub trait Connector: Clone + Send + Sync + 'static {
    type Link: Link;
    /// Opens a session (no `hello` yet).
    fn connect(&self) -> impl Future<Output = io::Result<Self::Link>> + Send;
    /// Fetches a download URL's bytes.
    fn download(&self, url: &str) -> impl Future<Output = io::Result<Bytes>> + Send;
    /// The SHA-256 of downloaded bytes, hex. A connector that hands every
    /// agent the same buffer may remember it rather than hash it again.
    fn sha256(&self, bytes: &Bytes) -> String {
        crate::protocol::sha256_hex(bytes)
    }
}

/// A source of byte streams to the server.
pub trait Dial: Clone + Send + Sync + 'static {
    /// The stream: a TCP socket, or an in-memory pipe.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Opens a stream.
    fn dial(&self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// WebSocket sessions and HTTP downloads over streams from a [`Dial`].
#[derive(Clone)]
pub struct WsConnector<D> {
    dial: D,
    host: String,
}

impl<D: Dial> WsConnector<D> {
    /// `host` goes in the `Host` header and the handshake URL.
    pub fn new(dial: D, host: impl Into<String>) -> Self {
        Self {
            dial,
            host: host.into(),
        }
    }
}

/// Small buffers: an agent sends and receives frames of a few hundred bytes,
/// and a simulation holds thousands of agents (tungstenite's defaults are
/// 128 KiB each way).
pub fn small_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl<D: Dial> Connector for WsConnector<D> {
    type Link = WsLink<D::Io>;

    async fn connect(&self) -> io::Result<Self::Link> {
        let io = self.dial.dial().await?;
        let url = format!("ws://{}/ws", self.host);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, io, Some(small_ws_config()))
            .await
            .map_err(other)?;
        Ok(WsLink { ws })
    }

    async fn download(&self, url: &str) -> io::Result<Bytes> {
        let io = self.dial.dial().await?;
        Call::get(url_path(url)).send_ok(io, &self.host).await.map_err(other)
    }
}

/// The path of a download URL: `http://host:port/downloads/x` or `/downloads/x`.
pub fn url_path(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    }
}

/// A WebSocket session.
pub struct WsLink<Io> {
    ws: WebSocketStream<Io>,
}

impl<Io: AsyncRead + AsyncWrite + Unpin + Send> Link for WsLink<Io> {
    async fn send(&mut self, msg: &AgentMessage) -> io::Result<()> {
        self.ws.send(Message::text(msg.to_json())).await.map_err(other)
    }

    async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) => match serde_json::from_str(text.as_str()) {
                    Ok(msg) => return Some(msg),
                    Err(e) => debug!("unreadable server frame: {e}"),
                },
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::url_path;

    #[test]
    fn download_paths() {
        assert_eq!(url_path("http://127.0.0.1:8080/downloads/a.exe"), "/downloads/a.exe");
        assert_eq!(url_path("/downloads/a.exe"), "/downloads/a.exe");
        assert_eq!(url_path("http://host"), "/");
    }
}
