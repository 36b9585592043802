//! Agent build versions: `MAJOR.MINOR.PATCH`, ordered numerically.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A build version, `MAJOR.MINOR.PATCH` and nothing else.
///
/// Ordering is numeric per component, so `0.6.9 < 0.6.10 < 0.7.0`: the
/// original server compared versions this way and so does every rule here.
/// Pre-release and build-metadata suffixes are refused, because the scanner's
/// grammar (U6) has no place for them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible changes.
    pub major: u64,
    /// Features.
    pub minor: u64,
    /// Fixes; most agent builds only move this.
    pub patch: u64,
}

/// Why a string is not a [`Version`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version `{input}`: {reason} (expected MAJOR.MINOR.PATCH, e.g. 0.6.58)")]
pub struct VersionError {
    input: String,
    reason: String,
}

impl Version {
    /// A version from its three components.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self { major, minor, patch }
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| VersionError {
            input: s.chars().take(64).collect(),
            reason,
        };
        if let Some(reason) = miscounted(s) {
            return Err(err(reason.to_owned()));
        }
        // semver does the numeric parsing (leading zeros, overflow, empty
        // parts); we only narrow it to the three-number form.
        let v = semver::Version::parse(s).map_err(|e| err(e.to_string()))?;
        if !v.pre.is_empty() {
            return Err(err(format!("pre-release `-{}` is not allowed", v.pre)));
        }
        if !v.build.is_empty() {
            return Err(err(format!("build metadata `+{}` is not allowed", v.build)));
        }
        Ok(Self::new(v.major, v.minor, v.patch))
    }
}

/// What is wrong with numbers-and-dots that are not three numbers, in
/// words (`1.0`: the patch number is missing); `None` for anything else,
/// which semver describes.
fn miscounted(s: &str) -> Option<&'static str> {
    let parts: Vec<&str> = s.split('.').collect();
    if !parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    match parts.len() {
        1 => Some("the minor and patch numbers are missing"),
        2 => Some("the patch number is missing"),
        3 => None,
        _ => Some("more than three numbers"),
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn orders_numerically_not_lexically() {
        assert!(v("0.6.9") < v("0.6.10"));
        assert!(v("0.6.10") < v("0.7.0"));
        assert!(v("0.9.99") < v("1.0.0"));
        assert_eq!(v("0.6.58").to_string(), "0.6.58");
    }

    #[test]
    fn refuses_anything_but_three_numbers() {
        for bad in [
            "",
            "0.6",
            "0.6.58.1",
            "v0.6.58",
            "0.6.58-beta",
            "0.6.58+x",
            "00.6.1",
            "a.b.c",
            " 0.6.1",
        ] {
            let err = bad.parse::<Version>().unwrap_err();
            assert!(err.to_string().contains("MAJOR.MINOR.PATCH"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_missing_or_extra_number_is_named() {
        let reason = |s: &str| s.parse::<Version>().unwrap_err().to_string();
        assert_eq!(
            reason("1.0"),
            "invalid version `1.0`: the patch number is missing (expected MAJOR.MINOR.PATCH, e.g. 0.6.58)"
        );
        assert!(
            reason("7").contains(": the minor and patch numbers are missing ("),
            "{}",
            reason("7")
        );
        assert!(
            reason("0.6.58.1").contains(": more than three numbers ("),
            "{}",
            reason("0.6.58.1")
        );
        // Anything else is semver's to describe.
        assert!(reason("1.0.x").contains("unexpected character"), "{}", reason("1.0.x"));
    }

    #[test]
    fn serde_round_trips_as_a_string() {
        let json = serde_json::to_string(&v("1.2.3")).unwrap();
        assert_eq!(json, "\"1.2.3\"");
        assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), v("1.2.3"));
        assert!(serde_json::from_str::<Version>("\"1.2\"").is_err());
    }

    proptest! {
        #[test]
        fn order_matches_the_tuple_order(a in any::<(u16, u16, u16)>(), b in any::<(u16, u16, u16)>()) {
            let va = v(&format!("{}.{}.{}", a.0, a.1, a.2));
            let vb = v(&format!("{}.{}.{}", b.0, b.1, b.2));
            prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
            prop_assert_eq!(v(&va.to_string()), va);
        }
    }
}
