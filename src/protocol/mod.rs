//! Wire types shared by the server and the agents. Pure: no I/O, no tokio.

mod device_id;
mod error_code;
mod messages;
mod platform;
mod version;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use device_id::{DeviceId, DeviceIdError};
pub use error_code::ErrorCode;
pub use messages::{
    AGENT_MESSAGE_TYPES, AgentMessage, CLOSE_REPLACED, DecodeError, Hello, MAX_FRAME_BYTES, ServerMessage, UpdateOffer,
    UpdateResult, decode_agent_message,
};
pub use platform::{Platform, PlatformError};
pub use version::{Version, VersionError};

/// Most bytes a client or site name may have.
pub const MAX_NAME_LEN: usize = 100;

/// What a client or site name must be, as error messages say it.
pub const NAME_RULE: &str = "1 to 100 bytes, no '/', no control characters, no surrounding spaces";

/// The one name check for clients and sites, shared by the server's API and
/// the scenario checker: not empty, at most [`MAX_NAME_LEN`] bytes, no `/`
/// (sites are named `client/site`), no control characters (names reach logs,
/// reports and terminals), no surrounding whitespace.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.trim() == name
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

/// Hex SHA-256 of some bytes: the digest an `update` offer carries and an
/// agent checks a download against (U6).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// An update channel. Only these two exist (U2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Gets a build only after it is promoted (U7, U9).
    Stable,
    /// Gets every build as soon as it is published (U8).
    Beta,
}

impl Channel {
    /// `stable` or `beta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Beta => "beta",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a [`Channel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid channel `{0}`: expected `stable` or `beta`")]
pub struct ChannelError(String);

impl FromStr for Channel {
    type Err = ChannelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stable" => Ok(Self::Stable),
            "beta" => Ok(Self::Beta),
            _ => Err(ChannelError(s.chars().take(40).collect())),
        }
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

id_type!(
    /// An agent row's id, handed out by the server in `welcome`.
    AgentId
);
id_type!(
    /// One dispatched update (U4); a re-dispatch keeps the id.
    UpdateId
);
id_type!(
    /// A client (a customer) of the RMM.
    ClientId
);
id_type!(
    /// A site of a client; agents belong to a site.
    SiteId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_by_one_rule() {
        for ok in ["acme", "hq", "Acme Corp", "é", &"x".repeat(MAX_NAME_LEN)] {
            assert!(is_valid_name(ok), "{ok:?}");
        }
        for bad in [
            "",
            " ",
            " acme",
            "acme ",
            "a/b",
            "a\tb",
            "a\nb",
            "a\u{7f}b",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn sha256_hex_is_the_lowercase_hex_of_the_standard_digest() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
