//! Unit tests of U13 in the core: signatures per version, distinct
//! machines across a restart, machine-hours, the batched flush, the
//! server's pseudo-agent, and the field-health gate.

use std::time::Duration;

use super::testing::{Fixture, v};
use super::{CoreError, HealthGate, SERVER_AGENT_ID, SignatureFilter, server_version};
use crate::protocol::{Channel, ErrorCode};
use crate::server::SERVER_HOSTNAME;
use crate::server::store::Store;

async fn minutes(n: u64) {
    tokio::time::advance(Duration::from_secs(60 * n)).await;
}

fn all() -> SignatureFilter {
    SignatureFilter::default()
}

#[tokio::test(start_paused = true)]
async fn log_frames_group_by_signature_and_level_per_version() {
    let mut f = Fixture::new();
    let a = f.stable(1, "1.0.0");
    let b = f.stable(2, "1.1.0");
    f.core.log(a, "ERROR", "disk /var/a full after 3 tries");
    f.core.log(a, "error", "disk /var/b full after 9 tries");
    f.core.log(b, "error", "disk /tmp/x full after 1 tries");
    f.core.log(b, "warn", "disk /tmp/x full after 1 tries");
    let rows = f.core.log_signatures(&all()).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let error = &rows[0];
    assert_eq!(error.signature, "disk <path> full after <num> tries");
    assert_eq!((error.level.as_str(), error.count), ("error", 3));
    assert_eq!(error.sample, "disk /var/a full after 3 tries");
    assert_eq!(error.first_version, v("1.0.0"));
    let versions = f.core.signature_versions(error.id).unwrap();
    let figures: Vec<_> = versions.iter().map(|r| (r.version, r.count, r.machines)).collect();
    assert_eq!(figures, [(v("1.0.0"), 2, 1), (v("1.1.0"), 1, 1)]);
    assert_eq!(f.core.counters().logs, 4);
    let new_in = |ver| SignatureFilter {
        new_in: Some(v(ver)),
        ..all()
    };
    assert_eq!(
        f.core.log_signatures(&new_in("1.1.0")).unwrap().len(),
        1,
        "the warn row"
    );
    assert_eq!(f.core.log_signatures(&new_in("1.0.0")).unwrap()[0].id, error.id);
    assert!(matches!(
        f.core.signature_versions(crate::server::store::SignatureId(99)),
        Err(CoreError::NotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn signatures_are_written_only_by_a_flush_and_machines_stay_distinct_after_a_restart() {
    let mut f = Fixture::new();
    let a = f.stable(1, "1.0.0");
    f.core.log(a, "error", "update 7 failed");
    assert!(
        f.store.clone().load().unwrap().signatures.is_empty(),
        "no write per frame"
    );
    f.core.flush().unwrap();
    let stored = f.store.clone().load().unwrap();
    assert_eq!((stored.signatures.len(), stored.signature_versions[0].machines), (1, 1));
    let mut restarted = Fixture::open_on(Box::new(f.store.clone()), f.dir.path());
    let b = restarted
        .hello(&Fixture::hello_frame(2, &f.stable_key, "1.0.0"))
        .unwrap();
    restarted.log(a, "error", "update 8 failed");
    restarted.log(b, "error", "update 9 failed");
    let id = restarted.log_signatures(&all()).unwrap()[0].id;
    let row = &restarted.signature_versions(id).unwrap()[0];
    assert_eq!(
        (row.count, row.machines),
        (3, 2),
        "agent 1 counted once across the restart"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_flush_keeps_the_signatures_for_the_next() {
    let mut f = Fixture::new();
    let a = f.stable(1, "1.0.0");
    f.core.log(a, "error", "update 7 failed");
    f.faults.fail_from_now();
    assert!(f.core.flush().is_err());
    f.faults.heal();
    f.core.flush().unwrap();
    let stored = f.store.clone().load().unwrap();
    assert_eq!(stored.signatures[0].count, 1);
    assert_eq!(stored.signature_machines.iter().filter(|m| m.agent == a).count(), 1);
    // The failure is the server's own error, counted under its pseudo-agent.
    let ours = f.core.log_signatures(&all()).unwrap();
    assert!(
        ours.iter()
            .any(|r| r.signature.starts_with("flush failed") && r.level == "error")
    );
}

#[tokio::test(start_paused = true)]
async fn machine_hours_accrue_between_heartbeats_on_one_version() {
    let mut f = Fixture::new();
    let a = f.stable(1, "1.0.0");
    minutes(30).await;
    f.core.heartbeat(a, v("1.0.0")).unwrap();
    minutes(30).await;
    f.core.heartbeat(a, v("1.0.0")).unwrap();
    assert!((f.core.machine_hours_on(v("1.0.0")) - 1.0).abs() < 1e-9);
    // A heartbeat on another version starts that version's clock: the time
    // before it was spent installing, on neither.
    minutes(30).await;
    f.core.heartbeat(a, v("1.1.0")).unwrap();
    assert!((f.core.machine_hours_on(v("1.0.0")) - 1.0).abs() < 1e-9);
    assert_eq!(f.core.machine_hours_on(v("1.1.0")), 0.0);
    minutes(6).await;
    f.core.heartbeat(a, v("1.1.0")).unwrap();
    assert!((f.core.machine_hours_on(v("1.1.0")) - 0.1).abs() < 1e-9);
    // A new session starts at its hello: the time offline is not counted.
    minutes(600).await;
    f.core.hello(&Fixture::hello_frame(1, &f.stable_key, "1.1.0")).unwrap();
    f.core.heartbeat(a, v("1.1.0")).unwrap();
    assert!((f.core.machine_hours_on(v("1.1.0")) - 0.1).abs() < 1e-9);
    f.core.flush().unwrap();
    let restarted = Fixture::open_on(Box::new(f.store.clone()), f.dir.path());
    assert!((restarted.machine_hours_on(v("1.1.0")) - 0.1).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn the_servers_own_errors_go_to_its_pseudo_agent_and_it_is_no_agent_row() {
    let mut f = Fixture::new();
    let a = f.beta(1, "1.0.0");
    f.faults.fail_from_now();
    assert!(f.core.heartbeat(a, v("1.0.0")).is_err());
    assert!(f.core.heartbeat(a, v("1.0.0")).is_err());
    f.faults.heal();
    let rows = f.core.log_signatures(&all()).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].signature.starts_with("commit failed: "), "{rows:?}");
    assert_eq!((rows[0].level.as_str(), rows[0].count), ("error", 2));
    assert_eq!(rows[0].first_version, server_version());
    let versions = f.core.signature_versions(rows[0].id).unwrap();
    assert_eq!(versions[0].machines, 1);
    let server = f.core.server_agent();
    assert_eq!(
        (server.id, server.hostname.as_str(), server.pseudo),
        (SERVER_AGENT_ID, SERVER_HOSTNAME, true)
    );
    assert!(f.core.agents().all(|r| !r.pseudo && r.id != SERVER_AGENT_ID));
    assert!(f.core.agent(SERVER_AGENT_ID).is_none());
    // Not a machine: no update can be sent to it.
    assert!(matches!(
        f.core.manual_update(SERVER_AGENT_ID, None),
        Err(CoreError::NotFound { .. })
    ));
    f.core.flush().unwrap();
    assert_eq!(
        f.store.clone().load().unwrap().agents.len(),
        1,
        "never stored as an agent"
    );
}

/// A core whose gate limits new errors as `limit` says, with beta agent 1
/// updated to 1.1.0 (having logged "old trouble" on 1.0.0) and two hours of
/// it running there.
async fn field_on_1_1_0(limit: Option<f64>) -> (Fixture, crate::protocol::AgentId) {
    let mut f = Fixture::new();
    let gate = HealthGate {
        max_new_error_rate: limit,
        ..f.core.config().gate
    };
    f.core.config.gate = gate;
    let a = f.beta(1, "1.0.0");
    f.core.log(a, "error", "old trouble");
    f.core.heartbeat(a, v("1.0.0")).unwrap().unwrap();
    f.core.heartbeat(a, v("1.1.0")).unwrap();
    minutes(120).await;
    f.core.heartbeat(a, v("1.1.0")).unwrap();
    (f, a)
}

#[tokio::test(start_paused = true)]
async fn the_new_error_gate_refuses_a_build_whose_new_errors_are_too_frequent() {
    let (mut f, a) = field_on_1_1_0(Some(1.0)).await;
    // Known on 1.0.0 before: not new in 1.1.0, however often.
    for _ in 0..10 {
        f.core.log(a, "error", "old trouble");
    }
    f.core.log(a, "error", "cache miss");
    for n in 0..3 {
        f.core.log(a, "error", &format!("service {n} crashed"));
        f.core.log(a, "warn", &format!("slow disk {n}"));
    }
    let refused = f.core.promote(v("1.1.0"), None, false).unwrap_err();
    let CoreError::Conflict { code, message, details } = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(code, ErrorCode::HealthGate);
    assert!(
        message.contains("`service <num> crashed` 1.50/machine-hour"),
        "{message}"
    );
    assert!(!message.contains("cache miss"), "under the limit: {message}");
    let details = details.unwrap();
    let new: Vec<_> = details["new_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["signature"].as_str().unwrap(), e["over"].as_bool().unwrap()))
        .collect();
    assert_eq!(new, [("cache miss", false), ("service <num> crashed", true)]);
    assert_eq!(details["machine_hours"], 2.0);
    // Forced, it goes through.
    assert!(f.core.promote(v("1.1.0"), None, true).unwrap().forced);
}

#[tokio::test(start_paused = true)]
async fn the_new_error_gate_passes_rare_new_errors_and_is_off_by_default() {
    let (mut f, a) = field_on_1_1_0(Some(1.0)).await;
    f.core.log(a, "error", "service 1 crashed");
    f.core.log(a, "error", "service 2 crashed");
    let check = f.core.gate_check(v("1.1.0"), None).unwrap();
    assert_eq!(check.new_errors[0].rate_per_machine_hour, Some(1.0));
    assert!(check.passed, "1 per machine-hour is not over 1");
    f.core.log(a, "error", "service 3 crashed");
    assert!(!f.core.gate_check(v("1.1.0"), None).unwrap().passed);
    let (mut f, a) = field_on_1_1_0(None).await;
    for _ in 0..100 {
        f.core.log(a, "error", "service 1 crashed");
    }
    assert!(f.core.gate_check(v("1.1.0"), None).unwrap().passed);
    f.core.promote(v("1.1.0"), None, false).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_new_error_with_no_measured_time_is_over_any_limit() {
    let mut f = Fixture::new();
    f.core.config.gate.max_new_error_rate = Some(1000.0);
    f.publish("1.2.0", Channel::Beta);
    f.core.rescan().unwrap();
    let a = f.beta(1, "1.2.0");
    f.core.log(a, "error", "crash at start");
    let check = f.core.gate_check(v("1.2.0"), None).unwrap();
    assert_eq!(check.new_errors[0].rate_per_machine_hour, None);
    assert!(check.new_errors[0].over);
}

#[tokio::test(start_paused = true)]
async fn signatures_past_the_cap_are_counted_not_kept() {
    let mut f = Fixture::new();
    let a = f.stable(1, "1.0.0");
    let words = |n: usize| -> String {
        // Letters only, so no two collapse into one signature.
        n.to_string()
            .chars()
            .map(|d| char::from(b'a' + d as u8 - b'0'))
            .collect()
    };
    for n in 0..super::MAX_SIGNATURES + 3 {
        f.core.log(a, "info", &words(n));
    }
    assert_eq!(f.core.log_signatures(&all()).unwrap().len(), super::MAX_SIGNATURES);
    assert_eq!(f.core.log_events_dropped(), 3);
    assert_eq!(f.core.counters().logs, super::MAX_SIGNATURES as u64 + 3);
}

#[tokio::test(start_paused = true)]
async fn a_scan_problem_is_counted_once_not_at_every_rescan() {
    let mut f = Fixture::new();
    let downloads = f.dir.path().join("downloads");
    std::fs::write(downloads.join("gururmm-agent-windows-amd64-1.3.0.exe"), b"x").unwrap();
    std::fs::write(
        downloads.join("gururmm-agent-windows-amd64-site-6f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10-1.3.0.exe"),
        b"x",
    )
    .unwrap();
    for _ in 0..3 {
        f.core.rescan().unwrap();
    }
    let rows = f.core.log_signatures(&all()).unwrap();
    let found: Vec<_> = rows.iter().map(|r| (r.signature.as_str(), r.count)).collect();
    assert_eq!(
        found,
        [("scan skipped gururmm-agent-windows-amd64-<num>.exe: missing .sha256", 1)],
        "a per-site build is skipped by design"
    );
    // Gone and back: a problem again.
    std::fs::remove_file(downloads.join("gururmm-agent-windows-amd64-1.3.0.exe")).unwrap();
    f.core.rescan().unwrap();
    std::fs::write(downloads.join("gururmm-agent-windows-amd64-1.3.0.exe"), b"x").unwrap();
    f.core.rescan().unwrap();
    assert_eq!(f.core.log_signatures(&all()).unwrap()[0].count, 2);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_push_is_counted_under_the_pseudo_agent() {
    let mut f = Fixture::new();
    let (a, _pushed) = f.connect(1, &f.stable_key.clone(), "1.0.0");
    for _ in 0..crate::server::session::PUSH_QUEUE + 2 {
        f.core.manual_update(a, Some(v("1.1.0"))).unwrap();
    }
    assert_eq!(f.core.push_overflows(), 2);
    let rows = f.core.log_signatures(&all()).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].level.as_str(), rows[0].count), ("warn", 2));
    assert!(rows[0].signature.starts_with("push to agent <num> dropped"), "{rows:?}");
}
