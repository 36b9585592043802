//! Scenarios built in code: the checks a file goes through, errors that
//! name the key (there is no line), and a file written from a builder that
//! reads back as the same plan.

use std::time::Duration;

use rmmsim::scenario::builder::{Log, LogLevel};
use rmmsim::scenario::{self, Plan};

use crate::common::*;

/// A scenario that sets every key a file can hold.
fn every_key() -> PlanBuilder {
    let mid = Version::new(1, 0, 1);
    let new = Version::new(1, 1, 0);
    PlanBuilder::new("every-key", date("2026-06-01T00:00:00Z"), hours(48))
        .description("every key, once")
        .seed(7)
        .sample_every(mins(5))
        .max_new_error_rate(0.75)
        .health_gate(2, 0.25)
        .egress(12_500_000.5)
        .rescan_every(secs(45))
        .max_enrolments_per_minute(50)
        .agent(|a| {
            a.identity_boundary(Version::new(0, 6, 40))
                .heartbeat(secs(90))
                .jitter(0.05)
                .download(secs(10) + Duration::from_millis(500))
                .bandwidth(1e6 / 3.0)
                .install(secs(20))
                .restart(secs(5))
                .reconnect_min(secs(2))
                .reconnect_max(mins(10))
                .availability(AvailabilitySpec::intermittent(hours(3), hours(9)))
                .boot_spread(mins(20))
                .log(Log::new(LogLevel::Info, "took {n} ms", 0.5))
                .log(Log::new(LogLevel::Warn, "disk {hex} at {uuid} {{full}}", 1.0 / 3.0))
        })
        .client(
            Client::new("acme")
                .channel(Channel::Beta)
                .timezone(120)
                .site("hq")
                .site(Site::new("lab").channel(Channel::Stable).timezone(-330)),
        )
        .build(
            Build::new(OLD)
                .platforms([windows(), linux()])
                .channel(Channel::Stable)
                .published(secs(0))
                .size(3 * 1024 * 1024 + 1),
        )
        .build(
            Build::new(mid)
                .published(hours(1) + mins(30) + secs(15))
                .install_failure_rate(0.125)
                .corrupt_digest()
                .log(Log::new(LogLevel::Error, "service crashed: {n}", 2.5)),
        )
        .build(Build::new(new).missing_digest())
        .fleet(
            Fleet::new(10, "acme/hq", OLD)
                .name("desk")
                .platform(linux())
                .channel(Channel::Beta)
                .availability(AvailabilitySpec::OfficeHours)
                .boot_spread(mins(45))
                .heartbeat(mins(2))
                .download(secs(1))
                .bandwidth(250_000.0)
                .install(mins(1))
                .restart(secs(1)),
        )
        .fleet(Fleet::new(3, "acme/lab", OLD))
        .fleet(Fleet::new(1, "acme/lab", NEW).availability(AvailabilitySpec::intermittent(hours(1), mins(90))))
        .event(mins(10), Event::publish(new))
        .event(hours(1), Event::promote(mid).scope(&linux()).force())
        .event(hours(2), Event::rollback(mid))
        .event(hours(3), Event::update(Some(OLD)).group("desk"))
        .event(hours(4), Event::update(None).site("acme/lab"))
        .event(hours(5), Event::set_channel(None).client("acme"))
        .event(hours(5), Event::set_channel(Some(Channel::Beta)).group("fleet-2"))
        .event(hours(6), Event::disconnect(0.3, hours(2)))
        .event(hours(7), Event::server_restart(mins(3)))
        .expect(
            Expect::new("fraction_on")
                .version(OLD)
                .channel(Channel::Stable)
                .at(hours(24))
                .of_online()
                .min(0.5)
                .max(1.0),
        )
        .expect(Expect::new("t90").version(mid).channel(Channel::Beta).max(mins(10)))
        .expect(Expect::new("stranded").reason("offline").max(0.0))
        .expect(Expect::new("stable_lag_builds").at(hours(12)).max(2.0))
        .expect(
            Expect::new("log_rate")
                .version(mid)
                .level(LogLevel::Error)
                .new_in(mid)
                .min(1.0),
        )
        .expect(Expect::new("log_signatures").level(LogLevel::Debug).max(0.0))
        .gate_tolerance(0.3)
        .gate_slack(secs(10))
}

/// The plan as Rust prints it, expectation lines set to `line`.
fn shown(mut plan: Plan, line: usize) -> String {
    plan.expects.iter_mut().for_each(|e| e.line = line);
    format!("{plan:#?}")
}

#[test]
fn a_file_written_by_the_builder_reads_back_as_the_same_plan() {
    let builder = every_key();
    let built = checked(&builder);
    let text = builder.to_toml();
    let read = scenario::parse("every-key.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // A plan built in code has no file: its expectations have no line.
    assert!(built.expects.iter().all(|e| e.line == 0), "{:?}", built.expects);
    let lines: Vec<usize> = read.expects.iter().map(|e| e.line).collect();
    for (e, line) in read.expects.iter().zip(&lines) {
        let table = text.lines().nth(line - 1).unwrap_or_default();
        assert_eq!(table, "[[expect]]", "{} at line {line}:\n{text}", e.label);
    }
    assert_eq!(shown(read, 0), shown(built.clone(), 0), "{text}");
    // Every key was set: the plan is not the defaults' plan.
    assert_eq!(
        (built.seed, built.egress, built.regression.tolerance),
        (7, Some(12_500_000.5), 0.3)
    );
    assert_eq!(built.max_enrolments_per_minute, Some(50));
    assert_eq!(built.clients[0].sites[1].utc_offset_minutes, -330);
    assert_eq!(built.groups[0].timing.download, secs(1));
    assert_eq!(built.groups[1].timing.download, secs(10) + Duration::from_millis(500));
    assert_eq!(built.groups[1].timing.bandwidth, Some(1e6 / 3.0));
    assert_eq!(
        (built.gate.min_successes, built.gate.max_new_error_rate),
        (2, Some(0.75))
    );
    assert_eq!((built.logs.len(), built.builds[1].logs.len()), (2, 1));
    assert_eq!(built.logs[1].per_hour, 1.0 / 3.0);
}

/// Two machines at `c/s` on 1.0.0.
fn small() -> PlanBuilder {
    PlanBuilder::new("small", date("2026-01-05T00:00:00Z"), hours(1))
        .client(Client::new("c").site("s"))
        .build(Build::new(OLD).channel(Channel::Stable).published(secs(0)))
        .fleet(Fleet::new(2, "c/s", OLD))
}

#[test]
fn a_built_plan_is_refused_as_its_file_is_and_the_error_names_the_key() {
    let wrong = [
        (
            small().fleet(Fleet::new(2, "c/nope", OLD)),
            "fleet[1].site",
            "no site `c/nope` (defined: c/s)",
        ),
        (
            small().event(hours(2), Event::promote(OLD)),
            "events[0].at",
            "at 2h is after the end of the scenario (duration 1h, ends 2026-01-05T01:00:00Z)",
        ),
        (
            small().event(mins(5), Event::set_channel(None)),
            "events[0].set_channel",
            "needs a group, site or client",
        ),
        (
            small().expect(Expect::new("heartbeats").max(mins(1))),
            "expect[0].max",
            "expected a number",
        ),
        (
            small().expect(Expect::new("t90").version(NEW).max(1.0)),
            "expect[0].version",
            "no build 1.0.1",
        ),
        (
            small().fleet(Fleet::new(0, "c/s", OLD)),
            "fleet[1].count",
            "must be at least 1",
        ),
        (
            small().max_enrolments_per_minute(0),
            "server.max_enrolments_per_minute",
            "must be at least 1",
        ),
        (
            small().build(Build::new(NEW).log(Log::new(LogLevel::Error, "crash {code}", 1.0))),
            "builds[1].logs[0].message",
            "unknown placeholder `{code}`",
        ),
        (
            small().agent(|a| a.log(Log::new(LogLevel::Info, "x", 0.0))),
            "agent.logs[0].per_hour",
            "must be above 0",
        ),
        (
            small().max_new_error_rate(-1.0),
            "server.health_gate.max_new_error_rate",
            "must be at least 0",
        ),
        (
            small().expect(Expect::new("log_rate").level(LogLevel::Error).max(1.0)),
            "expect[0].version",
            "`log_rate` needs a version",
        ),
    ];
    for (builder, key, says) in wrong {
        let e = only_error(builder.check().expect_err(key));
        assert_eq!((e.file.as_str(), e.line), ("small", 0), "{e}");
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.starts_with(says), "{e}");
        assert_eq!(e.to_string(), format!("small: `{key}`: {}", e.message));
        // The same scenario as a file: the same key and message, with a line.
        let text = builder.to_toml();
        let from_file = only_error(scenario::parse("small.toml", &text).expect_err(key));
        assert_eq!((&from_file.key, &from_file.message), (&e.key, &e.message), "{text}");
        assert!(from_file.line > 0, "{from_file}");
    }
}

#[test]
fn rates_and_time_zones_no_file_could_hold_are_refused() {
    let wrong = [
        (small().egress(0.0), "server.bandwidth"),
        (small().agent(|a| a.bandwidth(f64::NAN)), "agent.bandwidth"),
        (
            small().fleet(Fleet::new(1, "c/s", OLD).bandwidth(-1.0)),
            "fleet[1].bandwidth",
        ),
    ];
    for (builder, key) in wrong {
        let e = only_error(builder.check().expect_err(key));
        assert_eq!(
            e.to_string(),
            format!("small: `{key}`: must be above 0 bytes per second")
        );
    }
    let far = |minutes| small().client(Client::new("far").timezone(minutes)).check();
    let e = only_error(far(15 * 60).expect_err("15:00 east"));
    assert_eq!(
        e.to_string(),
        "small: `clients[1].timezone`: must be within ±14:59 of UTC"
    );
    let e = only_error(
        small()
            .client(Client::new("far").site(Site::new("west").timezone(-(15 * 60))))
            .check()
            .expect_err("15:00 west"),
    );
    assert_eq!(e.key, "clients[1].sites[0].timezone");
    // The farthest offsets a file can write are fine, and written as such.
    for minutes in [14 * 60 + 59, -(14 * 60 + 59)] {
        let builder = small().client(Client::new("far").timezone(minutes).site("x"));
        let plan = checked(&builder);
        assert_eq!(plan.clients[1].sites[0].utc_offset_minutes, minutes);
        let read = scenario::parse("far.toml", &builder.to_toml()).unwrap();
        assert_eq!(read.clients[1].sites[0].utc_offset_minutes, minutes);
    }
}
