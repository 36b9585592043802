//! When a machine is powered on: always, office hours in its site's time
//! zone, or on and off at random (laptops that are off half the week).

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::clock::Timestamp;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// A machine's power pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Availability {
    /// Never off.
    Always,
    /// Monday to Friday, 08:00 to 18:00 local time.
    OfficeHours {
        /// The site's fixed offset from UTC, in minutes (no daylight saving).
        utc_offset_minutes: i32,
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
            },
            Availability::OfficeHours { utc_offset_minutes } => {
                let (on, until) = office(now, utc_offset_minutes);
                Self { pattern, on, until }
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
                }
            }
        }
    }

    /// Whether the machine is on, and until when that holds, as of `now`.
    pub fn at(&mut self, now: Timestamp, rng: &mut ChaCha8Rng) -> (bool, Timestamp) {
        while now >= self.until {
            match self.pattern {
                Availability::Always => return (true, NEVER),
                Availability::OfficeHours { utc_offset_minutes } => {
                    (self.on, self.until) = office(now, utc_offset_minutes);
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

/// Office hours at `now`: on or off, and the next change.
fn office(now: Timestamp, offset_min: i32) -> (bool, Timestamp) {
    let offset = i64::from(offset_min) * MINUTE_MS;
    let local = now.0 + offset;
    let day = local.div_euclid(DAY_MS);
    let in_day = local.rem_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: weekday 0 = Monday.
    let weekday = |d: i64| (d + 3).rem_euclid(7);
    let open = 8 * 60 * MINUTE_MS;
    let close = 18 * 60 * MINUTE_MS;
    let to_utc = |local_ms: i64| Timestamp(local_ms - offset);
    if weekday(day) < 5 && (open..close).contains(&in_day) {
        return (true, to_utc(day * DAY_MS + close));
    }
    // Off: the next weekday opening.
    let mut next = if weekday(day) < 5 && in_day < open {
        day
    } else {
        day + 1
    };
    while weekday(next) >= 5 {
        next += 1;
    }
    (false, to_utc(next * DAY_MS + open))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn office_hours_follow_the_local_week() {
        // 2026-05-28 is a Thursday.
        assert_eq!(office(t("2026-05-28T07:59:00Z"), 0), (false, t("2026-05-28T08:00:00Z")));
        assert_eq!(office(t("2026-05-28T08:00:00Z"), 0), (true, t("2026-05-28T18:00:00Z")));
        // Friday evening → Monday morning.
        assert_eq!(office(t("2026-05-29T18:00:00Z"), 0), (false, t("2026-06-01T08:00:00Z")));
        assert_eq!(office(t("2026-05-30T12:00:00Z"), 0), (false, t("2026-06-01T08:00:00Z")));
        // UTC+2: 08:00 local is 06:00 UTC.
        assert_eq!(
            office(t("2026-05-28T06:30:00Z"), 120),
            (true, t("2026-05-28T16:00:00Z"))
        );
        // UTC-5: Friday 20:00 UTC is 15:00 local, still open.
        assert_eq!(
            office(t("2026-05-29T20:00:00Z"), -300),
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
