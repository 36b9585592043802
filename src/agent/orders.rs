//! Orders from the simulator to one agent ("be off until then"), and the
//! agent's watch on them. A pair of atomics and a waker: an agent's session
//! loop checks for orders on every turn, so the check must cost next to
//! nothing (a `watch` channel's change future costs several times more).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use crate::clock::Timestamp;

#[derive(Debug, Default)]
struct Shared {
    /// Bumped on every order.
    version: AtomicU64,
    /// Off until this many ms since the epoch; `i64::MIN`: no order.
    offline_until: AtomicI64,
    /// The simulator is gone.
    closed: AtomicBool,
    waker: AtomicWaker,
}

/// The simulator's end: gives one agent orders. Dropping it tells the agent
/// the simulation is over.
#[derive(Debug)]
pub struct Orders(Arc<Shared>);

/// The agent's end.
#[derive(Debug)]
pub struct OrderWatch {
    shared: Arc<Shared>,
    seen: u64,
}

/// A connected pair.
pub fn orders() -> (Orders, OrderWatch) {
    let shared = Arc::new(Shared {
        offline_until: AtomicI64::new(i64::MIN),
        ..Shared::default()
    });
    (Orders(shared.clone()), OrderWatch { shared, seen: 0 })
}

impl Orders {
    /// Off (disconnected) until `until`, whatever the power pattern says.
    pub fn go_offline_until(&self, until: Timestamp) {
        self.0.offline_until.store(until.0, Ordering::Release);
        self.0.version.fetch_add(1, Ordering::AcqRel);
        self.0.waker.wake();
    }
}

impl Drop for Orders {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.waker.wake();
    }
}

impl OrderWatch {
    /// The standing order, if any.
    pub fn offline_until(&self) -> Option<Timestamp> {
        let t = self.shared.offline_until.load(Ordering::Acquire);
        (t != i64::MIN).then_some(Timestamp(t))
    }

    /// Ready with `true` at a new order, `false` once the simulator is gone.
    pub fn poll_changed(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let check = |w: &mut Self| {
            if w.shared.closed.load(Ordering::Acquire) {
                return Poll::Ready(false);
            }
            let v = w.shared.version.load(Ordering::Acquire);
            if v != w.seen {
                w.seen = v;
                return Poll::Ready(true);
            }
            Poll::Pending
        };
        if let Poll::Ready(r) = check(self) {
            return Poll::Ready(r);
        }
        self.shared.waker.register(cx.waker());
        // An order may have come between the check and the registration.
        check(self)
    }

    /// Waits for the next order (`false`: the simulator is gone).
    pub async fn changed(&mut self) -> bool {
        std::future::poll_fn(|cx| self.poll_changed(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn orders_arrive_and_the_end_is_noticed() {
        let (orders, mut watch) = orders();
        assert_eq!(watch.offline_until(), None);
        let task = tokio::spawn(async move {
            let first = watch.changed().await;
            let until = watch.offline_until();
            let second = watch.changed().await;
            (first, until, second)
        });
        tokio::task::yield_now().await;
        orders.go_offline_until(Timestamp(1234));
        tokio::task::yield_now().await;
        drop(orders);
        assert_eq!(task.await.unwrap(), (true, Some(Timestamp(1234)), false));
    }
}
