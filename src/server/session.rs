//! One agent connection's protocol logic, without the socket: a message in,
//! the replies out. The axum WebSocket handler and the simulator's in-process
//! transport both drive this same type.

use tokio::sync::mpsc::UnboundedSender;
use tracing::{error, warn};

use super::core::{Connection, Core, CoreError};
use crate::protocol::{AgentId, AgentMessage, ErrorCode, ServerMessage, decode_agent_message};

/// The replies to one frame: for a heartbeat, an optional `update` then
/// `ack`; otherwise a `welcome`, an `error` or nothing.
pub type Replies = Vec<ServerMessage>;

/// A connection's state: unadmitted until a good `hello`.
#[derive(Debug)]
pub struct Session {
    conn: Connection,
    agent: Option<AgentId>,
    closing: bool,
}

impl Session {
    /// A new connection; `outbox` carries frames the server pushes unasked.
    pub fn new(conn_id: u64, outbox: UnboundedSender<ServerMessage>) -> Self {
        Self {
            conn: Connection { id: conn_id, outbox },
            agent: None,
            closing: false,
        }
    }

    /// The agent this connection admitted, once `hello` succeeded.
    pub fn agent(&self) -> Option<AgentId> {
        self.agent
    }

    /// True once the server has decided to close the connection (after a
    /// refused `hello`); the transport sends the replies, then closes.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Handles a text frame.
    pub fn on_text(&mut self, core: &mut Core, text: &str) -> Replies {
        match decode_agent_message(text) {
            Ok(msg) => self.on_message(core, msg),
            Err(e) => vec![ServerMessage::error(e.code, e.message)],
        }
    }

    /// Handles a decoded message.
    pub fn on_message(&mut self, core: &mut Core, msg: AgentMessage) -> Replies {
        let agent = match (&msg, self.agent) {
            (AgentMessage::Hello(_), Some(_)) => {
                return vec![ServerMessage::error(
                    ErrorCode::AlreadyHello,
                    "this connection already said hello",
                )];
            }
            (AgentMessage::Hello(hello), None) => return self.hello(core, hello),
            (_, None) => {
                return vec![ServerMessage::error(
                    ErrorCode::HelloRequired,
                    "send hello before anything else",
                )];
            }
            (_, Some(agent)) => agent,
        };
        let result = match msg {
            AgentMessage::Hello(_) => unreachable!("handled above"),
            // The update (if any) comes first and the ack last, so the ack
            // marks the end of a heartbeat's replies.
            AgentMessage::Heartbeat { version } => core.heartbeat(agent, version).map(|offer| {
                let mut replies: Replies = offer.map(ServerMessage::Update).into_iter().collect();
                replies.push(ServerMessage::Ack {});
                replies
            }),
            AgentMessage::UpdateResult(result) => core.update_result(agent, &result).map(|()| Vec::new()),
            AgentMessage::Log { level, message } => {
                core.log(agent, &level, &message);
                Ok(Vec::new())
            }
        };
        result.unwrap_or_else(|e| vec![error_frame(agent, &e)])
    }

    /// Forgets the connection; call it once the socket is gone.
    pub fn on_close(&mut self, core: &mut Core) {
        if let Some(agent) = self.agent.take() {
            core.disconnect(agent, self.conn.id);
        }
    }

    fn hello(&mut self, core: &mut Core, hello: &crate::protocol::Hello) -> Replies {
        match core.hello(hello) {
            Ok(agent) => {
                self.agent = Some(agent);
                core.connect(agent, self.conn.clone());
                vec![ServerMessage::Welcome { agent_id: agent }]
            }
            Err(CoreError::UnknownSiteKey) => {
                warn!("hello from {} refused: unknown site key", hello.device_id);
                self.closing = true;
                vec![ServerMessage::error(
                    ErrorCode::UnknownSiteKey,
                    "the site key admits no site",
                )]
            }
            Err(e @ CoreError::Invalid { .. }) => vec![ServerMessage::error(ErrorCode::InvalidMessage, e.to_string())],
            Err(e) => vec![error_frame(AgentId(0), &e)],
        }
    }
}

fn error_frame(agent: AgentId, e: &CoreError) -> ServerMessage {
    match e {
        CoreError::UnknownUpdate(_) => ServerMessage::error(ErrorCode::UnknownUpdate, e.to_string()),
        CoreError::Invalid { .. } => ServerMessage::error(ErrorCode::InvalidMessage, e.to_string()),
        _ => {
            error!("agent {agent}: {e}");
            ServerMessage::error(ErrorCode::Internal, "internal error; logged on the server")
        }
    }
}
