//! Device ids: how an agent names its machine when it registers (U12).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Platform, Version};

/// The id an agent registers with.
///
/// Old Windows agents sent `win-<uuid>`; newer agents send the bare
/// `<uuid>` of the same machine. The server keys rows by the id exactly, so
/// the two forms of one machine are two rows (U12).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceId {
    /// `win-<uuid>`, sent by Windows agents older than the identity boundary.
    Legacy(Uuid),
    /// `<uuid>`, sent by every agent at or past the boundary.
    Bare(Uuid),
}

/// Why a string is not a [`DeviceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid device id `{0}`: expected a uuid or win-<uuid>")]
pub struct DeviceIdError(String);

impl DeviceId {
    /// The id an agent of `version` on `platform` sends for `machine`: the
    /// legacy form for Windows agents older than `boundary`, else the bare one.
    pub fn for_agent(machine: Uuid, platform: &Platform, version: Version, boundary: Version) -> Self {
        if platform.is_windows() && version < boundary {
            Self::Legacy(machine)
        } else {
            Self::Bare(machine)
        }
    }

    /// The machine uuid inside either form.
    pub fn machine(&self) -> Uuid {
        match self {
            Self::Legacy(u) | Self::Bare(u) => *u,
        }
    }

    /// True for the old `win-<uuid>` form.
    pub fn is_legacy(&self) -> bool {
        matches!(self, Self::Legacy(_))
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DeviceIdError(s.chars().take(80).collect());
        // Only the hyphenated form: it is what both generations of the agent
        // send, and accepting others would make two spellings of one id.
        let parse = |u: &str| match Uuid::try_parse(u) {
            Ok(id) if u.len() == 36 && id.hyphenated().to_string() == u.to_ascii_lowercase() => Ok(id),
            _ => Err(err()),
        };
        match s.strip_prefix("win-") {
            Some(rest) => parse(rest).map(Self::Legacy),
            None => parse(s).map(Self::Bare),
        }
    }
}

impl TryFrom<String> for DeviceId {
    type Error = DeviceIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceId> for String {
    fn from(d: DeviceId) -> Self {
        d.to_string()
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Legacy(u) => write!(f, "win-{}", u.hyphenated()),
            Self::Bare(u) => write!(f, "{}", u.hyphenated()),
        }
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10";

    #[test]
    fn both_forms_carry_the_same_machine() {
        let legacy: DeviceId = format!("win-{U}").parse().unwrap();
        let bare: DeviceId = U.parse().unwrap();
        assert!(legacy.is_legacy() && !bare.is_legacy());
        assert_ne!(legacy, bare);
        assert_eq!(legacy.machine(), bare.machine());
        assert_eq!(legacy.to_string(), format!("win-{U}"));
        assert_eq!(bare.to_string(), U);
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "",
            "win-",
            "lin-6f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10",
            "6f1c2a9e0b7d4c1e9a513d2f8e4b7c10",
            "win-win-x",
        ] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_boundary_decides_the_form_on_windows_only() {
        let m = Uuid::parse_str(U).unwrap();
        let b: Version = "0.6.40".parse().unwrap();
        let win: Platform = "windows-amd64".parse().unwrap();
        let lin: Platform = "linux-amd64".parse().unwrap();
        assert!(DeviceId::for_agent(m, &win, "0.6.27".parse().unwrap(), b).is_legacy());
        assert!(!DeviceId::for_agent(m, &win, "0.6.40".parse().unwrap(), b).is_legacy());
        assert!(!DeviceId::for_agent(m, &lin, "0.6.27".parse().unwrap(), b).is_legacy());
    }
}
