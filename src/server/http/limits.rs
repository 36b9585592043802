//! What one connection may cost the server, and how many it holds: the
//! defaults of the timeouts and budgets, and the gauges that count what the
//! limits refused (`connections` in `GET /api/stats`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::server::self_log::{SelfLevel, SelfLog};

/// How long a client has to send a request's headers, from the moment it
/// connects or finishes the previous request (this project's rule).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a WebSocket has, from its upgrade, to say a good `hello`.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an admitted session may stay silent (no frame of any kind)
/// before the server closes it. Agents heartbeat far more often.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Connections the server accepts beyond `max_connections` WebSocket
/// sessions: for the admin API, `/healthz` and agents' downloads. A
/// connection accepted beyond both is closed at once.
pub const CONNECTION_RESERVE: usize = 256;

/// Descriptors kept for what is not a connection: the database and its
/// journal, a build being read, the listener, the runtime, stdio.
pub const FILE_RESERVE: u64 = 64;

/// The most a connection's outgoing WebSocket buffer may hold: frames the
/// peer does not read (pongs to its pings, replies, pushes) stop here, and
/// the connection is closed.
pub const MAX_WRITE_BUFFER: usize = 1024 * 1024;

/// The default `max_connections` for an open-files limit: every session
/// holds a descriptor, and [`CONNECTION_RESERVE`] + [`FILE_RESERVE`] stay
/// free for the rest, so `accept` never runs out of descriptors.
pub fn default_max_connections(open_files: u64) -> usize {
    let reserve = CONNECTION_RESERVE as u64 + FILE_RESERVE;
    let budget = open_files.saturating_sub(reserve).max(1);
    usize::try_from(budget).unwrap_or(usize::MAX)
}

/// Counts of what the connection limits did, since start.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    /// Accepted connections still open (HTTP or WebSocket).
    open: AtomicUsize,
    /// WebSocket sessions open.
    sessions: AtomicUsize,
    /// Connections closed at accept: over `max_connections` + reserve.
    dropped_at_accept: AtomicU64,
    /// `/ws` upgrades answered 503: `max_connections` sessions were open.
    refused_busy: AtomicU64,
    header_timeouts: AtomicU64,
    hello_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    /// Sessions closed because the peer did not read what was sent to it.
    write_overflows: AtomicU64,
    /// Where each tripped limit is counted for the server's pseudo-agent
    /// (U13); `None` for gauges of no server.
    self_log: Option<SelfLog>,
}

/// Which count to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    HeaderTimeout,
    HelloTimeout,
    IdleTimeout,
    WriteOverflow,
}

impl Gauges {
    /// Gauges that also count every tripped limit in `self_log`.
    pub(crate) fn new(self_log: SelfLog) -> Self {
        Self {
            self_log: Some(self_log),
            ..Self::default()
        }
    }

    /// Counts a tripped limit for the server's pseudo-agent (its caller
    /// writes the log line, if any).
    fn report(&self, message: &str) {
        if let Some(log) = &self.self_log {
            log.record(SelfLevel::Warn, message);
        }
    }

    /// Counts an event.
    pub(crate) fn count(&self, event: Event) {
        let (counter, message) = match event {
            Event::HeaderTimeout => (&self.header_timeouts, "connection closed: header timeout"),
            Event::HelloTimeout => (&self.hello_timeouts, "agent connection closed: hello timeout"),
            Event::IdleTimeout => (&self.idle_timeouts, "agent connection closed: idle timeout"),
            Event::WriteOverflow => (&self.write_overflows, "agent connection closed: write overflow"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.report(message);
    }

    /// An accepted connection, held until the guard drops; `None` (and
    /// counted) when `cap` connections are open already.
    pub(crate) fn admit_connection(self: &Arc<Self>, cap: Option<usize>) -> Option<Slot> {
        Slot::take(self, Kind::Connection, cap).or_else(|| {
            self.dropped_at_accept.fetch_add(1, Ordering::Relaxed);
            self.report("connection closed at accept: connection budget full");
            None
        })
    }

    /// A WebSocket session, held until the guard drops; `None` (and counted)
    /// when `cap` sessions are open already.
    pub(crate) fn admit_session(self: &Arc<Self>, cap: Option<usize>) -> Option<Slot> {
        Slot::take(self, Kind::Session, cap).or_else(|| {
            self.refused_busy.fetch_add(1, Ordering::Relaxed);
            self.report("agent connection refused: server_busy, max_connections sessions open");
            None
        })
    }

    /// The figures, for `GET /api/stats`.
    pub(crate) fn view(&self, max_sessions: Option<usize>) -> ConnectionsView {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConnectionsView {
            open: self.open.load(Ordering::Relaxed),
            sessions: self.sessions.load(Ordering::Relaxed),
            max_sessions,
            dropped_at_accept: get(&self.dropped_at_accept),
            refused_busy: get(&self.refused_busy),
            header_timeouts: get(&self.header_timeouts),
            hello_timeouts: get(&self.hello_timeouts),
            idle_timeouts: get(&self.idle_timeouts),
            write_overflows: get(&self.write_overflows),
        }
    }

    fn gauge(&self, kind: Kind) -> &AtomicUsize {
        match kind {
            Kind::Connection => &self.open,
            Kind::Session => &self.sessions,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Connection,
    Session,
}

/// One place in a gauge, given back on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    gauges: Arc<Gauges>,
    kind: Kind,
}

impl Slot {
    /// Counts an event of the connection holding this slot.
    pub(crate) fn count(&self, event: Event) {
        self.gauges.count(event);
    }

    fn take(gauges: &Arc<Gauges>, kind: Kind, cap: Option<usize>) -> Option<Self> {
        let gauge = gauges.gauge(kind);
        let before = gauge.fetch_add(1, Ordering::AcqRel);
        let slot = Self {
            gauges: gauges.clone(),
            kind,
        };
        // Over the cap: dropping the slot gives the place back.
        (cap.is_none_or(|cap| before < cap)).then_some(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauges.gauge(self.kind).fetch_sub(1, Ordering::AcqRel);
    }
}

/// `connections` in `GET /api/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConnectionsView {
    /// Accepted connections open now, HTTP and WebSocket.
    pub open: usize,
    /// WebSocket sessions open now, admitted or still before `hello`.
    pub sessions: usize,
    /// `max_connections`: the most sessions at once; `None`: no bound.
    pub max_sessions: Option<usize>,
    /// Connections closed as soon as accepted: `max_connections` +
    /// [`CONNECTION_RESERVE`] were open.
    pub dropped_at_accept: u64,
    /// `/ws` requests answered 503 `server_busy`.
    pub refused_busy: u64,
    /// Connections closed because a request's headers did not arrive in time.
    pub header_timeouts: u64,
    /// WebSockets closed because no good `hello` came in time.
    pub hello_timeouts: u64,
    /// Admitted sessions closed after staying silent too long.
    pub idle_timeouts: u64,
    /// Connections closed because the peer took nothing written to it for
    /// the idle timeout (its WebSocket buffer holds at most
    /// [`MAX_WRITE_BUFFER`] meanwhile), or a session's frame before the
    /// session's deadline.
    pub write_overflows: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_refused_over_the_cap_and_given_back() {
        let gauges = Arc::new(Gauges::default());
        let first = gauges.admit_session(Some(2)).unwrap();
        let second = gauges.admit_session(Some(2)).unwrap();
        assert!(gauges.admit_session(Some(2)).is_none());
        assert_eq!(gauges.view(Some(2)).sessions, 2);
        assert_eq!(gauges.view(Some(2)).refused_busy, 1);
        drop(first);
        let third = gauges.admit_session(Some(2));
        assert!(third.is_some());
        drop((second, third));
        assert_eq!(gauges.view(None).sessions, 0);
        assert!(gauges.admit_connection(None).is_some());
    }

    #[test]
    fn the_default_budget_leaves_the_reserve_free() {
        assert_eq!(default_max_connections(20_000), 20_000 - 256 - 64);
        assert_eq!(default_max_connections(10), 1);
    }
}
