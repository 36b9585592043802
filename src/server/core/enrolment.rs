//! The cap on new agent rows per site key per minute: a key that leaked
//! (or a script holding one) cannot fill the database with made-up
//! machines faster than this. A re-`hello` of an existing row is never
//! capped; only a device id never seen makes a new row (U12).

use std::time::Duration;

use super::FastMap;
use crate::clock::Timestamp;
use crate::protocol::SiteId;

/// `rmmsim serve`'s default cap on enrolments per site key per minute: a
/// site rolling out the agent to a few hundred machines at once enrols them
/// over a few minutes (refused agents reconnect with backoff).
pub const DEFAULT_MAX_ENROLMENTS_PER_MINUTE: u32 = 120;

/// The window a cap counts over.
const WINDOW: Duration = Duration::from_secs(60);

/// Per site: when its current window began and how many rows it enrolled
/// in it. A fixed window: at most `cap` enrolments between its start and a
/// minute later, then a new window starts with the next enrolment.
#[derive(Debug, Default)]
pub(super) struct Windows(FastMap<SiteId, (Timestamp, u32)>);

impl Windows {
    /// Whether `site` may enrol one more row at `now` under `cap`.
    pub(super) fn allows(&self, site: SiteId, now: Timestamp, cap: Option<u32>) -> bool {
        let Some(cap) = cap else { return true };
        match self.0.get(&site) {
            Some(&(start, n)) if now < start.plus(WINDOW) => n < cap,
            _ => true,
        }
    }

    /// Counts an enrolment of `site` at `now` (once it is committed).
    pub(super) fn count(&mut self, site: SiteId, now: Timestamp) {
        let window = self.0.entry(site).or_insert((now, 0));
        if now >= window.0.plus(WINDOW) {
            *window = (now, 0);
        }
        window.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_enrols_at_most_cap_rows_a_minute_and_others_are_apart() {
        let (a, b) = (SiteId(1), SiteId(2));
        let t = Timestamp(1_000_000);
        let mut w = Windows::default();
        for _ in 0..3 {
            assert!(w.allows(a, t, Some(3)));
            w.count(a, t);
        }
        assert!(!w.allows(a, t.plus(Duration::from_secs(59)), Some(3)));
        assert!(w.allows(a, t, None), "no cap");
        assert!(w.allows(b, t, Some(3)), "another site has its own window");
        let later = t.plus(WINDOW);
        assert!(w.allows(a, later, Some(3)));
        w.count(a, later);
        assert!(w.allows(a, later, Some(2)));
        w.count(a, later);
        assert!(!w.allows(a, later, Some(2)), "the new window counts from its start");
        assert!(!w.allows(a, later, Some(0)), "a cap of 0 admits no new row");
    }
}
