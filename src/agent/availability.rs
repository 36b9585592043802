//! When a machine is powered on: always, office hours in its site's time
//! zone (booted and shut down at a random moment near the hour, as people
//! do), or on and off at random (laptops that are off half the week).

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clock::Timestamp;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// A machine's power pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Availability {
    /// Never off.
    Always,
    /// Monday to Friday, 08:00 to 18:00 local time: each workday the
    /// machine boots at a random moment within `boot_spread` after 08:00
    /// and shuts down within `boot_spread` after 18:00, drawn afresh every
    /// day.
    OfficeHours {
        /// The site's fixed offset from UTC, in minutes (no daylight saving).
        utc_offset_minutes: i32,
        /// Zero: on at 08:00:00 and off at 18:00:00 exactly. Less than the
        /// office day (the scenario checks say so), so a machine boots
        /// before it shuts down and is off again before the next morning.
        boot_spread: Duration,
    },
    /// On and off at random: exponentially distributed sessions and absences.
    Intermittent {
        /// Mean time powered on.
        mean_session: Duration,
        /// Mean time powered off.
        mean_absence: Duration,
    },
}

/// Where a machine is in its pattern: on or off, and until when.
#[derive(Debug, Clone)]
pub struct Schedule {
    pattern: Availability,
    on: bool,
    until: Timestamp,
    /// Office hours with a spread: seeds each workday's boot and shutdown
    /// (one draw of the agent's generator when the schedule is made).
    days: u64,
}

/// Far enough ahead to mean "no change during any run".
const NEVER: Timestamp = Timestamp(i64::MAX / 4);

fn exp_ms(rng: &mut ChaCha8Rng, mean: Duration) -> i64 {
    // Inverse-CDF sampling of an exponential; at least one second so a
    // session is never empty.
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let ms = -(mean.as_millis() as f64) * u.ln();
    (ms as i64).max(1000)
}

impl Schedule {
    /// The state at `now`; draws the intermittent pattern's first period.
    pub fn new(pattern: Availability, now: Timestamp, rng: &mut ChaCha8Rng) -> Self {
        match pattern {
            Availability::Always => Self {
                pattern,
                on: true,
                until: NEVER,
                days: 0,
            },
            Availability::OfficeHours {
                utc_offset_minutes,
                boot_spread,
            } => {
                // No draw without a spread: the agent's other choices stay
                // what they were before spreads existed.
                let days = if boot_spread.is_zero() { 0 } else { rng.random() };
                let (on, until) = office(now, utc_offset_minutes, boot_spread, days);
                Self {
                    pattern,
                    on,
                    until,
                    days,
                }
            }
            Availability::Intermittent {
                mean_session,
                mean_absence,
            } => {
                // Start in the stationary distribution: on with probability
                // session / (session + absence), for a memoryless remainder.
                let total = (mean_session + mean_absence).as_secs_f64().max(f64::EPSILON);
                let on = rng.random_bool((mean_session.as_secs_f64() / total).clamp(0.0, 1.0));
                let mean = if on { mean_session } else { mean_absence };
                Self {
                    pattern,
                    on,
                    until: Timestamp(now.0 + exp_ms(rng, mean)),
                    days: 0,
                }
            }
        }
    }

    /// Whether the machine is on, and until when that holds, as of `now`.
    pub fn at(&mut self, now: Timestamp, rng: &mut ChaCha8Rng) -> (bool, Timestamp) {
        while now >= self.until {
            match self.pattern {
                Availability::Always => return (true, NEVER),
                Availability::OfficeHours {
                    utc_offset_minutes,
                    boot_spread,
                } => {
                    (self.on, self.until) = office(now, utc_offset_minutes, boot_spread, self.days);
                }
                Availability::Intermittent {
                    mean_session,
                    mean_absence,
                } => {
                    self.on = !self.on;
                    let mean = if self.on { mean_session } else { mean_absence };
                    self.until = Timestamp(self.until.0 + exp_ms(rng, mean));
                }
            }
        }
        (self.on, self.until)
    }
}

/// 1970-01-01 was a Thursday: weekday 0 = Monday.
fn is_workday(day: i64) -> bool {
    (day + 3).rem_euclid(7) < 5
}

/// A workday's boot and shutdown, in local milliseconds since the epoch:
/// 08:00 and 18:00 plus offsets below `spread` drawn from `days` and the day
/// alone, so every call for that day agrees.
fn workday(day: i64, spread: Duration, days: u64) -> (i64, i64) {
    let (open, close) = (day * DAY_MS + 8 * 60 * MINUTE_MS, day * DAY_MS + 18 * 60 * MINUTE_MS);
    let spread_ms = i64::try_from(spread.as_millis()).unwrap_or(i64::MAX);
    if spread_ms == 0 {
        return (open, close);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(days ^ (day as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let boot = open + rng.random_range(0..spread_ms);
    (boot, close + rng.random_range(0..spread_ms))
}

/// Office hours at `now`: on or off, and the next change.
fn office(now: Timestamp, offset_min: i32, spread: Duration, days: u64) -> (bool, Timestamp) {
    let offset = i64::from(offset_min) * MINUTE_MS;
    let local = now.0 + offset;
    let to_utc = |local_ms: i64| Timestamp(local_ms - offset);
    // Yesterday's shutdown may fall after midnight; the day before's can
    // not (the spread is under ten hours).
    let mut day = local.div_euclid(DAY_MS) - 1;
    loop {
        if is_workday(day) {
            let (boot, shutdown) = workday(day, spread, days);
            if local < boot {
                return (false, to_utc(boot));
            }
            if local < shutdown {
                return (true, to_utc(shutdown));
            }
        }
        day += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const SPREAD: Duration = Duration::from_secs(30 * 60);

    fn office_hours(utc_offset_minutes: i32, boot_spread: Duration) -> Availability {
        Availability::OfficeHours {
            utc_offset_minutes,
            boot_spread,
        }
    }

    /// Every switch of a machine's power from `start` to `end`: (when, on).
    fn switches(pattern: Availability, seed: u64, start: Timestamp, end: Timestamp) -> Vec<(Timestamp, bool)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut s = Schedule::new(pattern, start, &mut rng);
        let mut out = Vec::new();
        let (mut on, mut until) = s.at(start, &mut rng);
        while until < end {
            let (now_on, next) = s.at(until, &mut rng);
            if now_on != on {
                out.push((until, now_on));
            }
            (on, until) = (now_on, next);
        }
        out
    }

    /// Milliseconds since local midnight, and the local weekday (0 = Monday).
    fn local_time(at: Timestamp, offset_min: i32) -> (i64, i64) {
        let local = at.0 + i64::from(offset_min) * MINUTE_MS;
        (local.rem_euclid(DAY_MS), (local.div_euclid(DAY_MS) + 3).rem_euclid(7))
    }

    #[test]
    fn spread_machines_boot_and_shut_down_within_the_spread_after_the_hour() {
        // 2026-06-01 is a Monday; two weeks in UTC+02:00.
        let (start, end) = (t("2026-05-31T12:00:00Z"), t("2026-06-14T12:00:00Z"));
        let (open, close) = (8 * 60 * MINUTE_MS, 18 * 60 * MINUTE_MS);
        let spread = SPREAD.as_millis() as i64;
        let mut boots = Vec::new();
        for seed in 0..50 {
            let sw = switches(office_hours(120, SPREAD), seed, start, end);
            assert_eq!(sw.len(), 20, "ten workdays, on and off each: {sw:?}");
            for (at, on) in sw {
                let (ms, weekday) = local_time(at, 120);
                assert!(weekday < 5, "switched on a weekend: {at:?}");
                let from = if on { open } else { close };
                assert!((from..from + spread).contains(&ms), "{at:?} on={on}");
                if on {
                    boots.push(ms);
                }
            }
        }
        // Really spread: people do not all come in at the same minute, and
        // one machine does not boot at the same moment every day.
        boots.sort_unstable();
        boots.dedup();
        assert!(boots.len() > 450, "{} distinct boots of 500", boots.len());
        assert!(boots[boots.len() - 1] - boots[0] > spread * 9 / 10);
        let one = switches(office_hours(120, SPREAD), 7, start, end);
        let mornings: Vec<i64> = one.iter().filter(|s| s.1).map(|s| local_time(s.0, 120).0).collect();
        assert!(mornings.windows(2).any(|w| w[0] != w[1]), "{mornings:?}");
    }

    #[test]
    fn spread_days_are_decided_by_the_seed() {
        let (start, end) = (t("2026-06-01T00:00:00Z"), t("2026-06-15T00:00:00Z"));
        let run = |seed| switches(office_hours(-300, SPREAD), seed, start, end);
        assert_eq!(run(11), run(11));
        assert_ne!(run(11), run(12));
        // A schedule made at any moment agrees with one walked there from
        // the start: a day's times depend on the machine and the day alone.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut walked = Schedule::new(office_hours(-300, SPREAD), start, &mut rng);
        for (at, on) in run(11) {
            for now in [Timestamp(at.0 - 1), at] {
                let mut rng = ChaCha8Rng::seed_from_u64(11);
                let mut made = Schedule::new(office_hours(-300, SPREAD), now, &mut rng);
                assert_eq!(made.at(now, &mut rng), walked.at(now, &mut rng), "{now:?}");
            }
            assert_eq!(walked.at(at, &mut rng).0, on);
        }
    }

    #[test]
    fn no_spread_is_on_the_hour_and_draws_nothing() {
        let (start, end) = (t("2026-06-01T00:00:00Z"), t("2026-06-08T00:00:00Z"));
        for (at, on) in switches(office_hours(0, Duration::ZERO), 3, start, end) {
            let ms = local_time(at, 0).0;
            assert_eq!(ms, if on { 8 } else { 18 } * 60 * MINUTE_MS, "{at:?}");
        }
        // The agent's generator is left as it was, so its other choices are
        // what they were before spreads existed.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let _ = Schedule::new(office_hours(0, Duration::ZERO), start, &mut rng);
        assert_eq!(rng.random::<u64>(), ChaCha8Rng::seed_from_u64(3).random::<u64>());
    }

    #[test]
    fn office_hours_follow_the_local_week() {
        // 2026-05-28 is a Thursday.
        assert_eq!(
            office(t("2026-05-28T07:59:00Z"), 0, Duration::ZERO, 0),
            (false, t("2026-05-28T08:00:00Z"))
        );
        assert_eq!(
            office(t("2026-05-28T08:00:00Z"), 0, Duration::ZERO, 0),
            (true, t("2026-05-28T18:00:00Z"))
        );
        // Friday evening → Monday morning.
        assert_eq!(
            office(t("2026-05-29T18:00:00Z"), 0, Duration::ZERO, 0),
            (false, t("2026-06-01T08:00:00Z"))
        );
        assert_eq!(
            office(t("2026-05-30T12:00:00Z"), 0, Duration::ZERO, 0),
            (false, t("2026-06-01T08:00:00Z"))
        );
        // UTC+2: 08:00 local is 06:00 UTC.
        assert_eq!(
            office(t("2026-05-28T06:30:00Z"), 120, Duration::ZERO, 0),
            (true, t("2026-05-28T16:00:00Z"))
        );
        // UTC-5: Friday 20:00 UTC is 15:00 local, still open.
        assert_eq!(
            office(t("2026-05-29T20:00:00Z"), -300, Duration::ZERO, 0),
            (true, t("2026-05-29T23:00:00Z"))
        );
    }

    #[test]
    fn intermittent_machines_are_on_about_their_share_of_the_time() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let pattern = Availability::Intermittent {
            mean_session: Duration::from_secs(2 * 3600),
            mean_absence: Duration::from_secs(6 * 3600),
        };
        let start = t("2026-05-28T00:00:00Z");
        let mut s = Schedule::new(pattern, start, &mut rng);
        let (mut on_ms, mut now) = (0i64, start);
        let end = Timestamp(start.0 + 400 * DAY_MS);
        while now < end {
            let (on, until) = s.at(now, &mut rng);
            let next = until.min(end);
            if on {
                on_ms += next.0 - now.0;
            }
            now = next;
        }
        let share = on_ms as f64 / (400 * DAY_MS) as f64;
        assert!((share - 0.25).abs() < 0.03, "on {share:.3} of the time, expected 0.25");
    }

    #[test]
    fn always_is_always_on() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = Schedule::new(Availability::Always, t("2026-05-28T00:00:00Z"), &mut rng);
        assert!(s.at(t("2027-01-01T00:00:00Z"), &mut rng).0);
    }
}
