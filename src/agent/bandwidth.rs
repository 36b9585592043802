//! How long a download's bytes take: the server's egress is shared fairly
//! by every transfer in progress (max-min fairness: no transfer gets more
//! than its machine's link, and what the slow ones leave is split evenly
//! among the rest), and each share changes whenever a transfer starts or
//! ends. This is a fluid model, event-driven: between two events every
//! transfer moves at a constant rate, so completion times are exact to the
//! millisecond of the clock.
//!
//! Transfers that share a link speed always move at the same rate, so the
//! model keeps one class per link speed with a single "bytes served per
//! transfer" counter; a transfer of `n` bytes joining when that counter is
//! at `s` ends when it reaches `s + n`. An event costs a few operations per
//! class plus a heap operation, not a pass over every transfer, which keeps a
//! promote to ten thousand machines cheap.
//!
//! The model also keeps the figures of the download storm: downloads in
//! progress (a [`Transfer`] lives from the offer accepted to the end of the
//! download step, fixed latency included), the egress rate, and both
//! over time in buckets of the report's sample period.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use crate::clock::{Clock, Timestamp};

/// Parses a rate: `"1Gbit/s"`, `"50Mbit/s"`, `"512kbit/s"`, `"10MB/s"`,
/// `"4MiB/s"`; bits use decimal prefixes, as network links are sold.
/// Returns bytes per second.
///
/// A handful of units does not justify a crate; bytesize parses sizes, not
/// rates or bits.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .replace('_', "")
        .parse()
        .map_err(|_| format!("invalid rate `{text}`: expected a number and a unit, e.g. 1Gbit/s, 50Mbit/s, 10MB/s"))?;
    let unit = unit.trim();
    let per_second: f64 = match unit {
        "bit/s" | "bps" => 1.0 / 8.0,
        "kbit/s" | "Kbit/s" | "kbps" => 1e3 / 8.0,
        "Mbit/s" | "Mbps" => 1e6 / 8.0,
        "Gbit/s" | "Gbps" => 1e9 / 8.0,
        "B/s" => 1.0,
        "kB/s" | "KB/s" => 1e3,
        "MB/s" => 1e6,
        "GB/s" => 1e9,
        "KiB/s" => 1024.0,
        "MiB/s" => 1024.0 * 1024.0,
        "GiB/s" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "invalid rate `{text}`: unknown unit `{unit}` (bit/s, kbit/s, Mbit/s, Gbit/s, B/s, kB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s)"
            ));
        }
    };
    let rate = number * per_second;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("invalid rate `{text}`: must be above 0"));
    }
    Ok(rate)
}

/// Shared by every agent of a run.
pub struct Bandwidth {
    clock: Clock,
    state: Mutex<State>,
    wake: Notify,
}

/// The download storm as measured: peaks and a curve.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StormFigures {
    /// Bytes that moved (completed transfers whole, cut ones as far as they got).
    pub bytes_served: u64,
    /// Most downloads in progress at once.
    pub peak_concurrent: u64,
    /// Highest egress, bytes per second (0 with no limit anywhere: bytes
    /// then move in no time and have no rate).
    pub peak_egress: f64,
    /// Time the egress ran at its limit.
    pub saturated: Duration,
    /// Per bucket of the sample period: the most downloads in progress.
    pub concurrent: Vec<u64>,
    /// Per bucket: the highest egress, bytes per second.
    pub egress: Vec<f64>,
}

struct Class {
    /// Bytes per second; `None`: no limit of its own.
    link: Option<f64>,
    /// The rate each of its transfers moves at now.
    rate: f64,
    /// Bytes served per transfer of this class since the run began.
    served: f64,
    /// Transfers moving.
    count: usize,
    /// (served level at which it ends, id), smallest first; cut transfers stay
    /// until they surface and are skipped then.
    ends: BinaryHeap<Reverse<(Level, u64)>>,
}

/// An `f64` with a total order, for the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Level(f64);
impl Eq for Level {}
impl PartialOrd for Level {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Level {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

struct Flow {
    class: usize,
    start: f64,
    bytes: u64,
    done: Option<oneshot::Sender<()>>,
}

struct State {
    egress: Option<f64>,
    classes: Vec<Class>,
    flows: BTreeMap<u64, Flow>,
    next_id: u64,
    /// When the rates last held from.
    since: Timestamp,
    origin: Timestamp,
    bucket_ms: i64,
    /// Downloads in progress.
    live: u64,
    figures: StormFigures,
}

/// Bytes within this of a transfer's end count as delivered (float rounding).
const EPSILON_BYTES: f64 = 1e-3;

impl State {
    fn egress_now(&self) -> f64 {
        self.classes
            .iter()
            .filter(|c| c.rate.is_finite())
            .map(|c| c.rate * c.count as f64)
            .sum()
    }

    /// Moves every transfer forward to `now` and records the interval.
    fn advance(&mut self, now: Timestamp) {
        let dt_ms = now.0 - self.since.0;
        if dt_ms <= 0 {
            return;
        }
        let egress = self.egress_now();
        for c in &mut self.classes {
            if c.count > 0 && c.rate.is_finite() {
                c.served += c.rate * dt_ms as f64 / 1000.0;
            }
        }
        if self.egress.is_some_and(|limit| egress >= limit * (1.0 - 1e-9)) {
            self.figures.saturated += Duration::from_millis(dt_ms as u64);
        }
        // The state held over [since, now): every bucket it covered saw it.
        let first = (self.since.0 - self.origin.0).div_euclid(self.bucket_ms);
        let last = (now.0 - 1 - self.origin.0).div_euclid(self.bucket_ms);
        for b in first.max(0)..=last.max(-1) {
            self.mark(b as usize, self.live, egress);
        }
        self.since = now;
    }

    fn mark(&mut self, bucket: usize, live: u64, egress: f64) {
        let f = &mut self.figures;
        if f.concurrent.len() <= bucket {
            f.concurrent.resize(bucket + 1, 0);
            f.egress.resize(bucket + 1, 0.0);
        }
        f.concurrent[bucket] = f.concurrent[bucket].max(live);
        f.egress[bucket] = f.egress[bucket].max(egress);
    }

    /// Notes the state that holds from `now` on (peaks, and its bucket).
    fn note(&mut self, now: Timestamp) {
        let egress = self.egress_now();
        self.figures.peak_concurrent = self.figures.peak_concurrent.max(self.live);
        self.figures.peak_egress = self.figures.peak_egress.max(egress);
        let b = (now.0 - self.origin.0).div_euclid(self.bucket_ms).max(0);
        self.mark(b as usize, self.live, egress);
    }

    /// Max-min fair rates: classes in order of link speed take their link
    /// while it is below an even split of what is left.
    fn share(&mut self) {
        let mut order: Vec<usize> = (0..self.classes.len()).filter(|&i| self.classes[i].count > 0).collect();
        order.sort_by(|&a, &b| {
            let key = |i: usize| self.classes[i].link.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        });
        let mut left = self.egress.unwrap_or(f64::INFINITY);
        let mut flows: usize = order.iter().map(|&i| self.classes[i].count).sum();
        for i in order {
            let c = &mut self.classes[i];
            let even = left / flows as f64;
            let link = c.link.unwrap_or(f64::INFINITY);
            c.rate = link.min(even);
            left -= c.rate * c.count as f64;
            flows -= c.count;
            if left < 0.0 {
                left = 0.0;
            }
        }
    }

    /// Ends every transfer that has all its bytes; true if any did.
    fn complete(&mut self) -> bool {
        let mut any = false;
        for ci in 0..self.classes.len() {
            loop {
                let c = &mut self.classes[ci];
                let Some(&Reverse((Level(end), id))) = c.ends.peek() else {
                    break;
                };
                if !self.flows.contains_key(&id) {
                    c.ends.pop();
                    continue;
                }
                if !(c.rate.is_infinite() || end - c.served <= EPSILON_BYTES) {
                    break;
                }
                c.ends.pop();
                c.count -= 1;
                if let Some(mut flow) = self.flows.remove(&id) {
                    self.figures.bytes_served += flow.bytes;
                    if let Some(done) = flow.done.take() {
                        let _ = done.send(());
                    }
                }
                any = true;
            }
        }
        any
    }

    /// When the next transfer ends, if any is moving.
    fn next_end(&self) -> Option<Timestamp> {
        self.classes
            .iter()
            .filter(|c| c.count > 0)
            .filter_map(|c| {
                let Reverse((Level(end), _)) = *c.ends.peek()?;
                let secs = ((end - c.served).max(0.0)) / c.rate;
                Some(secs)
            })
            .min_by(f64::total_cmp)
            .map(|secs| Timestamp(self.since.0 + (secs * 1000.0).ceil().min(1e15) as i64))
    }

    fn class_for(&mut self, link: Option<f64>) -> usize {
        if let Some(i) = self.classes.iter().position(|c| c.link == link) {
            return i;
        }
        self.classes.push(Class {
            link,
            rate: 0.0,
            served: 0.0,
            count: 0,
            ends: BinaryHeap::new(),
        });
        self.classes.len() - 1
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Bandwidth {
    /// A model with `egress` bytes per second shared by all (`None`: no
    /// limit), its curve in buckets of `bucket` from `origin`.
    pub fn new(clock: Clock, egress: Option<f64>, origin: Timestamp, bucket: Duration) -> Arc<Self> {
        let now = clock.now();
        Arc::new(Self {
            clock,
            state: Mutex::new(State {
                egress,
                classes: Vec::new(),
                flows: BTreeMap::new(),
                next_id: 0,
                since: now,
                origin,
                bucket_ms: (bucket.as_millis() as i64).max(1),
                live: 0,
                figures: StormFigures::default(),
            }),
            wake: Notify::new(),
        })
    }

    /// No limits anywhere (the real-time swarm): bytes move in no time.
    pub fn unlimited(clock: Clock) -> Arc<Self> {
        let now = clock.now();
        Self::new(clock, None, now, Duration::from_secs(60))
    }

    /// Starts a download of `bytes` over a link of `link` bytes per second
    /// (`None`: no limit of its own). It counts as in progress until the
    /// handle is dropped.
    pub fn start(self: &Arc<Self>, bytes: u64, link: Option<f64>) -> Transfer {
        let now = self.clock.now();
        let mut s = lock(&self.state);
        s.advance(now);
        s.live += 1;
        let instant = (s.egress.is_none() && link.is_none()) || bytes == 0;
        let id = s.next_id;
        s.next_id += 1;
        let moving = if instant {
            s.figures.bytes_served += bytes;
            None
        } else {
            let class = s.class_for(link);
            let (tx, rx) = oneshot::channel();
            let c = &mut s.classes[class];
            let start = c.served;
            c.count += 1;
            c.ends.push(Reverse((Level(start + bytes as f64), id)));
            s.flows.insert(
                id,
                Flow {
                    class,
                    start,
                    bytes,
                    done: Some(tx),
                },
            );
            s.share();
            Some(rx)
        };
        s.note(now);
        drop(s);
        if moving.is_some() {
            self.wake.notify_one();
        }
        Transfer {
            model: self.clone(),
            id,
            moving,
        }
    }

    fn end(&self, id: u64, cut: bool) {
        let now = self.clock.now();
        let mut s = lock(&self.state);
        s.advance(now);
        s.live -= 1;
        if cut {
            if let Some(flow) = s.flows.remove(&id) {
                let c = &mut s.classes[flow.class];
                c.count -= 1;
                let got = (c.served - flow.start).clamp(0.0, flow.bytes as f64);
                s.figures.bytes_served += got as u64;
                s.share();
                s.note(now);
                drop(s);
                self.wake.notify_one();
                return;
            }
        }
        s.note(now);
    }

    /// The figures so far, the curve closed at `end`.
    pub fn figures(&self, end: Timestamp) -> StormFigures {
        let mut s = lock(&self.state);
        s.advance(end);
        s.figures.clone()
    }

    /// Ends transfers as their bytes arrive. Runs until the runtime stops.
    pub async fn drive(self: Arc<Self>) {
        loop {
            let next = {
                let mut s = lock(&self.state);
                let now = self.clock.now();
                s.advance(now);
                if s.complete() {
                    s.share();
                    s.note(now);
                }
                s.next_end()
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        biased;
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep_until(self.clock.instant_at(at)) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

/// A download in progress; dropping it ends it (a machine powered off cuts
/// its transfer).
pub struct Transfer {
    model: Arc<Bandwidth>,
    id: u64,
    moving: Option<oneshot::Receiver<()>>,
}

impl Transfer {
    /// Whether its bytes are still moving.
    pub fn moving(&self) -> bool {
        self.moving.is_some()
    }

    /// Resolves when the last byte arrived (at once if none are moving).
    pub async fn arrived(&mut self) {
        if let Some(rx) = self.moving.as_mut() {
            // A dropped sender means the model is gone with the runtime.
            let _ = rx.await;
            self.moving = None;
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.model.end(self.id, self.moving.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1e6;

    #[test]
    fn rates_parse_in_bits_and_bytes() {
        assert_eq!(parse_rate("1Gbit/s").unwrap(), 125e6);
        assert_eq!(parse_rate("100Mbit/s").unwrap(), 12.5e6);
        assert_eq!(parse_rate(" 50 Mbit/s ").unwrap(), 6.25e6);
        assert_eq!(parse_rate("10MB/s").unwrap(), 10e6);
        assert_eq!(parse_rate("4MiB/s").unwrap(), 4.0 * 1024.0 * 1024.0);
        assert!(parse_rate("0Mbit/s").unwrap_err().contains("above 0"));
        assert!(parse_rate("fast").unwrap_err().contains("expected a number"));
        assert!(parse_rate("5 Mbit").unwrap_err().contains("unknown unit `Mbit`"));
    }

    fn model(egress: Option<f64>) -> (Arc<Bandwidth>, Clock) {
        let clock = Clock::virtual_from(Timestamp(0));
        (
            Bandwidth::new(clock, egress, Timestamp(0), Duration::from_secs(1)),
            clock,
        )
    }

    /// Runs `f` on a paused-clock runtime with the model's driver.
    fn paused<F: Future<Output = ()>>(f: impl FnOnce() -> F) {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(f());
    }

    async fn arrive_at(model: &Arc<Bandwidth>, clock: Clock, bytes: u64, link: Option<f64>) -> i64 {
        let mut t = model.start(bytes, link);
        t.arrived().await;
        clock.now().0
    }

    #[test]
    fn an_even_split_ends_everyone_together() {
        paused(|| async {
            let (m, clock) = model(Some(10.0 * MB));
            tokio::spawn(m.clone().drive());
            // Four transfers of 10 MB through 10 MB/s: 4 s, all of them.
            let ends = futures_util::future::join_all((0..4).map(|_| arrive_at(&m, clock, 10_000_000, None))).await;
            assert_eq!(ends, vec![4000; 4]);
            let f = m.figures(clock.now());
            assert_eq!(f.bytes_served, 40_000_000);
            assert_eq!(f.peak_concurrent, 4);
            assert!((f.peak_egress - 10.0 * MB).abs() < 1.0);
            assert_eq!(f.saturated, Duration::from_secs(4));
            // The handles live until their last byte's instant, in bucket 4.
            assert_eq!(f.concurrent, vec![4, 4, 4, 4, 4]);
            assert_eq!(f.egress[..4], [10.0 * MB; 4]);
            assert_eq!(f.egress[4], 0.0);
        });
    }

    #[test]
    fn a_slow_link_leaves_its_share_to_the_others() {
        paused(|| async {
            let (m, clock) = model(Some(10.0 * MB));
            tokio::spawn(m.clone().drive());
            // A 1 MB/s machine and a fast one share 10 MB/s: the fast one gets 9.
            let slow = arrive_at(&m, clock, 2_000_000, Some(MB));
            let fast = arrive_at(&m, clock, 18_000_000, None);
            let (slow, fast) = tokio::join!(slow, fast);
            assert_eq!(slow, 2000);
            assert_eq!(fast, 2000);
        });
    }

    #[test]
    fn a_transfer_ending_speeds_up_the_rest() {
        paused(|| async {
            let (m, clock) = model(Some(MB));
            tokio::spawn(m.clone().drive());
            // 1 MB and 3 MB at 1 MB/s: both at 0.5 MB/s until 2 s, then the
            // second alone moves its last 2 MB in 2 s.
            let a = arrive_at(&m, clock, 1_000_000, None);
            let b = arrive_at(&m, clock, 3_000_000, None);
            assert_eq!(tokio::join!(a, b), (2000, 4000));
        });
    }

    #[test]
    fn a_late_arrival_slows_the_first() {
        paused(|| async {
            let (m, clock) = model(Some(MB));
            tokio::spawn(m.clone().drive());
            let first = tokio::spawn({
                let m = m.clone();
                async move { arrive_at(&m, clock, 2_000_000, None).await }
            });
            tokio::time::sleep(Duration::from_secs(1)).await;
            // At 1 s the first has 1 MB left; then both move at 0.5 MB/s.
            let second = arrive_at(&m, clock, 1_000_000, None).await;
            assert_eq!(second, 3000);
            assert_eq!(first.await.unwrap(), 3000);
        });
    }

    #[test]
    fn a_cut_transfer_frees_its_share_and_counts_what_moved() {
        paused(|| async {
            let (m, clock) = model(Some(MB));
            tokio::spawn(m.clone().drive());
            let cut = m.start(4_000_000, None);
            let other = tokio::spawn({
                let m = m.clone();
                async move { arrive_at(&m, clock, 2_000_000, None).await }
            });
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(cut); // 1 MB of it moved; the other has 1 MB left, alone now.
            assert_eq!(other.await.unwrap(), 3000);
            assert_eq!(m.figures(clock.now()).bytes_served, 3_000_000);
        });
    }

    #[test]
    fn no_limit_moves_bytes_in_no_time() {
        paused(|| async {
            let (m, clock) = model(None);
            let mut t = m.start(5_000_000, None);
            assert!(!t.moving());
            t.arrived().await;
            assert_eq!(clock.now().0, 0);
            drop(t);
            let f = m.figures(clock.now());
            assert_eq!((f.bytes_served, f.peak_concurrent, f.peak_egress), (5_000_000, 1, 0.0));
        });
    }

    #[test]
    fn a_link_alone_limits_without_an_egress() {
        paused(|| async {
            let (m, clock) = model(None);
            tokio::spawn(m.clone().drive());
            assert_eq!(arrive_at(&m, clock, 5_000_000, Some(MB)).await, 5000);
        });
    }
}
