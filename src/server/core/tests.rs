//! Unit tests of the core alone, on an in-memory store: what agents and
//! administrators cause, a restart, a failed commit, and the invariant
//! checks themselves.

use std::time::Duration;

use super::testing::{Fixture, Observed, START, device, v};
use super::{ChannelTarget, Core, CoreError, Counters};
use crate::protocol::{AgentId, Channel, ClientId, ErrorCode, ServerMessage, UpdateResult};
use crate::server::store::{Change, RolloutStatus, Store, UpdateReason, UpdateRow, UpdateStatus};

async fn tick() {
    tokio::time::advance(Duration::from_secs(60)).await;
}

fn failed(result: UpdateResult) -> UpdateResult {
    UpdateResult {
        success: false,
        error: Some("installer exited 1603".into()),
        ..result
    }
}

#[tokio::test(start_paused = true)]
async fn hello_keys_rows_by_device_id_exactly() {
    let mut f = Fixture::new();
    let a = f.beta(1, "1.0.0");
    tick().await;
    let again = f.stable(1, "1.0.0");
    assert_eq!(a, again, "the same device id is the same row");
    let row = f.core.agent(a).unwrap();
    assert_eq!(
        row.site_id,
        f.core.sites().find(|s| s.name == "hq").unwrap().id,
        "the last key decides the site"
    );
    assert_eq!(row.enrolled_at, START);
    assert_eq!(row.last_seen, START.plus(Duration::from_secs(60)));
    // The same machine under its legacy id is another row (U12).
    let mut legacy = Fixture::hello_frame(1, &f.beta_key, "1.0.0");
    legacy.device_id = format!("win-{}", device(1)).parse().unwrap();
    let b = f.core.hello(&legacy).unwrap();
    assert_ne!(a, b);
    assert_eq!(f.core.agent_by_device(&legacy.device_id).unwrap().id, b);
    assert!(matches!(
        f.core.hello(&Fixture::hello_frame(2, "nope", "1.0.0")),
        Err(CoreError::UnknownSiteKey)
    ));
    let mut nameless = Fixture::hello_frame(3, &f.beta_key, "1.0.0");
    nameless.hostname.clear();
    assert!(matches!(f.core.hello(&nameless), Err(CoreError::Invalid { .. })));
    assert_eq!(f.core.agents().count(), 2);
    assert_eq!(f.core.counters().hellos, 3);
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_dispatches_resends_the_same_update_and_ends_it_on_arrival() {
    let mut f = Fixture::new();
    let beta = f.beta(1, "1.0.0");
    let stable = f.stable(2, "1.0.0");
    assert_eq!(
        f.core.heartbeat(stable, v("1.0.0")).unwrap(),
        None,
        "stable is never offered beta"
    );
    let first = f.core.heartbeat(beta, v("1.0.0")).unwrap().expect("an update");
    assert_eq!(first.version, v("1.1.0"));
    assert!(first.url.starts_with("/downloads/"), "{}", first.url);
    let again = f.core.heartbeat(beta, v("1.0.0")).unwrap().expect("a re-dispatch");
    assert_eq!(again.update_id, first.update_id, "U4 re-sends the same update");
    assert_eq!(f.core.pending_of(beta).unwrap().dispatches, 2);
    assert_eq!(f.core.heartbeat(beta, v("1.1.0")).unwrap(), None);
    assert!(f.core.pending_of(beta).is_none());
    let row = f.store.updates().pop().unwrap();
    assert_eq!((row.id, row.status), (first.update_id, UpdateStatus::Succeeded));
    let rollout = f.core.rollouts().next().unwrap();
    assert_eq!((rollout.version, rollout.successes), (v("1.1.0"), 1));
    let c = f.core.counters();
    assert_eq!((c.heartbeats, c.dispatches, c.redispatches, c.successes), (4, 1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn update_results_count_on_the_rollout_and_only_from_the_machine_sent_to() {
    let mut f = Fixture::new();
    let a = f.beta(1, "1.0.0");
    let b = f.beta(2, "1.0.0");
    let offer = f.core.heartbeat(a, v("1.0.0")).unwrap().unwrap();
    let result = UpdateResult {
        update_id: offer.update_id,
        success: true,
        version: v("1.0.0"),
        error: None,
    };
    assert!(matches!(
        f.core.update_result(b, &result),
        Err(CoreError::UnknownUpdate(id)) if id == offer.update_id
    ));
    f.core.update_result(a, &failed(result.clone())).unwrap();
    assert!(f.core.pending_of(a).is_none());
    assert_eq!(f.core.rollouts().next().unwrap().failures, 1);
    // A late report on an update that already ended: ignored from its machine…
    f.core.update_result(a, &result).unwrap();
    assert_eq!(f.core.counters().failures, 1);
    assert_eq!(f.core.counters().successes, 0);
    // …refused from another.
    assert!(f.core.update_result(b, &result).is_err());
}

#[tokio::test(start_paused = true)]
async fn promote_waits_for_the_gate_then_stable_agents_get_the_build() {
    let mut f = Fixture::new();
    let beta = f.beta(1, "1.0.0");
    let stable = f.stable(2, "1.0.0");
    let refused = f.core.promote(v("1.1.0"), None, false).unwrap_err();
    assert!(matches!(
        refused,
        CoreError::Conflict {
            code: ErrorCode::HealthGate,
            ..
        }
    ));
    f.core.heartbeat(beta, v("1.0.0")).unwrap().unwrap();
    f.core.heartbeat(beta, v("1.1.0")).unwrap();
    let promotion = f.core.promote(v("1.1.0"), None, false).unwrap();
    assert!(!promotion.forced);
    assert_eq!(promotion.sidecars_flipped.len(), 1);
    assert_eq!(promotion.rollouts[0].status, RolloutStatus::Promoted);
    assert!(matches!(
        f.core.promote(v("1.1.0"), None, false),
        Err(CoreError::Conflict { .. })
    ));
    let offer = f
        .core
        .heartbeat(stable, v("1.0.0"))
        .unwrap()
        .expect("stable now gets 1.1.0");
    assert_eq!(offer.version, v("1.1.0"));
}

#[tokio::test(start_paused = true)]
async fn rollback_blocks_ends_pending_updates_and_pushes_the_downgrade() {
    let mut f = Fixture::new();
    let (on_it, mut pushed) = f.connect(1, &f.beta_key.clone(), "1.1.0");
    let (going, _) = f.connect(2, &f.beta_key.clone(), "1.0.0");
    let offline = f.beta(3, "1.1.0");
    let update = f.core.heartbeat(going, v("1.0.0")).unwrap().unwrap().update_id;
    let rollback = f.core.rollback(v("1.1.0")).unwrap();
    assert_eq!(rollback.updates_cancelled, 1);
    assert_eq!(rollback.agents_running, 2);
    assert_eq!(
        rollback.downgrades_pushed,
        vec![on_it],
        "only the connected agent is pushed to"
    );
    assert!(f.core.blocked().contains_key(&v("1.1.0")));
    let ended = f.store.updates().into_iter().find(|u| u.id == update).unwrap();
    assert_eq!(ended.status, UpdateStatus::Superseded);
    let Ok(ServerMessage::Update(offer)) = pushed.try_recv() else {
        panic!("no downgrade pushed")
    };
    assert_eq!(offer.version, v("1.0.0"));
    assert_eq!(f.core.pending_of(on_it).unwrap().reason, UpdateReason::Rollback);
    // The offline agent is moved by its next heartbeat (U3), never offered 1.1.0 again.
    assert_eq!(
        f.core.heartbeat(offline, v("1.1.0")).unwrap().unwrap().version,
        v("1.0.0")
    );
    assert_eq!(f.core.heartbeat(going, v("1.0.0")).unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_restart_loads_back_what_was_committed() {
    let mut f = Fixture::new();
    let a = f.beta(1, "1.0.0");
    let b = f.stable(2, "1.0.0");
    let pending = f.core.heartbeat(a, v("1.0.0")).unwrap().unwrap();
    f.core
        .set_channel(ChannelTarget::Agent(b), Some(Channel::Beta))
        .unwrap();
    f.publish("1.2.0", Channel::Beta);
    f.core.rescan().unwrap();
    f.core.rollback(v("1.2.0")).unwrap();
    tick().await;
    f.core.heartbeat(b, v("1.0.0")).unwrap();
    f.core.flush().unwrap();
    assert_eq!(f.core.pending().count(), 2);
    let before = Observed::of(&f.core).durable();
    let restarted = Fixture::open_on(Box::new(f.store.clone()), f.dir.path());
    assert_eq!(Observed::of(&restarted).durable(), before);
    // Update ids go on from the highest ever issued, ended ones included.
    assert!(restarted.next_update_id().0 > pending.update_id.0);
}

/// One operation of the script below, on any core.
type Op = fn(&mut Core) -> Result<(), CoreError>;

/// Every kind of change the core commits, in an order where each does
/// something: new rows, dispatches, re-dispatches, outcomes, channels,
/// a manual update, promote, a scan, rollback.
const SCRIPT: &[(&str, Op)] = &[
    ("create a client", |c| c.create_client("globex", None).map(drop)),
    ("create a site", |c| {
        c.create_site(ClientId(2), "branch", None).map(drop)
    }),
    ("hello, a new row", |c| {
        c.hello(&Fixture::hello_frame(1, &beta_key(c), "1.0.0")).map(drop)
    }),
    ("hello, a second row", |c| {
        c.hello(&Fixture::hello_frame(2, &stable_key(c), "0.9.0")).map(drop)
    }),
    ("heartbeat, a dispatch", |c| {
        c.heartbeat(AgentId(1), v("1.0.0")).map(drop)
    }),
    ("heartbeat, a re-dispatch", |c| {
        c.heartbeat(AgentId(1), v("1.0.0")).map(drop)
    }),
    ("update_result, a failure", |c| {
        let update_id = c.pending_of(AgentId(1)).unwrap().id;
        let result = UpdateResult {
            update_id,
            success: false,
            version: v("1.0.0"),
            error: Some("disk full".into()),
        };
        c.update_result(AgentId(1), &result)
    }),
    ("heartbeat, a new version and a dispatch", |c| {
        c.heartbeat(AgentId(2), v("0.9.5")).map(drop)
    }),
    ("heartbeat, another dispatch", |c| {
        c.heartbeat(AgentId(1), v("1.0.0")).map(drop)
    }),
    ("hello on the target, a success", |c| {
        c.hello(&Fixture::hello_frame(1, &beta_key(c), "1.1.0")).map(drop)
    }),
    ("set a channel", |c| {
        c.set_channel(ChannelTarget::Agent(AgentId(2)), Some(Channel::Beta))
    }),
    ("manual update", |c| {
        c.manual_update(AgentId(2), Some(v("1.1.0"))).map(drop)
    }),
    // Forced: the script's rows enrolled after 1.1.0 was published, so the
    // gate ignores their outcomes.
    ("promote", |c| c.promote(v("1.1.0"), None, true).map(drop)),
    ("rescan, a new rollout row", |c| c.rescan()),
    ("rollback", |c| c.rollback(v("1.1.0")).map(drop)),
];

fn beta_key(c: &Core) -> String {
    c.sites().find(|s| s.name == "lab").unwrap().site_key.clone()
}

fn stable_key(c: &Core) -> String {
    c.sites().find(|s| s.name == "hq").unwrap().site_key.clone()
}

/// ARCHITECTURE.md: memory never runs ahead of the database, and a failed
/// commit changes nothing. Each step of the script is tried once on a store
/// that refuses the commit, which must leave everything a caller can see as
/// it was; then it is done for real, and the core must end where a twin that
/// never saw a failure ends (no update id, site key or stamp was used up by
/// the failed try).
#[tokio::test(start_paused = true)]
async fn a_failed_commit_changes_nothing() {
    let mut f = Fixture::new();
    let mut twin = Fixture::new();
    // 1.2.0 lands for the scan step; both folders hold the same files.
    let published = |f: &Fixture| f.publish("1.2.0", Channel::Beta);
    for (step, op) in SCRIPT {
        tick().await;
        if *step == "rescan, a new rollout row" {
            published(&f);
            published(&twin);
        }
        let before = Observed::of(&f.core);
        let commits = f.faults.commits();
        f.faults.fail_from_now();
        let err = op(&mut f.core).expect_err(step);
        assert!(matches!(err, CoreError::Store(_)), "{step}: {err}");
        assert!(f.faults.commits() > commits, "{step} committed nothing");
        assert_eq!(
            Observed::of(&f.core),
            before,
            "{step}: the failed commit changed memory"
        );
        f.faults.heal();
        op(&mut f.core).unwrap_or_else(|e| panic!("{step}: {e}"));
        op(&mut twin.core).unwrap_or_else(|e| panic!("{step} (twin): {e}"));
        assert_eq!(Observed::of(&f.core), Observed::of(&twin.core), "after {step}");
        assert_eq!(f.store.updates(), twin.store.updates(), "after {step}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_flush_keeps_the_stamps_for_the_next() {
    let mut f = Fixture::new();
    let a = f.stable(1, "1.0.0");
    tick().await;
    f.core.heartbeat(a, v("1.0.0")).unwrap();
    let seen = f.core.agent(a).unwrap().last_seen;
    f.faults.fail_from_now();
    assert!(f.core.flush().is_err());
    f.faults.heal();
    f.core.flush().unwrap();
    let stored = f.store.clone().load().unwrap().agents;
    assert_eq!(stored[0].last_seen, seen);
}

/// The invariant checks fire: each test breaks one invariant behind the
/// core's back and asks for a check. (Debug builds only: release builds
/// compile the checks out.)
#[cfg(debug_assertions)]
mod checks {
    use super::*;

    fn with_pending() -> (Fixture, AgentId) {
        let mut f = Fixture::new();
        let a = f.beta(1, "1.0.0");
        f.core.heartbeat(a, v("1.0.0")).unwrap().unwrap();
        (f, a)
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "pending updates and their index by update id differ in size")]
    async fn a_pending_update_missing_from_its_index() {
        let (mut f, a) = with_pending();
        let id = f.core.pending[&a].id;
        f.core.pending_ids.remove(&id);
        f.core.check_all();
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "a blocked version")]
    async fn a_pending_update_to_a_blocked_version() {
        let (mut f, _) = with_pending();
        f.core.blocked_set.insert(v("1.1.0"));
        f.core.blocked.insert(v("1.1.0"), START);
        f.core.check_all();
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "device index")]
    async fn a_device_index_pointing_elsewhere() {
        let (mut f, a) = with_pending();
        let device = f.core.agents[&a].device_id;
        f.core.devices.insert(device, AgentId(99));
        f.core.check_all();
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "would have two pending updates")]
    async fn a_second_pending_update_for_one_row() {
        let (mut f, a) = with_pending();
        let first = f.core.pending[&a].clone();
        let second = UpdateRow {
            id: f.core.next_update_id(),
            ..first
        };
        f.core.write(vec![Change::Update(second)]).unwrap();
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "a blocked version")]
    async fn a_batch_that_dispatches_a_blocked_version() {
        let (mut f, a) = with_pending();
        let pending = f.core.pending[&a].clone();
        // Blocked earlier, behind the core's back; the batch re-sends it.
        f.core.blocked_set.insert(pending.to_version);
        f.core.blocked.insert(pending.to_version, START);
        let resent = UpdateRow {
            dispatches: 2,
            ..pending
        };
        f.core.write(vec![Change::Update(resent)]).unwrap();
    }
}

#[test]
fn counters_add_field_by_field() {
    let a = Counters {
        hellos: 1,
        heartbeats: 2,
        dispatches: 3,
        redispatches: 4,
        successes: 5,
        failures: 6,
        downloads: 7,
        logs: 8,
    };
    let mut total = a;
    total += Counters {
        hellos: 10,
        heartbeats: 20,
        dispatches: 30,
        redispatches: 40,
        successes: 50,
        failures: 60,
        downloads: 70,
        logs: 80,
    };
    let expected = Counters {
        hellos: 11,
        heartbeats: 22,
        dispatches: 33,
        redispatches: 44,
        successes: 55,
        failures: 66,
        downloads: 77,
        logs: 88,
    };
    assert_eq!(total, expected);
}
