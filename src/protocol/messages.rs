//! The JSON text frames exchanged on `GET /ws`, tagged by `type`.

use serde::{Deserialize, Serialize};

use super::{AgentId, DeviceId, ErrorCode, UpdateId, Version};

/// The largest text frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The WebSocket close code the server ends a connection with when another
/// connection said `hello` for the same agent row: a row has one session at
/// a time, the newest (a private-use code, 4000–4999).
pub const CLOSE_REPLACED: u16 = 4001;

/// A frame an agent sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// The first frame of every connection: who the agent is.
    Hello(Hello),
    /// Sent on a fixed interval; the server answers `ack` and maybe `update` (U1).
    Heartbeat {
        /// The version the agent runs now.
        version: Version,
    },
    /// The outcome of an `update` (U4).
    UpdateResult(UpdateResult),
    /// A log line from the agent (U13).
    Log {
        /// Severity, e.g. `error`.
        level: String,
        /// The text as the agent logged it.
        message: String,
    },
}

/// Every `type` an agent may send, for telling an unknown type from a bad field.
pub const AGENT_MESSAGE_TYPES: [&str; 4] = ["hello", "heartbeat", "update_result", "log"];

/// The `hello` frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// `win-<uuid>` or `<uuid>` (U12); rows are keyed by it exactly.
    pub device_id: DeviceId,
    /// The machine's name, for people.
    pub hostname: String,
    /// Operating system, e.g. `windows`.
    pub os: String,
    /// CPU architecture, e.g. `amd64`.
    pub arch: String,
    /// The version the agent runs.
    pub version: Version,
    /// The secret of the site the agent belongs to; it is how agents are admitted.
    pub site_key: String,
}

/// The `update_result` frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateResult {
    /// The `update_id` of the `update` this answers.
    pub update_id: UpdateId,
    /// Whether the agent now runs the new build.
    pub success: bool,
    /// The version the agent runs after the attempt.
    pub version: Version,
    /// What went wrong, when `success` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to `hello`: the agent's row id.
    Welcome {
        /// The row the agent was registered under.
        agent_id: AgentId,
    },
    /// Answer to every heartbeat.
    Ack {},
    /// Install this build (U1, U5).
    Update(UpdateOffer),
    /// The last frame was refused; the connection stays usable unless the
    /// server closes it.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// What was wrong, for people.
        message: String,
    },
}

/// The `update` frame: where to get a build and how to check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateOffer {
    /// Names this dispatch; echoed in `update_result`. A re-dispatch (U4) repeats it.
    pub update_id: UpdateId,
    /// The version to install.
    pub version: Version,
    /// Where to download the build (`…/downloads/<file>`).
    pub url: String,
    /// The hex SHA-256 the downloaded bytes must have.
    pub sha256: String,
    /// Size of the build in bytes.
    pub size: u64,
}

/// Why a text frame could not be read as an [`AgentMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// The error code the server answers with.
    pub code: ErrorCode,
    /// The parser's account of it.
    pub message: String,
}

/// Reads an agent's text frame, telling malformed JSON, an unknown `type`
/// and a bad field apart so the agent gets a precise `error` frame.
pub fn decode_agent_message(text: &str) -> Result<AgentMessage, DecodeError> {
    // The happy path parses once; only a failure pays for the diagnosis.
    serde_json::from_str(text).map_err(|err| {
        let fail = |code, message| DecodeError { code, message };
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return fail(ErrorCode::BadJson, format!("frame is not JSON: {e}")),
        };
        match value.get("type").and_then(|t| t.as_str()) {
            None => fail(ErrorCode::UnknownType, "frame has no string field `type`".into()),
            Some(t) if !AGENT_MESSAGE_TYPES.contains(&t) => fail(
                ErrorCode::UnknownType,
                format!(
                    "unknown message type `{}` (expected one of {})",
                    t.chars().take(40).collect::<String>(),
                    AGENT_MESSAGE_TYPES.join(", ")
                ),
            ),
            Some(t) => fail(ErrorCode::InvalidMessage, format!("invalid `{t}` frame: {err}")),
        }
    })
}

impl ServerMessage {
    /// An `error` frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: no maps with non-string keys,
        // no custom serialisers that error.
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("ServerMessage always serialises"))
    }
}

impl AgentMessage {
    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("AgentMessage always serialises"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_with_its_type_tag() {
        let text = r#"{"type":"hello","device_id":"win-6f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10","hostname":"pc1","os":"windows","arch":"amd64","version":"0.6.27","site_key":"k"}"#;
        let msg = decode_agent_message(text).unwrap();
        let AgentMessage::Hello(h) = &msg else {
            panic!("{msg:?}")
        };
        assert!(h.device_id.is_legacy());
        assert_eq!(decode_agent_message(&msg.to_json()).unwrap(), msg);
    }

    #[test]
    fn server_frames_are_tagged() {
        assert_eq!(ServerMessage::Ack {}.to_json(), r#"{"type":"ack"}"#);
        let e = ServerMessage::error(ErrorCode::HelloRequired, "x").to_json();
        assert_eq!(e, r#"{"type":"error","code":"hello_required","message":"x"}"#);
    }

    #[test]
    fn decode_errors_say_which_kind() {
        let code = |t: &str| decode_agent_message(t).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::BadJson);
        assert_eq!(code(r#"{"type":"reboot"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"version":"0.6.1"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"heartbeat","version":"0.6"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(code(r#"{"type":"heartbeat"}"#), ErrorCode::InvalidMessage);
        let msg = decode_agent_message(r#"{"type":"heartbeat","version":"x.y"}"#)
            .unwrap_err()
            .message;
        assert!(msg.contains("invalid version"), "{msg}");
    }
}
