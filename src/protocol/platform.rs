//! An agent's platform: operating system and CPU architecture.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `os` and `arch` as they appear in build file names (`windows-amd64`).
///
/// Both parts are lowercase ASCII letters and digits: that is what the
/// scanner's grammar (U6) can split on `-` without ambiguity.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Platform {
    os: String,
    arch: String,
}

/// Why an os/arch pair is not a [`Platform`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform `{0}`: expected <os>-<arch> of lowercase letters and digits, e.g. windows-amd64")]
pub struct PlatformError(String);

fn is_part(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Platform {
    /// A platform from its parts, checked.
    pub fn new(os: &str, arch: &str) -> Result<Self, PlatformError> {
        if is_part(os) && is_part(arch) {
            Ok(Self {
                os: os.to_owned(),
                arch: arch.to_owned(),
            })
        } else {
            Err(PlatformError(format!("{os}-{arch}")))
        }
    }

    /// The operating system, e.g. `windows`.
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The CPU architecture, e.g. `amd64`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// True for Windows, the only platform whose old agents used `win-` ids.
    pub fn is_windows(&self) -> bool {
        self.os == "windows"
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('-') {
            Some((os, arch)) => Self::new(os, arch),
            None => Err(PlatformError(s.to_owned())),
        }
    }
}

impl TryFrom<String> for Platform {
    type Error = PlatformError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Platform> for String {
    fn from(p: Platform) -> Self {
        p.to_string()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.os, self.arch)
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_os_and_arch() {
        let p: Platform = "windows-amd64".parse().unwrap();
        assert_eq!((p.os(), p.arch()), ("windows", "amd64"));
        assert!(p.is_windows());
        assert_eq!(p.to_string(), "windows-amd64");
        assert!(!"linux-arm64".parse::<Platform>().unwrap().is_windows());
    }

    #[test]
    fn refuses_what_the_file_grammar_cannot_hold() {
        for bad in [
            "windows",
            "Windows-amd64",
            "windows-amd-64",
            "-amd64",
            "windows-",
            "win dows-x",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }
}
