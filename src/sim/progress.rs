//! How far a run has come, told to whoever asked for it. The simulator
//! draws nothing: the command line turns this into a progress bar, and a
//! library caller or a test that asks for nothing gets nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

/// How far a run has come, in virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Simulated so far.
    pub done: Duration,
    /// The plan's whole duration.
    pub total: Duration,
}

/// Hears a run's progress, on the simulation's thread, about 200 times a
/// run; it should return quickly.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// Tells `sink` the progress every 200th of `total` (at least every virtual
/// second) from `origin` on, until the task is aborted.
pub(super) fn tick(sink: ProgressSink, total: Duration, origin: tokio::time::Instant) -> JoinHandle<()> {
    let step = (total / 200).max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(origin + step, step);
        loop {
            tick.tick().await;
            let done = origin.elapsed().min(total);
            sink(Progress { done, total });
        }
    })
}
