//! One simulated machine: an agent that keeps a session with the server,
//! heartbeats, downloads and checks builds, installs them (sometimes
//! failing), restarts, and is powered on and off on a pattern.
//!
//! The agent is written against `Connector`/`Link`, so the same state
//! machine runs over every transport. It reports what happens to an
//! `Observer`; it never reads the simulator's state.

mod availability;
mod bandwidth;
mod link;
mod logs;
mod orders;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::sleep_until;
use uuid::Uuid;

pub use availability::Availability;
use availability::Schedule;
pub use bandwidth::StormFigures;
pub(crate) use bandwidth::{Bandwidth, Transfer, parse_rate};
pub(crate) use link::{Connector, Link, WsConnector};
pub use link::{Dial, url_path};
pub(crate) use logs::FieldLogs;
pub use logs::{LogLevel, LogLine, LogTemplate, PLACEHOLDERS};
pub(crate) use orders::{OrderWatch, Orders, orders};

use crate::clock::{Clock, Timestamp};
use crate::protocol::{
    AgentId, AgentMessage, DeviceId, ErrorCode, Hello, Platform, ServerMessage, UpdateId, UpdateOffer, UpdateResult,
    Version,
};

/// How long things take for an agent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// Each interval is shortened by up to this fraction, at random, so
    /// agents drift apart; it is never lengthened, so an agent always
    /// heartbeats within `heartbeat`.
    pub jitter: f64,
    /// Fixed time a download takes on top of moving its bytes.
    pub download: Duration,
    /// The machine's link, bytes per second (`None`: no limit of its own);
    /// the bytes also share the server's egress (`Bandwidth`).
    pub bandwidth: Option<f64>,
    /// Time to install it.
    pub install: Duration,
    /// Time from closing the session to saying `hello` as the new version.
    pub restart: Duration,
    /// First reconnect backoff step.
    pub reconnect_min: Duration,
    /// Largest reconnect backoff.
    pub reconnect_max: Duration,
}

/// Who the machine is and how it behaves.
#[derive(Debug, Clone)]
pub(crate) struct AgentSpec {
    /// Position in the fleet; names the machine in observer events.
    pub index: usize,
    /// The machine uuid inside both device id forms.
    pub machine: Uuid,
    /// Sent in `hello`.
    pub hostname: String,
    /// Sent in `hello`.
    pub platform: Platform,
    /// The version it runs at the start.
    pub version: Version,
    /// Its site's key.
    pub site_key: String,
    /// Windows agents older than this send `win-<uuid>` (U12).
    pub identity_boundary: Version,
    /// Heartbeat, install and backoff times.
    pub timing: Timing,
    /// Power pattern.
    pub availability: Availability,
    /// Seeds every random choice the agent makes.
    pub seed: u64,
    /// Report each heartbeat's round trip ([`AgentEvent::Acked`]); the swarm
    /// measures the server with it, a simulation has no use for it.
    pub report_rtt: bool,
}

/// The simulated reality of builds: how often installing each one fails,
/// and what machines running each one log.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldBehaviour {
    /// Chance an install of each version fails (none when absent).
    pub install_faults: BTreeMap<Version, f64>,
    /// The lines machines log on each version.
    pub logs: FieldLogs,
}

/// Something that happened to an agent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AgentEvent {
    /// Powered on (`true`) or off.
    Power(bool),
    /// A session was admitted.
    Connected {
        /// The row the server registered it under.
        agent_id: AgentId,
        /// The id it said hello with.
        device_id: DeviceId,
    },
    /// The server could not be reached.
    ConnectFailed,
    /// The server refused a frame.
    Refused { code: ErrorCode },
    /// The server refused the agent's `hello` (it then closes the
    /// connection): a wrong site key, an identity conflict, the enrolment cap.
    HelloRefused {
        /// Why.
        code: ErrorCode,
        /// The server's words.
        message: String,
    },
    /// The server closed a session the agent did not mean to leave.
    ConnectionLost,
    /// An `update` arrived.
    Offered {
        /// Its id (a re-dispatch repeats it).
        update_id: UpdateId,
        version: Version,
        /// Whether the agent was already busy with an update.
        busy: bool,
    },
    /// The download failed.
    DownloadFailed { version: Version },
    /// The bytes did not match the SHA-256 the server sent.
    DigestMismatch { version: Version },
    /// Installing failed (the build's failure rate).
    InstallFailed { version: Version },
    /// A heartbeat was acknowledged this long after it was sent (only with
    /// [`AgentSpec::report_rtt`]).
    Acked { rtt: Duration },
    /// Restarted on a new version.
    Running {
        /// The version before.
        from: Version,
        /// The version now.
        to: Version,
    },
}

/// Receives every [`AgentEvent`], with the agent's index.
pub(crate) trait Observer: Send + Sync + 'static {
    /// Called synchronously by the agent; whatever it does completes before
    /// the agent's next step (the simulator sets channels on `Connected`).
    fn observe(&self, index: usize, event: AgentEvent);
}

/// How a session ended.
enum End {
    /// Powered off or told to go offline.
    Offline,
    /// The server closed it.
    Lost,
    /// No session: the server could not be reached or refused the hello.
    Unreachable,
    /// An update installed: restart on it.
    Restart(UpdateOffer),
    /// The simulator is gone.
    Stop,
}

/// How a wait between sessions ended.
enum Idle {
    /// The wait is over.
    Elapsed,
    /// An update installed meanwhile: restart on it.
    Restart(UpdateOffer),
    /// The simulator is gone.
    Stop,
}

/// What the end of a download or install step leads to.
enum Step {
    /// The next step is under way.
    Next,
    /// Installed: restart on it.
    Restart(UpdateOffer),
    /// Failed: report it.
    Fail(UpdateResult),
}

/// A session's changing state between turns of its loop.
#[derive(Default)]
struct Turn {
    /// When the last heartbeat left (only measured with `report_rtt`).
    beat_sent: Option<tokio::time::Instant>,
}

/// An update in progress. It belongs to the machine, not to a session: the
/// download goes over HTTP and the installer runs whatever happens to the
/// WebSocket, so a dropped session or a server restart does not stop it.
/// Only powering off does.
struct Job {
    offer: UpdateOffer,
    phase: Phase,
}

/// Where an update in progress stands.
enum Phase {
    /// The bytes are moving (`due` is `None`), then the fixed download time
    /// runs until `due`. Whether the bytes match the offer's size and
    /// SHA-256 is known as soon as they are fetched; the agent acts on it at
    /// the end of the step.
    Downloading {
        transfer: Transfer,
        intact: bool,
        due: Option<Timestamp>,
    },
    /// The installer runs until `due`.
    Installing { due: Timestamp },
}

impl Job {
    fn due(&self) -> Option<Timestamp> {
        match self.phase {
            Phase::Downloading { due, .. } => due,
            Phase::Installing { due } => Some(due),
        }
    }

    fn moving(&self) -> bool {
        matches!(&self.phase, Phase::Downloading { transfer, .. } if transfer.moving())
    }
}

/// Resolves when the bytes of the job's download have arrived (never when
/// none are moving: guard the branch with [`Job::moving`]).
async fn arrival(job: &mut Option<Job>) {
    match job {
        Some(Job {
            phase: Phase::Downloading { transfer, .. },
            ..
        }) if transfer.moving() => transfer.arrived().await,
        _ => std::future::pending().await,
    }
}

/// A running agent.
pub(crate) struct Agent<C> {
    spec: AgentSpec,
    version: Version,
    rng: ChaCha8Rng,
    schedule: Schedule,
    connector: C,
    field: Arc<FieldBehaviour>,
    /// Draws the log lines alone, so a scenario's logs change no other
    /// random choice of the machine.
    log_rng: ChaCha8Rng,
    bandwidth: Arc<Bandwidth>,
    observer: Arc<dyn Observer>,
    orders: OrderWatch,
    clock: Clock,
    powered: Option<bool>,
    backoff_attempts: u32,
    /// The update in progress, across sessions.
    job: Option<Job>,
    /// The outcome of an update not yet told to the server.
    report: Option<UpdateResult>,
}

impl<C: Connector> Agent<C> {
    /// An agent ready to [`run`](Self::run).
    pub fn new(
        spec: AgentSpec,
        connector: C,
        field: Arc<FieldBehaviour>,
        bandwidth: Arc<Bandwidth>,
        observer: Arc<dyn Observer>,
        orders: OrderWatch,
        clock: Clock,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let schedule = Schedule::new(spec.availability, clock.now(), &mut rng);
        let mut log_rng = ChaCha8Rng::seed_from_u64(spec.seed);
        log_rng.set_stream(1);
        Self {
            version: spec.version,
            spec,
            rng,
            schedule,
            connector,
            field,
            log_rng,
            bandwidth,
            observer,
            orders,
            clock,
            powered: None,
            backoff_attempts: 0,
            job: None,
            report: None,
        }
    }

    fn device_id(&self) -> DeviceId {
        DeviceId::for_agent(
            self.spec.machine,
            &self.spec.platform,
            self.version,
            self.spec.identity_boundary,
        )
    }

    fn observe(&self, event: AgentEvent) {
        self.observer.observe(self.spec.index, event);
    }

    /// Whether the machine is on now, and until when.
    fn power(&mut self) -> (bool, Timestamp) {
        let now = self.clock.now();
        if let Some(off) = self.orders.offline_until().filter(|&t| t > now) {
            return (false, off);
        }
        self.schedule.at(now, &mut self.rng)
    }

    fn set_power(&mut self, on: bool) {
        if !on {
            // The machine is off: whatever was downloading or installing is gone.
            self.job = None;
        }
        if self.powered != Some(on) {
            self.powered = Some(on);
            self.observe(AgentEvent::Power(on));
        }
    }

    /// Sleeps until `until`, waking early on a new order; false when the
    /// simulator is gone.
    async fn wait(&mut self, until: Timestamp) -> bool {
        let deadline = self.clock.instant_at(until);
        tokio::select! {
            biased;
            alive = self.orders.changed() => alive,
            () = sleep_until(deadline) => true,
        }
    }

    /// Waits out a reconnect backoff while an update in progress carries on.
    async fn backoff(&mut self) -> Idle {
        // Exponential backoff with full jitter.
        let min = self.spec.timing.reconnect_min.as_millis() as u64;
        let max = self.spec.timing.reconnect_max.as_millis() as u64;
        let cap = min.saturating_mul(1 << self.backoff_attempts.min(20)).min(max).max(1);
        self.backoff_attempts += 1;
        let delay = Duration::from_millis(self.rng.random_range(0..cap));
        self.idle(tokio::time::Instant::now() + delay).await
    }

    /// Sleeps until `until` with no session; an update in progress takes its
    /// steps meanwhile, and a failure is kept to be reported in the next
    /// session. Ends early when the machine goes off (the caller finds out
    /// from [`power`](Self::power)) or an update installed.
    async fn idle(&mut self, until: tokio::time::Instant) -> Idle {
        loop {
            let due = self.job.as_ref().and_then(Job::due).map(|t| self.clock.instant_at(t));
            let moving = self.job.as_ref().is_some_and(Job::moving);
            tokio::select! {
                biased;
                alive = self.orders.changed() => {
                    if !alive {
                        return Idle::Stop;
                    }
                    let now = self.clock.now();
                    if self.orders.offline_until().is_some_and(|t| t > now) {
                        return Idle::Elapsed;
                    }
                }
                () = sleep_until(due.unwrap_or(until)), if due.is_some() => match self.step() {
                    Step::Next => {}
                    Step::Restart(offer) => return Idle::Restart(offer),
                    Step::Fail(failure) => self.report = Some(failure),
                },
                () = arrival(&mut self.job), if moving => self.arrived(),
                () = sleep_until(until) => return Idle::Elapsed,
            }
        }
    }

    /// Restarts the agent on the version it just installed; the success is
    /// reported in the next session.
    async fn restart(&mut self, offer: UpdateOffer) {
        tokio::time::sleep(self.spec.timing.restart).await;
        let from = self.version;
        self.version = offer.version;
        self.observe(AgentEvent::Running {
            from,
            to: offer.version,
        });
        self.report = Some(UpdateResult {
            update_id: offer.update_id,
            success: true,
            version: offer.version,
            error: None,
        });
    }

    /// Runs until the simulator drops its control sender.
    pub async fn run(mut self) {
        // Machines come up at a random point of their heartbeat cycle.
        let phase = self
            .rng
            .random_range(0..self.spec.timing.heartbeat.as_millis().max(1) as u64);
        tokio::time::sleep(Duration::from_millis(phase)).await;
        loop {
            let (on, until) = self.power();
            self.set_power(on);
            if !on {
                if !self.wait(until).await {
                    return;
                }
                continue;
            }
            let end = match self.connect().await {
                Some(link) => self.session(link, until).await,
                None => End::Unreachable,
            };
            let idle = match end {
                End::Stop => return,
                End::Offline => continue,
                End::Restart(offer) => {
                    self.restart(offer).await;
                    continue;
                }
                End::Lost => {
                    self.observe(AgentEvent::ConnectionLost);
                    self.backoff().await
                }
                End::Unreachable => self.backoff().await,
            };
            match idle {
                Idle::Stop => return,
                Idle::Elapsed => {}
                Idle::Restart(offer) => self.restart(offer).await,
            }
        }
    }

    /// Opens a session and says hello; `None` if it was not admitted.
    async fn connect(&mut self) -> Option<C::Link> {
        let Ok(mut link) = self.connector.connect().await else {
            self.observe(AgentEvent::ConnectFailed);
            return None;
        };
        let hello = AgentMessage::Hello(Hello {
            device_id: self.device_id(),
            hostname: self.spec.hostname.clone(),
            os: self.spec.platform.os().to_owned(),
            arch: self.spec.platform.arch().to_owned(),
            version: self.version,
            site_key: self.spec.site_key.clone(),
        });
        link.send(&hello).await.ok()?;
        match link.recv().await {
            Some(ServerMessage::Welcome { agent_id }) => {
                self.backoff_attempts = 0;
                self.observe(AgentEvent::Connected {
                    agent_id,
                    device_id: self.device_id(),
                });
                Some(link)
            }
            Some(ServerMessage::Error { code, message }) => {
                self.observe(AgentEvent::HelloRefused { code, message });
                None
            }
            _ => {
                self.observe(AgentEvent::ConnectionLost);
                None
            }
        }
    }

    fn next_heartbeat(&mut self, now: Timestamp) -> Timestamp {
        let h = self.spec.timing.heartbeat.as_secs_f64();
        let shorten = self.spec.timing.jitter.clamp(0.0, 1.0) * self.rng.random::<f64>();
        now.plus(Duration::from_secs_f64(h * (1.0 - shorten)))
    }

    /// Sends an update's outcome; on failure it is kept for the next session.
    async fn send_report(&mut self, link: &mut C::Link, report: UpdateResult) -> bool {
        if link.send(&AgentMessage::UpdateResult(report.clone())).await.is_err() {
            self.report = Some(report);
            return false;
        }
        true
    }

    /// One admitted session, until it ends.
    async fn session(&mut self, mut link: C::Link, power_off: Timestamp) -> End {
        // An outcome from before this session (a restart on the new version,
        // or a failure while the server was out of reach) goes first; the
        // report of an update that crossed the identity boundary is the only
        // thing that ends it on the old row (U12).
        if let Some(report) = self.report.take() {
            if !self.send_report(&mut link, report).await {
                return End::Lost;
            }
        }
        // Timers live for the whole session and are reset, not rebuilt: a
        // heartbeat costs one timer update, which matters at a million a second.
        let off = sleep_until(self.clock.instant_at(power_off));
        let beat = sleep_until(self.clock.instant_at(self.clock.now()));
        let first_due = self.job.as_ref().and_then(Job::due).unwrap_or(power_off);
        let step_due = sleep_until(self.clock.instant_at(first_due));
        // A machine logs only while it has a session, on the version it runs
        // (which a session never changes): see `logs`.
        let logging = self.field.logs.logs_on(self.version);
        let first_log = self.next_log().unwrap_or(power_off);
        let log_due = sleep_until(self.clock.instant_at(first_log));
        tokio::pin!(off, beat, step_due, log_due);
        let mut turn = Turn::default();
        loop {
            let due = self.job.as_ref().is_some_and(|j| j.due().is_some());
            let moving = self.job.as_ref().is_some_and(Job::moving);
            tokio::select! {
                biased;
                alive = std::future::poll_fn(|cx| self.orders.poll_changed(cx)) => {
                    if !alive {
                        return End::Stop;
                    }
                    let now = self.clock.now();
                    if self.orders.offline_until().is_some_and(|t| t > now) {
                        link.close().await;
                        return End::Offline;
                    }
                }
                () = &mut off => {
                    link.close().await;
                    return End::Offline;
                }
                () = &mut step_due, if due => match self.on_step(&mut link, step_due.as_mut()).await {
                    None => {}
                    Some(end @ End::Restart(_)) => {
                        link.close().await;
                        return end;
                    }
                    Some(end) => return end,
                },
                () = arrival(&mut self.job), if moving => {
                    self.arrived();
                    self.reset_step(step_due.as_mut());
                }
                () = &mut beat => {
                    if let Some(end) = self.on_beat(&mut link, &mut turn, beat.as_mut(), step_due.as_mut()).await {
                        return end;
                    }
                }
                () = &mut log_due, if logging => {
                    if let Some(end) = self.on_log(&mut link, log_due.as_mut()).await {
                        return end;
                    }
                }
                msg = link.recv() => {
                    let Some(msg) = msg else { return End::Lost };
                    if let Some(end) = self.on_frame(&mut link, &mut turn, step_due.as_mut(), msg).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Ends the job's step that is due, in a session; `Some` ends the
    /// session (a restart: the caller closes the link).
    async fn on_step(&mut self, link: &mut C::Link, step_due: Pin<&mut tokio::time::Sleep>) -> Option<End> {
        match self.step() {
            Step::Next => {}
            Step::Restart(offer) => return Some(End::Restart(offer)),
            Step::Fail(failure) => {
                if !self.send_report(link, failure).await {
                    return Some(End::Lost);
                }
            }
        }
        self.reset_step(step_due);
        None
    }

    /// When the machine logs its next line, if it logs at all.
    fn next_log(&mut self) -> Option<Timestamp> {
        let gap = self.field.logs.next_after(self.version, &mut self.log_rng)?;
        Some(self.clock.now().plus(gap))
    }

    /// Sends the log line that is due and sets the next; `Some` ends the session.
    async fn on_log(&mut self, link: &mut C::Link, log_due: Pin<&mut tokio::time::Sleep>) -> Option<End> {
        if let Some(line) = self.field.logs.line(self.version, &mut self.log_rng) {
            if link.send(&line).await.is_err() {
                return Some(End::Lost);
            }
        }
        if let Some(next) = self.next_log() {
            log_due.reset(self.clock.instant_at(next));
        }
        None
    }

    /// Sends a heartbeat and sets the next; `Some` ends the session.
    async fn on_beat(
        &mut self,
        link: &mut C::Link,
        turn: &mut Turn,
        beat: Pin<&mut tokio::time::Sleep>,
        mut step_due: Pin<&mut tokio::time::Sleep>,
    ) -> Option<End> {
        let heartbeat = AgentMessage::Heartbeat { version: self.version };
        turn.beat_sent = self.spec.report_rtt.then(tokio::time::Instant::now);
        if link.send(&heartbeat).await.is_err() {
            return Some(End::Lost);
        }
        let next = self.next_heartbeat(self.clock.now());
        beat.reset(self.clock.instant_at(next));
        // Replies already at hand are handled now, not on another turn of the loop.
        while let Some(msg) = link.try_recv() {
            if let Some(end) = self.on_frame(link, turn, step_due.as_mut(), msg).await {
                return Some(end);
            }
        }
        None
    }

    /// Points the step timer at the job's next step, if it has one due.
    fn reset_step(&self, step_due: Pin<&mut tokio::time::Sleep>) {
        if let Some(due) = self.job.as_ref().and_then(Job::due) {
            step_due.reset(self.clock.instant_at(due));
        }
    }

    /// Handles a frame from the server; `Some` ends the session.
    async fn on_frame(
        &mut self,
        link: &mut C::Link,
        turn: &mut Turn,
        step_due: Pin<&mut tokio::time::Sleep>,
        msg: ServerMessage,
    ) -> Option<End> {
        match msg {
            ServerMessage::Update(offer) => {
                let busy = self.job.is_some();
                self.observe(AgentEvent::Offered {
                    update_id: offer.update_id,
                    version: offer.version,
                    busy,
                });
                if busy || offer.version == self.version {
                    return None;
                }
                match self.connector.download(&offer.url).await {
                    Ok(bytes) => {
                        let intact = bytes.len() as u64 == offer.size && self.connector.sha256(&bytes) == offer.sha256;
                        let transfer = self.bandwidth.start(bytes.len() as u64, self.spec.timing.bandwidth);
                        let arrived = !transfer.moving();
                        self.job = Some(Job {
                            offer,
                            phase: Phase::Downloading {
                                transfer,
                                intact,
                                due: None,
                            },
                        });
                        if arrived {
                            self.arrived();
                        }
                        self.reset_step(step_due);
                    }
                    Err(e) => {
                        self.observe(AgentEvent::DownloadFailed { version: offer.version });
                        let failure = self.failure(&offer, format!("download failed: {e}"));
                        if !self.send_report(link, failure).await {
                            return Some(End::Lost);
                        }
                    }
                }
            }
            ServerMessage::Error { code, .. } => self.observe(AgentEvent::Refused { code }),
            ServerMessage::Ack {} => {
                if let Some(sent) = turn.beat_sent.take() {
                    self.observe(AgentEvent::Acked { rtt: sent.elapsed() });
                }
            }
            ServerMessage::Welcome { .. } => {}
        }
        None
    }

    fn failure(&self, offer: &UpdateOffer, error: String) -> UpdateResult {
        UpdateResult {
            update_id: offer.update_id,
            success: false,
            version: self.version,
            error: Some(error),
        }
    }

    /// The download's bytes have all arrived: the fixed download time runs.
    fn arrived(&mut self) {
        let done = self.clock.now().plus(self.spec.timing.download);
        if let Some(Job {
            phase: Phase::Downloading { due, .. },
            ..
        }) = self.job.as_mut()
        {
            *due = Some(done);
        }
    }

    /// The end of the job's step that is due: a download (check the digest)
    /// or an install (maybe fail).
    fn step(&mut self) -> Step {
        let Some(job) = self.job.take() else { return Step::Next };
        let offer = job.offer;
        match job.phase {
            Phase::Downloading { transfer, intact, .. } => {
                // The download is over: it no longer counts as in progress.
                drop(transfer);
                if !intact {
                    self.observe(AgentEvent::DigestMismatch { version: offer.version });
                    return Step::Fail(self.failure(&offer, "sha256 mismatch: download refused".into()));
                }
                let due = self.clock.now().plus(self.spec.timing.install);
                self.job = Some(Job {
                    offer,
                    phase: Phase::Installing { due },
                });
                Step::Next
            }
            Phase::Installing { .. } => {
                let rate = self.field.install_faults.get(&offer.version).copied().unwrap_or(0.0);
                if rate > 0.0 && self.rng.random_bool(rate.clamp(0.0, 1.0)) {
                    self.observe(AgentEvent::InstallFailed { version: offer.version });
                    return Step::Fail(self.failure(&offer, "installer exited with an error".into()));
                }
                Step::Restart(offer)
            }
        }
    }
}
