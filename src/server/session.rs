//! One agent connection's protocol logic, without the socket: a message in,
//! the replies out. The axum WebSocket handler and the simulator's in-process
//! transport both drive this same type.

use tokio::sync::mpsc::UnboundedSender;
use tracing::{error, warn};

use super::core::{Connection, Core, CoreError};
use crate::protocol::{AgentId, AgentMessage, ErrorCode, ServerMessage, decode_agent_message};

/// The replies to one frame: for a heartbeat, an optional `update` then
/// `ack`; otherwise a `welcome`, an `error` or nothing.
pub type Replies = smallvec::SmallVec<[ServerMessage; 2]>;

/// A connection's state: unadmitted until a good `hello`.
#[derive(Debug)]
pub struct Session {
    conn_id: u64,
    /// Handed to the core at `hello`: from then on the core holds the only
    /// sender, so the channel closes when the core forgets the connection
    /// (shutdown, or the agent reconnecting elsewhere).
    outbox: Option<UnboundedSender<ServerMessage>>,
    agent: Option<AgentId>,
    closing: bool,
}

impl Session {
    /// A new connection; `outbox` carries frames the server pushes unasked.
    pub fn new(conn_id: u64, outbox: UnboundedSender<ServerMessage>) -> Self {
        Self {
            conn_id,
            outbox: Some(outbox),
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
            Err(e) => smallvec::smallvec![ServerMessage::error(e.code, e.message)],
        }
    }

    /// Handles a decoded message.
    pub fn on_message(&mut self, core: &mut Core, msg: AgentMessage) -> Replies {
        let agent = match (&msg, self.agent) {
            (AgentMessage::Hello(_), Some(_)) => {
                return smallvec::smallvec![ServerMessage::error(
                    ErrorCode::AlreadyHello,
                    "this connection already said hello",
                )];
            }
            (AgentMessage::Hello(hello), None) => return self.hello(core, hello),
            (_, None) => {
                return smallvec::smallvec![ServerMessage::error(
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
            AgentMessage::UpdateResult(result) => core.update_result(agent, &result).map(|()| Replies::new()),
            AgentMessage::Log { level, message } => {
                core.log(agent, &level, &message);
                Ok(Replies::new())
            }
        };
        result.unwrap_or_else(|e| smallvec::smallvec![error_frame(agent, &e)])
    }

    /// Forgets the connection; call it once the socket is gone.
    pub fn on_close(&mut self, core: &mut Core) {
        if let Some(agent) = self.agent.take() {
            core.disconnect(agent, self.conn_id);
        }
    }

    fn hello(&mut self, core: &mut Core, hello: &crate::protocol::Hello) -> Replies {
        match core.hello(hello) {
            Ok(agent) => {
                self.agent = Some(agent);
                if let Some(outbox) = self.outbox.take() {
                    core.connect(
                        agent,
                        Connection {
                            id: self.conn_id,
                            outbox,
                        },
                    );
                }
                smallvec::smallvec![ServerMessage::Welcome { agent_id: agent }]
            }
            Err(CoreError::UnknownSiteKey) => {
                warn!("hello from {} refused: unknown site key", hello.device_id);
                self.closing = true;
                smallvec::smallvec![ServerMessage::error(
                    ErrorCode::UnknownSiteKey,
                    "the site key admits no site",
                )]
            }
            Err(e @ CoreError::Invalid { .. }) => {
                smallvec::smallvec![ServerMessage::error(ErrorCode::InvalidMessage, e.to_string())]
            }
            Err(e) => smallvec::smallvec![error_frame(AgentId(0), &e)],
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
