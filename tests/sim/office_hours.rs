//! Office-hours machines boot like people do: each at a random moment
//! within `boot_spread` after 08:00, so the last laptop of the morning comes
//! up after the 99th percentile; `0s` boots them all at 08:00:00.

use std::time::Duration;

use rmmsim::agent::Availability;
use rmmsim::metrics::Report;

use crate::common::*;

/// 200 laptops, off when 1.0.1 is promoted at 02:00 on a Monday (UTC): they
/// take it as they boot.
fn scenario() -> rmmsim::scenario::Plan {
    checked(
        &one_update("office-mornings", 4, "2026-06-01T00:00:00Z", hours(12), hours(1))
            .health_gate(0, 1.0)
            .client(Client::new("c").site("office"))
            .fleet(
                Fleet::new(200, "c/office", OLD)
                    .name("laptops")
                    .availability(AvailabilitySpec::OfficeHours),
            )
            .event(hours(2), Event::promote(NEW)),
    )
}

/// t99 and t100 of the promote, in seconds.
fn tails(r: &Report) -> (f64, f64) {
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let build = r.builds.iter().find(|b| b.version == Version::new(1, 0, 1)).unwrap();
    let stable = build.convergence.iter().find(|c| c.channel == Channel::Stable).unwrap();
    assert_eq!((stable.figures.population, stable.figures.reached), (200, 200));
    (stable.figures.t99_s.unwrap(), stable.figures.t100_s.unwrap())
}

#[test]
fn laptops_boot_across_the_spread_and_the_last_one_trails_the_99th_percentile() {
    let plan = scenario();
    let spread = Duration::from_secs(30 * 60);
    assert_eq!(
        plan.groups[0].availability,
        Availability::OfficeHours {
            utc_offset_minutes: 0,
            boot_spread: spread
        },
        "30m by default"
    );
    let (t99, t100) = tails(&run(&plan));
    assert!(t99 < t100, "t99 {t99} s, t100 {t100} s");
    // From the promote at 02:00: booted between 08:00 and 08:30, then a
    // download, an install and a restart (65 s by default).
    let (first, last) = (6.0 * 3600.0, 6.0 * 3600.0 + spread.as_secs_f64() + 65.0);
    assert!(first < t99 && t100 <= last, "t99 {t99} s, t100 {t100} s");
}

#[test]
fn no_spread_boots_every_laptop_at_eight_sharp() {
    let mut plan = scenario();
    plan.groups[0].availability = Availability::OfficeHours {
        utc_offset_minutes: 0,
        boot_spread: Duration::ZERO,
    };
    let (t99, t100) = tails(&run(&plan));
    assert_eq!(t99, t100);
    assert_eq!(t100, 6.0 * 3600.0 + 65.0, "08:00:00 and the update's 65 s");
}
