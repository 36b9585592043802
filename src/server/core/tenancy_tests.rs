//! Unit tests of this project's identity rules: a device id is bound to its
//! client, the health gate counts each machine once and only machines
//! enrolled by the publish, and `[RE-DISPATCH]` lines are rate-limited.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::testing::{Fixture, Observed, v};
use super::{CoreError, REDISPATCH_LOG_EVERY};
use crate::protocol::{Channel, UpdateResult};

fn result(update_id: crate::protocol::UpdateId, success: bool, version: &str) -> UpdateResult {
    UpdateResult {
        update_id,
        success,
        version: v(version),
        error: (!success).then(|| "installer exited 1603".into()),
    }
}

#[tokio::test(start_paused = true)]
async fn a_site_key_of_another_client_cannot_take_a_row() {
    let mut f = Fixture::new();
    let a = f.stable(1, "1.0.0");
    let evil = f.core.create_client("evil", None).unwrap().id;
    let evil_key = f.core.create_site(evil, "lab", Some(Channel::Beta)).unwrap().site_key;
    let before = Observed::of(&f.core);
    let refused = f.core.hello(&Fixture::hello_frame(1, &evil_key, "1.0.0"));
    assert!(
        matches!(refused, Err(CoreError::IdentityConflict { agent, .. }) if agent == a),
        "{refused:?}"
    );
    assert_eq!(Observed::of(&f.core), before, "nothing changed");
    // Within the client, the row moves and the move is recorded.
    assert_eq!(f.beta(1, "1.0.0"), a);
    let moves = f.core.site_moves_of(a).unwrap();
    assert_eq!(moves.len(), 1);
    assert_eq!(f.core.agent(a).unwrap().site_id, moves[0].to_site_id);
}

#[tokio::test(start_paused = true)]
async fn the_gate_counts_each_machine_once_and_only_machines_enrolled_by_the_publish() {
    let mut f = Fixture::new();
    // 1.1.0 was published at START; devices 1 and 2 enrol then, 3 a minute later.
    let (flaky, steady) = (f.beta(1, "1.0.0"), f.beta(2, "1.0.0"));
    tokio::time::advance(Duration::from_secs(60)).await;
    let late = f.beta(3, "1.0.0");
    for (id, outcomes) in [(flaky, &[false, true][..]), (steady, &[true]), (late, &[true])] {
        for &ok in outcomes {
            let offer = f.core.heartbeat(id, v("1.0.0")).unwrap().unwrap();
            let version = if ok { "1.1.0" } else { "1.0.0" };
            f.core.update_result(id, &result(offer.update_id, ok, version)).unwrap();
        }
    }
    let row = f.core.rollouts().next().unwrap().clone();
    assert_eq!((row.successes, row.failures), (3, 1), "the rollout row counts installs");
    let gate = f.core.gate_check(v("1.1.0"), None).unwrap();
    assert_eq!((gate.successes, gate.failures, gate.counted), (2, 0, 2));
    assert_eq!(
        (gate.ignored, gate.ignored_repeats, gate.ignored_enrolled_after_publish),
        (2, 1, 1)
    );
    assert!(gate.passed);
}

/// Log lines written while the guard lives.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn containing(&self, what: &str) -> usize {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().filter(|l| l.contains(what)).count()
    }
}

#[tokio::test(start_paused = true)]
async fn redispatch_lines_are_rate_limited_per_agent_and_the_counter_stays_exact() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut f = Fixture::new();
    let (a, b) = (f.beta(1, "1.0.0"), f.beta(2, "1.0.0"));
    for id in [a, b] {
        f.core.heartbeat(id, v("1.0.0")).unwrap().unwrap();
    }
    // 100 re-sends to each within a second: one line each.
    for _ in 0..100 {
        for id in [a, b] {
            f.core.heartbeat(id, v("1.0.0")).unwrap().unwrap();
        }
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert_eq!(lines.containing("[RE-DISPATCH]"), 2);
    assert_eq!(f.core.counters().redispatches, 200, "every re-send is counted");
    tokio::time::advance(REDISPATCH_LOG_EVERY).await;
    f.core.heartbeat(a, v("1.0.0")).unwrap().unwrap();
    assert_eq!(lines.containing("[RE-DISPATCH]"), 3);
    assert_eq!(lines.containing("send #102; 99 re-sends not logged"), 1);
}
