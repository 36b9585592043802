//! One agent connection's protocol logic, without the socket: a message in,
//! the replies out. The axum WebSocket handler and the simulator's in-process
//! transport both drive this same type.

use tokio::sync::mpsc::{self, Receiver, Sender};

use super::core::{Connection, Core, CoreError};
use crate::protocol::{AgentId, AgentMessage, ErrorCode, ServerMessage, decode_agent_message};

/// The replies to one frame: for a heartbeat, an optional `update` then
/// `ack`; otherwise a `welcome`, an `error` or nothing.
pub type Replies = smallvec::SmallVec<[ServerMessage; 2]>;

/// Why the server ends a connection after the replies to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// A `hello` was refused past repair (unknown site key, a device id of
    /// another client, too many enrolments): close with 1008.
    Refused,
    /// Another connection said `hello` for the same row and replaced this
    /// one: close with [`CLOSE_REPLACED`](crate::protocol::CLOSE_REPLACED).
    Replaced,
}

/// Frames the server may queue for one session unasked (manual updates and
/// rollbacks, U5). A push that finds the queue full is dropped and counted
/// ([`Core::push_overflows`]); its update stays pending and is re-sent on the
/// agent's next heartbeat (U4). A live session takes them as they come.
pub const PUSH_QUEUE: usize = 16;

/// A connection's state: unadmitted until a good `hello`.
#[derive(Debug)]
pub struct Session {
    conn_id: u64,
    /// Handed to the core at `hello`: from then on the core holds the only
    /// sender, so the channel closes when the core forgets the connection
    /// (shutdown, or another connection of the same row said `hello`).
    outbox: Option<Sender<ServerMessage>>,
    agent: Option<AgentId>,
    closing: Option<Closing>,
}

impl Session {
    /// A new connection, and the receiving end of the frames the server
    /// will push to it unasked (at most [`PUSH_QUEUE`] waiting).
    pub fn open(conn_id: u64) -> (Self, Receiver<ServerMessage>) {
        let (outbox, pushed) = mpsc::channel(PUSH_QUEUE);
        let session = Self {
            conn_id,
            outbox: Some(outbox),
            agent: None,
            closing: None,
        };
        (session, pushed)
    }

    /// The agent this connection admitted, once `hello` succeeded.
    pub fn agent(&self) -> Option<AgentId> {
        self.agent
    }

    /// True once the server has decided to close the connection (after a
    /// refused `hello`, or once another connection replaced this one); the
    /// transport sends the replies, then closes.
    pub fn closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Why the connection is closing, once it is.
    pub fn closing_reason(&self) -> Option<Closing> {
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
            (_, Some(agent)) if !core.is_current(agent, self.conn_id) => {
                // Another connection of the row said hello: this one ends,
                // so a row never has two sessions.
                self.closing = Some(Closing::Replaced);
                return Replies::new();
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
        result.unwrap_or_else(|e| smallvec::smallvec![error_frame(core, Some(agent), &e)])
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
                let device = hello.device_id;
                core.self_log()
                    .warn(&format!("hello from {device} refused: unknown site key"));
                self.refuse(ErrorCode::UnknownSiteKey, "the site key admits no site".into())
            }
            Err(e @ CoreError::IdentityConflict { .. }) => {
                core.self_log().warn(&format!("hello refused: {e}"));
                self.refuse(ErrorCode::IdentityConflict, e.to_string())
            }
            Err(e @ CoreError::EnrolmentRateLimited { .. }) => {
                core.self_log()
                    .warn(&format!("hello from {} refused: {e}", hello.device_id));
                self.refuse(ErrorCode::EnrolmentRateLimited, e.to_string())
            }
            Err(e @ CoreError::Invalid { .. }) => {
                smallvec::smallvec![ServerMessage::error(ErrorCode::InvalidMessage, e.to_string())]
            }
            Err(e) => smallvec::smallvec![error_frame(core, None, &e)],
        }
    }

    /// An `error` frame, then the connection closes.
    fn refuse(&mut self, code: ErrorCode, message: String) -> Replies {
        self.closing = Some(Closing::Refused);
        smallvec::smallvec![ServerMessage::error(code, message)]
    }
}

/// The `error` frame for a refused frame; the server's own failures are
/// logged and counted for its pseudo-agent (U13).
fn error_frame(core: &Core, agent: Option<AgentId>, e: &CoreError) -> ServerMessage {
    match e {
        CoreError::UnknownUpdate(_) => ServerMessage::error(ErrorCode::UnknownUpdate, e.to_string()),
        CoreError::Invalid { .. } => ServerMessage::error(ErrorCode::InvalidMessage, e.to_string()),
        _ => {
            match agent {
                Some(agent) => core.self_log().error(&format!("agent {agent}: {e}")),
                None => core.self_log().error(&format!("hello failed: {e}")),
            }
            ServerMessage::error(ErrorCode::Internal, "internal error; logged on the server")
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::error::TryRecvError;

    use super::*;
    use crate::protocol::{AgentMessage, UpdateResult};
    use crate::server::core::testing::{Fixture, device, v};

    fn session(id: u64) -> (Session, Receiver<ServerMessage>) {
        Session::open(id)
    }

    fn codes(replies: &Replies) -> Vec<ErrorCode> {
        replies
            .iter()
            .filter_map(|r| match r {
                ServerMessage::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }

    fn hello_text(n: u32, key: &str, version: &str) -> String {
        AgentMessage::Hello(Fixture::hello_frame(n, key, version)).to_json()
    }

    const HEARTBEAT_ON_1_0_0: &str = r#"{"type":"heartbeat","version":"1.0.0"}"#;

    #[tokio::test(start_paused = true)]
    async fn nothing_but_hello_is_served_before_hello_and_bad_frames_keep_the_connection() {
        let mut f = Fixture::new();
        let (mut s, _) = session(1);
        assert_eq!(codes(&s.on_text(&mut f.core, "{not json")), [ErrorCode::BadJson]);
        assert_eq!(
            codes(&s.on_text(&mut f.core, r#"{"type":"reboot"}"#)),
            [ErrorCode::UnknownType]
        );
        assert_eq!(
            codes(&s.on_text(&mut f.core, HEARTBEAT_ON_1_0_0)),
            [ErrorCode::HelloRequired]
        );
        assert_eq!((s.agent(), s.closing()), (None, false));
        let replies = s.on_text(&mut f.core, &hello_text(1, &f.beta_key, "1.0.0"));
        let id = f.core.agent_by_device(&device(1)).unwrap().id;
        assert_eq!(replies.as_slice(), [ServerMessage::Welcome { agent_id: id }]);
        assert_eq!(s.agent(), Some(id));
        assert!(f.core.is_online(id));
        let again = s.on_text(&mut f.core, &hello_text(1, &f.beta_key, "1.0.0"));
        assert_eq!(codes(&again), [ErrorCode::AlreadyHello]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_is_answered_by_an_optional_update_then_ack() {
        let mut f = Fixture::new();
        let (mut beta, _) = session(1);
        let (mut stable, _) = session(2);
        beta.on_text(&mut f.core, &hello_text(1, &f.beta_key, "1.0.0"));
        stable.on_text(&mut f.core, &hello_text(2, &f.stable_key, "1.0.0"));
        let replies = beta.on_text(&mut f.core, HEARTBEAT_ON_1_0_0);
        let [ServerMessage::Update(offer), ServerMessage::Ack {}] = replies.as_slice() else {
            panic!("{replies:?}")
        };
        assert_eq!(offer.version, v("1.1.0"));
        let replies = stable.on_text(&mut f.core, HEARTBEAT_ON_1_0_0);
        assert_eq!(replies.as_slice(), [ServerMessage::Ack {}]);
        let log = r#"{"type":"log","level":"error","message":"x"}"#;
        assert!(stable.on_text(&mut f.core, log).is_empty());
        assert_eq!(f.core.counters().logs, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_site_key_closes_and_a_bad_hello_does_not() {
        let mut f = Fixture::new();
        let (mut s, _) = session(1);
        let mut nameless = Fixture::hello_frame(1, &f.beta_key, "1.0.0");
        nameless.hostname.clear();
        let replies = s.on_message(&mut f.core, AgentMessage::Hello(nameless));
        assert_eq!(codes(&replies), [ErrorCode::InvalidMessage]);
        assert!(!s.closing());
        let replies = s.on_text(&mut f.core, &hello_text(1, "nope", "1.0.0"));
        assert_eq!(codes(&replies), [ErrorCode::UnknownSiteKey]);
        assert!(s.closing());
        assert_eq!(f.core.agents().count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_report_on_an_update_never_sent_is_unknown_update() {
        let mut f = Fixture::new();
        let (mut s, _) = session(1);
        s.on_text(&mut f.core, &hello_text(1, &f.beta_key, "1.0.0"));
        let report = AgentMessage::UpdateResult(UpdateResult {
            update_id: crate::protocol::UpdateId(42),
            success: true,
            version: v("1.1.0"),
            error: None,
        });
        assert_eq!(codes(&s.on_message(&mut f.core, report)), [ErrorCode::UnknownUpdate]);
    }

    #[tokio::test(start_paused = true)]
    async fn pushes_a_session_does_not_take_stop_at_the_queue_and_are_counted() {
        let mut f = Fixture::new();
        f.publish("1.2.0", crate::protocol::Channel::Beta);
        f.core.rescan().unwrap();
        let (mut s, mut pushed) = session(1);
        s.on_text(&mut f.core, &hello_text(1, &f.stable_key, "1.0.0"));
        let id = s.agent().unwrap();
        let targets = ["1.1.0", "1.2.0"].into_iter().cycle().take(PUSH_QUEUE + 1);
        let pushes: Vec<bool> = targets
            .map(|t| f.core.manual_update(id, Some(v(t))).unwrap().pushed)
            .collect();
        assert!(pushes[..PUSH_QUEUE].iter().all(|&p| p), "{pushes:?}");
        assert!(!pushes[PUSH_QUEUE], "a push beyond the queue is not sent");
        assert_eq!(f.core.push_overflows(), 1);
        assert_eq!(
            f.core.pending().count(),
            1,
            "the last update is still pending (U4 re-sends it)"
        );
        let mut queued = 0;
        while pushed.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, PUSH_QUEUE);
    }

    #[tokio::test(start_paused = true)]
    async fn pushed_frames_reach_the_latest_connection_and_closing_an_old_one_keeps_it() {
        let mut f = Fixture::new();
        let (mut old, _) = session(1);
        let (mut new, mut pushed) = session(2);
        old.on_text(&mut f.core, &hello_text(1, &f.stable_key, "1.0.0"));
        new.on_text(&mut f.core, &hello_text(1, &f.stable_key, "1.0.0"));
        let id = new.agent().unwrap();
        old.on_close(&mut f.core);
        assert!(
            f.core.is_online(id),
            "the old connection's close must not drop the new one"
        );
        let manual = f.core.manual_update(id, Some(v("1.1.0"))).unwrap();
        assert!(manual.pushed);
        let Ok(ServerMessage::Update(offer)) = pushed.try_recv() else {
            panic!("nothing pushed")
        };
        assert_eq!(offer.update_id, manual.update.id);
        new.on_close(&mut f.core);
        assert!(!f.core.is_online(id));
        let closed = pushed.try_recv();
        assert_eq!(closed, Err(TryRecvError::Disconnected), "the core let go of the outbox");
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_connection_of_the_row_ends_the_older_session() {
        let mut f = Fixture::new();
        let (mut old, mut old_pushed) = session(1);
        let (mut new, _) = session(2);
        old.on_text(&mut f.core, &hello_text(1, &f.beta_key, "1.0.0"));
        new.on_text(&mut f.core, &hello_text(1, &f.beta_key, "1.0.0"));
        assert_eq!(
            old_pushed.try_recv(),
            Err(TryRecvError::Disconnected),
            "its push channel closed"
        );
        let heartbeats = f.core.counters().heartbeats;
        let replies = old.on_text(&mut f.core, HEARTBEAT_ON_1_0_0);
        assert!(replies.is_empty(), "{replies:?}");
        assert_eq!(old.closing_reason(), Some(Closing::Replaced));
        assert_eq!(f.core.counters().heartbeats, heartbeats, "the old session did nothing");
        old.on_close(&mut f.core);
        assert!(f.core.is_online(new.agent().unwrap()));
        assert_eq!(new.closing_reason(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_failure_answers_internal_and_the_session_goes_on() {
        let mut f = Fixture::new();
        let (mut s, _) = session(1);
        s.on_text(&mut f.core, &hello_text(1, &f.beta_key, "1.0.0"));
        f.faults.fail_from_now();
        assert_eq!(
            codes(&s.on_text(&mut f.core, HEARTBEAT_ON_1_0_0)),
            [ErrorCode::Internal]
        );
        f.faults.heal();
        let replies = s.on_text(&mut f.core, HEARTBEAT_ON_1_0_0);
        assert!(
            matches!(replies.as_slice(), [ServerMessage::Update(_), ServerMessage::Ack {}]),
            "{replies:?}"
        );
    }
}
