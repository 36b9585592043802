//! Unit tests of promote and rollback across a stop: the intent a crash
//! leaves is finished when the core opens again, an error half way is
//! finished by the next try, and a scan begun before either is discarded.

use super::testing::{Fixture, v};
use crate::protocol::Channel;
use crate::server::scanner::{self, Scan};
use crate::server::store::{BlockedRow, Change, IntentKind, IntentRow, RolloutStatus, Store, StoreError};

/// What the `.channel` of 1.1.0 says, if there is one.
fn sidecar(f: &Fixture) -> Option<Channel> {
    scanner::sidecars_of(&f.dir.path().join("downloads"), v("1.1.0"))
        .unwrap()
        .first()
        .map(|s| s.channel)
}

fn intent(kind: IntentKind) -> IntentRow {
    IntentRow {
        version: v("1.1.0"),
        kind,
        scope: None,
        created_at: super::testing::START,
    }
}

fn status_of_1_1_0(f: &Fixture) -> RolloutStatus {
    f.core.rollouts().find(|r| r.version == v("1.1.0")).unwrap().status
}

fn scan(f: &Fixture) -> Scan {
    scanner::scan_dir(&f.dir.path().join("downloads")).unwrap()
}

/// A stop right after a promote's intent was committed: no file flipped,
/// no row promoted. Opening again finishes it.
#[tokio::test(start_paused = true)]
async fn a_promote_stopped_after_its_intent_is_finished_when_the_core_opens() {
    let mut f = Fixture::new();
    let stable = f.stable(1, "1.0.0");
    f.store.commit(&[Change::Intent(intent(IntentKind::Promote))]).unwrap();
    assert_eq!(sidecar(&f), Some(Channel::Beta));
    f.core = Fixture::open_on(Box::new(f.store.clone()), f.dir.path());
    assert_eq!(sidecar(&f), Some(Channel::Stable));
    assert_eq!(status_of_1_1_0(&f), RolloutStatus::Promoted);
    assert!(f.store.clone().load().unwrap().intents.is_empty());
    let offer = f
        .core
        .heartbeat(stable, v("1.0.0"))
        .unwrap()
        .expect("1.1.0 is stable now");
    assert_eq!(offer.version, v("1.1.0"));
}

/// A stop after a rollback's first transaction (the block, the rows, the
/// intent) and before its sidecar went: opening again removes it.
#[tokio::test(start_paused = true)]
async fn a_rollback_stopped_before_its_sidecars_went_is_finished_when_the_core_opens() {
    let mut f = Fixture::new();
    f.store
        .commit(&[
            Change::Blocked(BlockedRow {
                version: v("1.1.0"),
                blocked_at: super::testing::START,
            }),
            Change::Intent(intent(IntentKind::Rollback)),
        ])
        .unwrap();
    f.core = Fixture::open_on(Box::new(f.store.clone()), f.dir.path());
    assert_eq!(sidecar(&f), None);
    assert!(f.store.clone().load().unwrap().intents.is_empty());
    assert!(
        f.core
            .catalog()
            .builds_of(v("1.1.0"))
            .all(|b| b.channel == Channel::Stable)
    );
}

/// An error after the block (here the commit that ends the rollback)
/// leaves the version blocked with its intent: rolling back again finishes
/// it instead of answering "already rolled back" for good.
#[tokio::test(start_paused = true)]
async fn a_rollback_cut_short_by_an_error_is_finished_by_the_next_rollback() {
    let mut f = Fixture::new();
    f.faults.fail_commit(f.faults.commits() + 2);
    let err = f.core.rollback(v("1.1.0")).unwrap_err();
    assert!(matches!(err, super::CoreError::Store(StoreError::Sqlite(_))), "{err}");
    assert!(f.core.blocked().contains_key(&v("1.1.0")));
    assert_eq!(f.store.clone().load().unwrap().intents.len(), 1);
    f.faults.heal();
    let finished = f.core.rollback(v("1.1.0")).unwrap();
    assert_eq!(finished.rollouts[0].status, RolloutStatus::RolledBack);
    assert!(f.store.clone().load().unwrap().intents.is_empty());
    assert!(f.core.rollback(v("1.1.0")).is_err(), "now it is done");
}

/// The same for a promote: the error leaves the intent, the next promote
/// (or a restart) finishes it even when every sidecar already flipped.
#[tokio::test(start_paused = true)]
async fn a_promote_cut_short_by_an_error_is_finished_by_the_next_promote() {
    let mut f = Fixture::new();
    f.faults.fail_commit(f.faults.commits() + 2);
    assert!(f.core.promote(v("1.1.0"), None, true).is_err());
    assert_eq!(sidecar(&f), Some(Channel::Stable));
    assert_eq!(status_of_1_1_0(&f), RolloutStatus::Beta);
    f.faults.heal();
    let promotion = f.core.promote(v("1.1.0"), None, true).unwrap();
    assert!(promotion.sidecars_flipped.is_empty());
    assert_eq!(promotion.rollouts[0].status, RolloutStatus::Promoted);
    assert!(f.store.clone().load().unwrap().intents.is_empty());
}

/// A scan read before a promote began is discarded: applied after it, it
/// would put the version back to beta until the next scan.
#[tokio::test(start_paused = true)]
async fn a_scan_begun_before_a_promote_or_rollback_is_discarded() {
    let mut f = Fixture::new();
    let ticket = f.core.scan_ticket();
    let before = scan(&f);
    f.core.promote(v("1.1.0"), None, true).unwrap();
    assert!(!f.core.apply_scan_since(before, ticket, false).unwrap());
    assert!(
        f.core
            .catalog()
            .builds_of(v("1.1.0"))
            .all(|b| b.channel == Channel::Stable)
    );
    // A scan begun after the promote is applied, even if others landed since.
    let ticket = f.core.scan_ticket();
    let after = scan(&f);
    f.core.rescan().unwrap();
    assert!(f.core.apply_scan_since(after, ticket, false).unwrap());
    // The same for a rollback: the old scan still has 1.1.0's sidecar.
    f.publish("1.2.0", Channel::Beta);
    f.core.rescan().unwrap();
    let ticket = f.core.scan_ticket();
    let before = scan(&f);
    f.core.rollback(v("1.2.0")).unwrap();
    assert!(!f.core.apply_scan_since(before, ticket, false).unwrap());
    assert!(
        f.core
            .catalog()
            .builds_of(v("1.2.0"))
            .all(|b| b.channel == Channel::Stable)
    );
    // A periodic scan (unless_newer) is also dropped by any scan in between.
    let ticket = f.core.scan_ticket();
    let periodic = scan(&f);
    f.core.rescan().unwrap();
    assert!(!f.core.apply_scan_since(periodic, ticket, true).unwrap());
}
