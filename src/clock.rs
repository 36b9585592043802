//! The one clock every server, agent and simulation reads.
//!
//! `serve` and `swarm` run on the wall clock. A simulation runs on tokio's
//! paused clock and anchors it at the scenario's start date, so the server
//! stamps rows with the simulated date while days pass in seconds.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in (wall or simulated) time: milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// Why a string is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp `{0}`: expected RFC 3339 UTC, e.g. 2026-05-28T00:00:00Z")]
pub struct TimestampError(String);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant plus `d`.
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    /// How long after `earlier` this is (zero if it is not after).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }

    fn to_system_time(self) -> SystemTime {
        match u64::try_from(self.0) {
            Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
            Err(_) => UNIX_EPOCH - Duration::from_millis(self.0.unsigned_abs()),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1000 == 0 {
            humantime::format_rfc3339_seconds(self.to_system_time()).fmt(f)
        } else {
            humantime::format_rfc3339_millis(self.to_system_time()).fmt(f)
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = humantime::parse_rfc3339_weak(s).map_err(|_| TimestampError(s.chars().take(40).collect()))?;
        let ms = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Ok(Self(ms))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A duration for people, in at most three units: `14d`, `11d 23h 50m`,
/// `2m 2s`, `0s`.
pub fn short(d: Duration) -> String {
    let mut left = d.as_secs() + u64::from(d.subsec_millis() >= 500);
    if left == 0 {
        return "0s".into();
    }
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= size {
            parts.push(format!("{}{unit}", left / size));
            left %= size;
        }
    }
    parts.truncate(3);
    parts.join(" ")
}

/// Where the time comes from.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system's wall clock (`serve`, `swarm`).
    Wall,
    /// tokio's clock, which a simulation pauses and auto-advances, anchored so
    /// that `origin` reads as `anchor`.
    Virtual {
        /// The date the simulation starts at.
        anchor: Timestamp,
        /// tokio's instant when the clock was made.
        origin: tokio::time::Instant,
    },
}

impl Clock {
    /// A virtual clock that reads `anchor` now and advances with tokio's
    /// (paused) clock. Needs a tokio runtime.
    pub fn virtual_from(anchor: Timestamp) -> Self {
        Self::Virtual {
            anchor,
            origin: tokio::time::Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        match self {
            // The one place the wall clock is read; everything else asks this clock.
            #[allow(clippy::disallowed_methods)]
            Self::Wall => {
                let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            }
            Self::Virtual { anchor, origin } => anchor.plus(origin.elapsed()),
        }
    }

    /// The tokio instant at which this clock reads `at` (now, if `at` is past),
    /// for `sleep_until`. Exact on a virtual clock; on the wall clock it is
    /// measured from now.
    pub fn instant_at(&self, at: Timestamp) -> tokio::time::Instant {
        match self {
            Self::Wall => tokio::time::Instant::now() + at.since(self.now()),
            Self::Virtual { anchor, origin } => *origin + at.since(*anchor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations() {
        let s = Duration::from_secs;
        assert_eq!(short(s(0)), "0s");
        assert_eq!(short(s(122)), "2m 2s");
        assert_eq!(short(s(14 * 86_400)), "14d");
        assert_eq!(short(s(11 * 86_400 + 23 * 3600 + 50 * 60 + 7)), "11d 23h 50m");
        assert_eq!(short(Duration::from_millis(1500)), "2s");
    }

    #[test]
    fn timestamps_print_and_parse_rfc3339() {
        let t: Timestamp = "2026-05-28T00:00:00Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-05-28T00:00:00Z");
        assert_eq!(
            t.plus(Duration::from_millis(1500)).to_string(),
            "2026-05-28T00:00:01.500Z"
        );
        assert_eq!(t.plus(Duration::from_secs(90)).since(t), Duration::from_secs(90));
        assert!("yesterday".parse::<Timestamp>().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_virtual_clock_follows_tokio_time() {
        let start: Timestamp = "2026-05-28T00:00:00Z".parse().unwrap();
        let clock = Clock::virtual_from(start);
        assert_eq!(clock.now(), start);
        tokio::time::sleep(Duration::from_secs(86_400)).await;
        assert_eq!(clock.now().to_string(), "2026-05-29T00:00:00Z");
    }
}
