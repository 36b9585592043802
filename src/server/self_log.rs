//! The server's own warnings and errors on their way to the signatures of
//! its pseudo-agent, hostname [`SERVER_HOSTNAME`] (U13: "the server's own
//! errors are logged the same way, under a pseudo-agent named `GuruRMM
//! Server`").
//!
//! Whatever raises one (a refused `hello`, a failed commit, a scan that
//! could not read the folder or skips a file it did not skip before, a
//! download refused or cut short, a connection limit tripping) calls
//! [`SelfLog::warn`] or [`SelfLog::error`], which writes the usual line to the
//! server's log and counts the event here, by signature. The core drains
//! these counts into its signatures at every flush and before it answers
//! for them. So an event costs a normalisation and a map update in memory,
//! never a write: a flood of refused hellos adds to one counter. At most
//! [`MAX_PENDING`] distinct signatures wait between two drains; events of
//! further ones are only counted ([`SelfLog::dropped`]).

use std::sync::{Arc, Mutex, MutexGuard};

use tracing::{error, warn};

use super::core::FastMap;
use super::logsig::{signature_of, truncate};
use crate::clock::{Clock, Timestamp};

/// The hostname of the server's pseudo-agent, as in the source.
pub const SERVER_HOSTNAME: &str = "GuruRMM Server";

/// Distinct signatures that may wait for the next drain.
pub const MAX_PENDING: usize = 256;

/// The levels the server logs its own events at (the signature rows' `level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SelfLevel {
    /// `warn`: a limit tripped, a request refused.
    Warn,
    /// `error`: the server failed at something (a commit, a scan).
    Error,
}

impl SelfLevel {
    /// The level as signature rows spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Repeats of one signature since the last drain.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Its level.
    pub level: SelfLevel,
    /// Its signature.
    pub signature: String,
    /// The first message with it since the last drain.
    pub sample: String,
    /// How many times.
    pub count: u64,
    /// The first time.
    pub first: Timestamp,
    /// The last time.
    pub last: Timestamp,
}

#[derive(Debug, Default)]
struct Counts {
    pending: FastMap<(SelfLevel, String), Pending>,
    dropped: u64,
}

/// Where the server's own events are counted; clones share the counts. The
/// core holds one and hands clones to the HTTP layer.
#[derive(Debug, Clone)]
pub struct SelfLog {
    clock: Clock,
    counts: Arc<Mutex<Counts>>,
}

impl SelfLog {
    /// An empty log stamped by `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            counts: Arc::default(),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs a warning and counts it.
    pub fn warn(&self, message: &str) {
        warn!("{message}");
        self.record(SelfLevel::Warn, message);
    }

    /// Logs an error and counts it.
    pub fn error(&self, message: &str) {
        error!("{message}");
        self.record(SelfLevel::Error, message);
    }

    /// Counts an event without writing a line (its caller logs it already).
    pub fn record(&self, level: SelfLevel, message: &str) {
        let now = self.clock.now();
        let signature = signature_of(message);
        let mut counts = self.counts();
        let full = counts.pending.len() >= MAX_PENDING;
        let key = (level, signature);
        match counts.pending.get_mut(&key) {
            Some(p) => {
                p.count += 1;
                p.last = now;
            }
            None if full => counts.dropped += 1,
            None => {
                let mut sample = message.to_owned();
                truncate(&mut sample, super::core::MAX_SAMPLE_BYTES);
                let pending = Pending {
                    level,
                    signature: key.1.clone(),
                    sample,
                    count: 1,
                    first: now,
                    last: now,
                };
                counts.pending.insert(key, pending);
            }
        }
    }

    /// Takes what was counted since the last drain, oldest first.
    pub fn drain(&self) -> Vec<Pending> {
        let mut taken: Vec<Pending> = self.counts().pending.drain().map(|(_, p)| p).collect();
        taken.sort_by(|a, b| (a.first, &a.signature).cmp(&(b.first, &b.signature)));
        taken
    }

    /// Events not counted since start: their signature found
    /// [`MAX_PENDING`] others waiting.
    pub fn dropped(&self) -> u64 {
        self.counts().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_of_one_signature_are_one_entry_and_the_rest_past_the_cap_are_dropped() {
        let log = SelfLog::new(Clock::Wall);
        for n in 0..1000 {
            log.record(SelfLevel::Warn, &format!("hello from {n} refused"));
        }
        log.record(SelfLevel::Error, "hello from 7 refused");
        let drained = log.drain();
        assert_eq!(drained.len(), 2, "one per level and signature");
        let warn = drained.iter().find(|p| p.level == SelfLevel::Warn).unwrap();
        assert_eq!((warn.count, warn.sample.as_str()), (1000, "hello from 0 refused"));
        assert!(log.drain().is_empty(), "a drain empties it");
        for n in 0..MAX_PENDING + 5 {
            log.record(SelfLevel::Warn, &format!("event {}", "x".repeat(n)));
        }
        assert_eq!(log.dropped(), 5);
        assert_eq!(log.drain().len(), MAX_PENDING);
    }
}
