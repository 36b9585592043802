//! `rmmsim swarm`: simulated agents in real time against any server that
//! speaks the protocol (a `rmmsim serve` in another process or on another
//! machine), measuring heartbeat round trips. Several swarms against one
//! server is how a capacity test grows past one machine (or one process's
//! open-files limit).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};

use crate::agent::{Agent, AgentEvent, AgentSpec, Availability, Dial, Observer, Orders, Timing, WsConnector};
use crate::clock::{Clock, Timestamp};
use crate::protocol::{ErrorCode, Platform, Version};

/// What a swarm runs.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// The server, `ws://IP:PORT` (an IP literal: no name lookups).
    pub server: SocketAddr,
    /// The site key that admits the agents.
    pub site_key: String,
    /// Connected agents to reach, in steps; measured after each.
    pub steps: Vec<usize>,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Measurement window per step (after everyone is connected and one
    /// heartbeat interval has passed).
    pub window: Duration,
    /// Measure the last step again and again until stopped, instead of exiting.
    pub hold: bool,
    /// Agents' version.
    pub version: Version,
    /// Agents' platform.
    pub platform: Platform,
    /// Local addresses to connect from, round robin (127.0.0.1, .2, … for a
    /// loopback server): each gives another ~28,000 ephemeral ports.
    pub sources: usize,
    /// Seeds machine ids and jitter.
    pub seed: u64,
    /// Agent timings other than the heartbeat.
    pub download: Duration,
    /// Install time.
    pub install: Duration,
    /// Restart time.
    pub restart: Duration,
    /// Put each step's round-trip histogram in its report, so that reports
    /// of several swarms merge into exact percentiles.
    pub histogram: bool,
}

/// One measured step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// Agents started.
    pub agents: usize,
    /// Agents connected at the end of the window.
    pub connected: usize,
    /// Length of the window, seconds.
    pub window_s: f64,
    /// Heartbeats acknowledged in the window.
    pub heartbeats: u64,
    /// Round trips, milliseconds.
    pub rtt_ms: Rtt,
    /// Sessions the server closed, connects that failed, frames refused, since the start.
    pub lost: u64,
    /// Connects that failed since the start.
    pub connect_failures: u64,
    /// Frames the server refused since the start, hellos included.
    pub refused: u64,
    /// Hellos the server refused since the start (a wrong site key, the
    /// enrolment cap): the agent was not admitted, and tries again later.
    #[serde(default)]
    pub hello_refused: u64,
    /// Agents not connected at the end of the window whose last hello was refused.
    #[serde(default)]
    pub refused_agents: usize,
    /// Window start and end, Unix milliseconds (to line up server samples).
    pub start_unix_ms: i64,
    /// Window end.
    pub end_unix_ms: i64,
    /// The round-trip histogram of the window, when asked for: each recorded
    /// bucket as `[microseconds, count]`. [`merged_rtt`] combines several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rtt_us: Vec<[u64; 2]>,
}

/// Round-trip percentiles.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Rtt {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Worst.
    pub max: f64,
}

/// A refused hello: the server's error frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The error code.
    pub code: ErrorCode,
    /// The server's words.
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = serde_json::to_value(self.code).unwrap_or_default();
        write!(f, "{}: {}", code.as_str().unwrap_or("?"), self.message)
    }
}

/// The swarm stopped: the server refused every agent's hello, so there is
/// nothing to measure.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server refused the hello of every agent ({agents}): {}",
    .refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
)]
pub struct AllRefused {
    /// Agents started.
    pub agents: usize,
    /// Each distinct refusal (by code), first seen first.
    pub refusals: Vec<Refusal>,
}

/// Told of each kind of refused hello the first time it happens.
type RefusalSink = Box<dyn Fn(&Refusal) + Send + Sync>;

/// Shared by every agent of the swarm.
struct Stats {
    connected: Vec<AtomicBool>,
    /// Per agent: its last hello was refused, and it has not connected since.
    refused_now: Vec<AtomicBool>,
    rtt: Mutex<Histogram<u64>>,
    lost: AtomicU64,
    connect_failures: AtomicU64,
    refused: AtomicU64,
    hello_refused: AtomicU64,
    /// Each distinct refusal (by code), first seen first.
    refusals: Mutex<Vec<Refusal>>,
    on_refusal: RefusalSink,
}

impl Stats {
    /// Counts a refused hello; the first of its code is told at once.
    fn hello_refused(&self, index: usize, refusal: Refusal) {
        self.connected[index].store(false, Ordering::Relaxed);
        self.refused_now[index].store(true, Ordering::Relaxed);
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.hello_refused.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        if seen.iter().all(|r| r.code != refusal.code) {
            (self.on_refusal)(&refusal);
            seen.push(refusal);
        }
    }

    fn count(flags: &[AtomicBool]) -> usize {
        flags.iter().filter(|c| c.load(Ordering::Relaxed)).count()
    }
}

impl Observer for Stats {
    fn observe(&self, index: usize, event: AgentEvent) {
        match event {
            AgentEvent::Connected { .. } => {
                self.refused_now[index].store(false, Ordering::Relaxed);
                self.connected[index].store(true, Ordering::Relaxed);
            }
            AgentEvent::ConnectionLost => {
                self.connected[index].store(false, Ordering::Relaxed);
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
            AgentEvent::ConnectFailed => {
                self.connected[index].store(false, Ordering::Relaxed);
                self.connect_failures.fetch_add(1, Ordering::Relaxed);
            }
            AgentEvent::Refused { .. } => {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            AgentEvent::HelloRefused { code, message } => self.hello_refused(index, Refusal { code, message }),
            AgentEvent::Acked { rtt } => {
                let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
                let mut h = self.rtt.lock().unwrap_or_else(|p| p.into_inner());
                h.saturating_record(micros);
            }
            _ => {}
        }
    }
}

/// Connects from a rotating set of local loopback addresses.
#[derive(Clone)]
struct SwarmDial {
    server: SocketAddr,
    sources: Arc<Vec<IpAddr>>,
    next: Arc<AtomicUsize>,
}

impl Dial for SwarmDial {
    type Io = TcpStream;

    async fn dial(&self) -> std::io::Result<TcpStream> {
        let stream = if self.sources.len() > 1 {
            let ip = self.sources[self.next.fetch_add(1, Ordering::Relaxed) % self.sources.len()];
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(self.server).await?
        } else {
            TcpStream::connect(self.server).await?
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Parses `ws://IP:PORT` (or `IP:PORT`).
pub fn parse_server(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.strip_prefix("ws://").unwrap_or(url);
    let rest = rest.strip_suffix("/ws").unwrap_or(rest).trim_end_matches('/');
    rest.parse()
        .with_context(|| format!("`{url}`: expected ws://IP:PORT with an IP address (no host names)"))
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")
}

/// The round trips of several swarms' reports of one step, from their
/// histograms (`None` when a report has none).
pub fn merged_rtt(parts: &[StepReport]) -> Option<Rtt> {
    let mut all = histogram().ok()?;
    for part in parts {
        if part.rtt_us.is_empty() && part.heartbeats > 0 {
            return None;
        }
        for &[micros, count] in &part.rtt_us {
            all.saturating_record_n(micros, count);
        }
    }
    Some(percentiles(&all))
}

fn percentiles(h: &Histogram<u64>) -> Rtt {
    let ms = |us: u64| us as f64 / 1000.0;
    Rtt {
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
    }
}

/// The swarm's fixed timings: everything but the heartbeat and the window
/// (flags of `rmmsim swarm`), in one place.
pub(crate) mod timing {
    use std::time::Duration;

    /// How long an agent's download takes when it is sent an update (a
    /// swarm measures heartbeats; an update is the exception).
    pub const DOWNLOAD: Duration = Duration::from_secs(20);
    /// How long its install takes.
    pub const INSTALL: Duration = Duration::from_secs(30);
    /// How long its restart takes.
    pub const RESTART: Duration = Duration::from_secs(15);
    /// Each heartbeat interval is shortened by up to this fraction, at random.
    pub const JITTER: f64 = 0.02;
    /// The first wait before reconnecting after a lost connection.
    pub const RECONNECT_MIN: Duration = Duration::from_millis(500);
    /// The longest wait before reconnecting.
    pub const RECONNECT_MAX: Duration = Duration::from_secs(30);
    /// A step's agents come up over one heartbeat interval; the swarm waits
    /// for them three intervals and this much more before it measures anyway.
    pub const STRAGGLERS: Duration = Duration::from_secs(10);
    /// How often it looks whether a step's agents are all connected.
    pub const CONNECTED_POLL: Duration = Duration::from_millis(200);
}

/// Runs the swarm; calls `report` with each measured step, and
/// `on_refusal` at once with the first refused hello of each error code
/// (every one is counted in the step reports). When the server refuses
/// every agent of a step, it reports the step unmeasured and stops with
/// [`AllRefused`].
pub async fn run(
    config: SwarmConfig,
    mut report: impl FnMut(&StepReport),
    on_refusal: impl Fn(&Refusal) + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let mut swarm = Swarm::new(&config, Box::new(on_refusal))?;
    for (k, &step) in config.steps.iter().enumerate() {
        swarm.start_agents(&config, step);
        swarm.wait_connected(&config, step).await;
        if swarm.all_refused(step) {
            let now = Clock::Wall.now();
            report(&swarm.snapshot(&config, step, now, now));
            let refusals = swarm.stats.refusals.lock().unwrap_or_else(|p| p.into_inner()).clone();
            return Err(AllRefused { agents: step, refusals }.into());
        }
        tokio::time::sleep(config.heartbeat).await;
        let last = k + 1 == config.steps.len();
        loop {
            report(&swarm.measure(&config, step).await);
            if !(last && config.hold) {
                break;
            }
        }
    }
    Ok(())
}

/// The agents running and what they share.
struct Swarm {
    stats: Arc<Stats>,
    connector: WsConnector<SwarmDial>,
    timing: Timing,
    field: Arc<crate::agent::FieldBehaviour>,
    bandwidth: Arc<crate::agent::Bandwidth>,
    rng: ChaCha8Rng,
    /// Held until the swarm ends: dropping an agent's orders stops it.
    orders: Vec<Orders>,
}

impl Swarm {
    fn new(config: &SwarmConfig, on_refusal: RefusalSink) -> anyhow::Result<Self> {
        let most = config.steps.iter().copied().max().unwrap_or(0);
        let flags = || (0..most).map(|_| AtomicBool::new(false)).collect();
        let stats = Arc::new(Stats {
            connected: flags(),
            refused_now: flags(),
            rtt: Mutex::new(histogram()?),
            lost: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            hello_refused: AtomicU64::new(0),
            refusals: Mutex::new(Vec::new()),
            on_refusal,
        });
        let sources: Vec<IpAddr> = if config.server.ip().is_loopback() && config.sources > 1 {
            (1..=config.sources.min(250))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8)))
                .collect()
        } else {
            vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
        };
        let dial = SwarmDial {
            server: config.server,
            sources: Arc::new(sources),
            next: Arc::default(),
        };
        Ok(Self {
            stats,
            connector: WsConnector::new(dial, config.server.to_string()),
            timing: Timing {
                heartbeat: config.heartbeat,
                jitter: timing::JITTER,
                download: config.download,
                bandwidth: None,
                install: config.install,
                restart: config.restart,
                reconnect_min: timing::RECONNECT_MIN,
                reconnect_max: timing::RECONNECT_MAX,
            },
            field: Arc::default(),
            bandwidth: crate::agent::Bandwidth::unlimited(Clock::Wall),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            orders: Vec::with_capacity(most),
        })
    }

    /// Starts agents until `step` run.
    fn start_agents(&mut self, config: &SwarmConfig, step: usize) {
        for index in self.orders.len()..step {
            let mut bytes = [0u8; 16];
            self.rng.fill_bytes(&mut bytes);
            let spec = AgentSpec {
                index,
                machine: uuid::Builder::from_random_bytes(bytes).into_uuid(),
                hostname: format!("swarm-{index:06}"),
                platform: config.platform.clone(),
                version: config.version,
                site_key: config.site_key.clone(),
                identity_boundary: Version::new(0, 0, 0),
                timing: self.timing,
                availability: Availability::Always,
                seed: self.rng.next_u64(),
                report_rtt: true,
            };
            let observer: Arc<dyn Observer> = self.stats.clone();
            let (order, watch) = crate::agent::orders();
            self.orders.push(order);
            let agent = Agent::new(
                spec,
                self.connector.clone(),
                self.field.clone(),
                self.bandwidth.clone(),
                observer,
                watch,
                Clock::Wall,
            );
            tokio::spawn(agent.run());
        }
    }

    fn connected(&self) -> usize {
        Stats::count(&self.stats.connected)
    }

    fn refused_agents(&self) -> usize {
        Stats::count(&self.stats.refused_now)
    }

    /// Whether the server refused the hello of every one of `step` agents.
    fn all_refused(&self, step: usize) -> bool {
        self.connected() == 0 && self.refused_agents() >= step
    }

    /// Until each of `step` agents is connected or refused, or the
    /// stragglers' time is up.
    async fn wait_connected(&self, config: &SwarmConfig, step: usize) {
        let deadline = tokio::time::Instant::now() + config.heartbeat * 3 + timing::STRAGGLERS;
        while self.connected() + self.refused_agents() < step && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(timing::CONNECTED_POLL).await;
        }
    }

    /// One measurement window.
    async fn measure(&self, config: &SwarmConfig, step: usize) -> StepReport {
        self.stats.rtt.lock().unwrap_or_else(|p| p.into_inner()).reset();
        let start = Clock::Wall.now();
        tokio::time::sleep(config.window).await;
        self.snapshot(config, step, start, Clock::Wall.now())
    }

    /// The step's report of the window from `start` to `end`.
    fn snapshot(&self, config: &SwarmConfig, step: usize, start: Timestamp, end: Timestamp) -> StepReport {
        let stats = &self.stats;
        // The window's heartbeats are the histogram's: one snapshot under one lock.
        let (heartbeats, rtt, rtt_us) = {
            let h = stats.rtt.lock().unwrap_or_else(|p| p.into_inner());
            let buckets = match config.histogram {
                true => h
                    .iter_recorded()
                    .map(|v| [v.value_iterated_to(), v.count_at_value()])
                    .collect(),
                false => Vec::new(),
            };
            (h.len(), percentiles(&h), buckets)
        };
        StepReport {
            agents: step,
            connected: self.connected(),
            window_s: end.since(start).as_secs_f64(),
            heartbeats,
            rtt_ms: rtt,
            lost: stats.lost.load(Ordering::Relaxed),
            connect_failures: stats.connect_failures.load(Ordering::Relaxed),
            refused: stats.refused.load(Ordering::Relaxed),
            hello_refused: stats.hello_refused.load(Ordering::Relaxed),
            refused_agents: self.refused_agents(),
            start_unix_ms: start.millis(),
            end_unix_ms: end.millis(),
            rtt_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(micros: impl IntoIterator<Item = u64>) -> StepReport {
        let mut h = histogram().unwrap();
        for us in micros {
            h.record(us).unwrap();
        }
        StepReport {
            agents: 1,
            connected: 1,
            window_s: 1.0,
            heartbeats: h.len(),
            rtt_ms: percentiles(&h),
            lost: 0,
            connect_failures: 0,
            refused: 0,
            hello_refused: 0,
            refused_agents: 0,
            start_unix_ms: 0,
            end_unix_ms: 1000,
            rtt_us: h
                .iter_recorded()
                .map(|v| [v.value_iterated_to(), v.count_at_value()])
                .collect(),
        }
    }

    #[test]
    fn merged_percentiles_are_those_of_every_heartbeat_together() {
        // A fast swarm (900 beats at 1..=900 µs) and a slow one (100 beats
        // at 50 ms): together p50 is fast, p99 is slow, max the slowest.
        let fast = report(1..=900);
        let slow = report((0..100).map(|i| 50_000 + i));
        let rtt = merged_rtt(&[fast.clone(), slow.clone()]).unwrap();
        let together = percentiles(&{
            let mut h = histogram().unwrap();
            (1..=900)
                .chain((0..100).map(|i| 50_000 + i))
                .for_each(|us| h.record(us).unwrap());
            h
        });
        assert_eq!(
            (rtt.p50, rtt.p90, rtt.p99, rtt.max),
            (together.p50, together.p90, together.p99, together.max)
        );
        assert!((0.49..0.51).contains(&rtt.p50), "p50 {}", rtt.p50);
        assert!(rtt.p99 >= 50.0, "p99 {}", rtt.p99);
        // The histogram survives the JSON line a swarm prints.
        let line = serde_json::to_string(&slow).unwrap();
        let back: StepReport = serde_json::from_str(&line).unwrap();
        assert_eq!(back.rtt_us, slow.rtt_us);
        // A report without its histogram cannot be merged exactly.
        let bare = StepReport {
            rtt_us: Vec::new(),
            ..fast
        };
        assert!(merged_rtt(&[bare, slow]).is_none());
    }
}
