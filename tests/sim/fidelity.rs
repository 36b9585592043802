//! Figures that must stay right under ordinary trouble: an update in
//! progress survives a dropped session, and downloads take the time their
//! bytes take through a shared egress and each machine's link.

use rmmsim::metrics::Report;
use rmmsim::sim::TransportKind;

use crate::common::*;

/// `count` always-on beta machines; `new` (1.0.1) lands at 10 m and is seen
/// at once (no wait for a periodic scan); callers add agent keys, the egress
/// and events.
fn beta_rollout(count: u64, new: Build) -> PlanBuilder {
    PlanBuilder::new("fidelity", date("2026-01-05T00:00:00Z"), hours(3))
        .seed(11)
        .sample_every(secs(10))
        .rescan_every(secs(0))
        .agent(|a| a.jitter(0.0))
        .client(Client::new("c").site(Site::new("s").channel(Channel::Beta)))
        .build(Build::new(OLD).channel(Channel::Stable).published(secs(0)))
        .build(new.published(mins(10)))
        .fleet(Fleet::new(count, "c/s", OLD))
}

fn beta_figures(r: &Report) -> &rmmsim::metrics::Convergence {
    let build = r.builds.iter().find(|b| b.version == Version::new(1, 0, 1)).unwrap();
    &build
        .convergence
        .iter()
        .find(|c| c.channel == Channel::Beta && c.reference == "publish")
        .unwrap()
        .figures
}

#[test]
fn an_update_in_progress_survives_a_server_restart() {
    // Ten-minute downloads; the server is down for 10 s five minutes after
    // the publish, while every machine is downloading.
    let plan = checked(
        &beta_rollout(50, Build::new(NEW))
            .agent(|a| a.download(mins(10)).install(secs(0)).restart(secs(0)))
            .event(mins(15), Event::server_restart(secs(10))),
    );
    let r = run(&plan);
    assert_passed(&r);
    assert!(
        r.agents.connections_lost >= 50,
        "the restart dropped every session: {:?}",
        r.agents
    );
    // Each machine downloaded once and installed once: nothing started over.
    assert_eq!(r.server.downloads, 50, "{:?}", r.server);
    assert_eq!(r.agents.installs, 50);
    // Offered within a heartbeat (H/2 on average), then ten minutes.
    let f = beta_figures(&r);
    assert_eq!(f.reached, 50);
    let t50 = f.t50_s.unwrap();
    assert!((t50 - 630.0).abs() <= 60.0, "beta t50 {t50} s, about 630 s expected");
    // The successes reached the server in the sessions after the restart.
    assert_eq!(r.server.successes, 50, "{:?}", r.server);
}

#[test]
fn powering_off_aborts_a_download_and_the_next_offer_starts_it_again() {
    let plan = checked(
        &beta_rollout(10, Build::new(NEW))
            .agent(|a| a.download(mins(10)))
            .event(mins(15), Event::disconnect(1.0, mins(5))),
    );
    let r = run(&plan);
    assert_passed(&r);
    // Off mid-download: each machine fetched the build again once back on.
    assert_eq!(r.server.downloads, 20, "{:?}", r.server);
    assert_eq!(r.agents.installs, 10);
}

/// Bytes per second of `mbit` Mbit/s.
fn mbit(mbit: f64) -> f64 {
    mbit * 1e6 / 8.0
}

#[test]
fn n_machines_fetching_s_bytes_through_egress_e_need_at_least_n_s_over_e() {
    let (n, size, egress) = (200usize, 2u64 * 1024 * 1024, mbit(10.0));
    let plan = checked(
        &beta_rollout(n as u64, Build::new(NEW).size(size))
            .agent(instant)
            .egress(mbit(10.0)),
    );
    assert_eq!(plan.egress, Some(egress));
    let floor = n as f64 * size as f64 / egress; // 335.5 s
    for transport in [TransportKind::Direct, TransportKind::WsMem] {
        let r = run_on(&plan, transport);
        assert_passed(&r);
        let f = beta_figures(&r);
        assert_eq!(f.reached, n);
        let t100 = f.t100_s.unwrap();
        assert!(t100 >= floor, "{transport}: t100 {t100} s is below N·S/E = {floor} s");
        // Offers spread over one heartbeat, so the link is busy from the
        // first to the last: not much more than the floor plus a heartbeat.
        assert!(
            t100 <= floor + 60.0 + 1.0,
            "{transport}: t100 {t100} s, floor {floor} s"
        );
        let d = &r.downloads;
        assert_eq!(d.bytes_served, n as u64 * size);
        assert!((d.peak_egress_bps - egress).abs() < 1.0, "{d:?}");
        assert!(d.saturated_s >= floor - 60.0, "{d:?}");
        assert!(d.peak_concurrent > n as u64 / 2, "the downloads pile up: {d:?}");
        assert_eq!(d.egress_limit_bps, Some(egress));
        // The storm over time: the curve's peak is the peak.
        assert_eq!(r.curve.downloads.iter().max().copied(), Some(d.peak_concurrent));
        assert_eq!(r.curve.downloads.len(), r.curve.times_s.len());
        let svg = rmmsim::metrics::convergence_svg(&r).unwrap();
        assert!(svg.contains("download storm") && svg.contains("egress, Mbit/s"));
    }
}

/// One machine fetching a 2 MiB build, installing and restarting at once;
/// `agent` adds agent keys.
fn one_machine_2mib(agent: impl FnOnce(AgentDefaults) -> AgentDefaults) -> rmmsim::scenario::Plan {
    checked(
        &beta_rollout(1, Build::new(NEW).size(2 * 1024 * 1024))
            .agent(|a| a.install(secs(0)).restart(secs(0)))
            .agent(agent),
    )
}

#[test]
fn a_machine_s_link_bounds_its_download() {
    // One machine, 2 MiB over 1 Mbit/s: 16.8 s of bytes on top of the 20 s fixed time.
    let r = run(&one_machine_2mib(|a| a.bandwidth(mbit(1.0))));
    let t = beta_figures(&r).t100_s.unwrap();
    let bytes = 2.0 * 1024.0 * 1024.0 * 8.0 / 1e6;
    assert!(t >= 20.0 + bytes && t <= 20.0 + bytes + 60.0, "t100 {t} s");
    // With no egress limit the machine's link is the rate.
    assert!(
        (r.downloads.peak_egress_bps - mbit(1.0)).abs() < 1.0,
        "{:?}",
        r.downloads
    );
    assert_eq!(r.downloads.egress_limit_bps, None);
}

#[test]
fn without_bandwidth_a_download_takes_its_fixed_time() {
    let r = run(&one_machine_2mib(|a| a.download(secs(45))));
    let t = beta_figures(&r).t100_s.unwrap();
    assert!((45.0..=105.0).contains(&t), "t100 {t} s");
    assert_eq!(r.downloads.peak_egress_bps, 0.0);
    assert_eq!(r.downloads.peak_concurrent, 1);
}

#[test]
fn bad_rates_name_the_line_and_the_units() {
    let text = r#"
[scenario]
name = "x"
start = "2026-01-05T00:00:00Z"
duration = "1h"

[server]
bandwidth = "fast"
"#;
    let e = rmmsim::scenario::parse("x.toml", text).unwrap_err().to_string();
    assert!(e.contains("x.toml:8") && e.contains("invalid rate `fast`"), "{e}");
    let text = text.replace(r#""fast""#, r#""10 Mbit""#);
    let e = rmmsim::scenario::parse("x.toml", &text).unwrap_err().to_string();
    assert!(e.contains("unknown unit `Mbit`") && e.contains("Gbit/s"), "{e}");
}
