//! Office-hours machines boot like people do: each at a random moment
//! within `boot_spread` after 08:00, so the last laptop of the morning comes
//! up after the 99th percentile; `0s` boots them all at 08:00:00.

use std::time::Duration;

use rmmsim::agent::Availability;
use rmmsim::metrics::Report;
use rmmsim::protocol::{Channel, Version};

use crate::common::*;

/// 200 laptops, off when 1.0.1 is promoted at 02:00 on a Monday (UTC): they
/// take it as they boot.
const SCENARIO: &str = r#"
[scenario]
name = "office-mornings"
seed = 4
start = "2026-06-01T00:00:00Z"
duration = "12h"

[server]
health_gate = { min_successes = 0, max_failure_rate = 1.0 }

[[clients]]
name = "c"
sites = [{ name = "office" }]

[[builds]]
version = "1.0.0"
channel = "stable"
published = "0s"

[[builds]]
version = "1.0.1"
published = "1h"

[[fleet]]
name = "laptops"
count = 200
site = "c/office"
version = "1.0.0"
availability = "office-hours"

[[events]]
at = "2h"
promote = "1.0.1"
"#;

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
    let plan = parse(SCENARIO);
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
    let mut plan = parse(SCENARIO);
    plan.groups[0].availability = Availability::OfficeHours {
        utc_offset_minutes: 0,
        boot_spread: Duration::ZERO,
    };
    let (t99, t100) = tails(&run(&plan));
    assert_eq!(t99, t100);
    assert_eq!(t100, 6.0 * 3600.0 + 65.0, "08:00:00 and the update's 65 s");
}
