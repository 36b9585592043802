//! Runs a [`Plan`]: the real server (the same axum app as `serve`, a SQLite
//! file, a real downloads folder in a temp dir) and every agent in one
//! process, on a single-threaded tokio runtime with the paused clock, so days
//! pass in seconds. One seed decides everything random.

mod events;
mod progress;
mod transport;
mod world;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use progress::{Progress, ProgressSink};
/// The in-memory hub: integration tests serve the real server on it.
pub use transport::MemHub;
pub use transport::TransportKind;
pub(crate) use transport::ensure_open_files;
use transport::{DirectHub, TcpHub};
use world::{MachineModel, World, WorldState};

use crate::agent::{
    Agent, AgentSpec, Bandwidth, Connector, FieldBehaviour, FieldLogs, OrderWatch, Orders, WsConnector,
};
use crate::clock::Clock;
use crate::metrics::{LogsSeen, Outcome, WallTimer};
use crate::protocol::Version;
use crate::scenario::Plan;
use crate::server::SignatureFilter;
use crate::server::core::{Counters, server_version};
use crate::server::store::{SqliteStore, Store};
use crate::server::{self, AppState, Core, CoreConfig, DownloadServing, RunOptions};

/// How to run.
#[derive(Clone, Default)]
pub struct SimOptions {
    /// How agents reach the server.
    pub transport: TransportKind,
    /// Hears how far the run has come (`None`: nobody is told).
    pub progress: Option<ProgressSink>,
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("transport", &self.transport)
            .field("progress", &self.progress.as_ref().map(|_| "a sink"))
            .finish()
    }
}

/// Runs a plan and builds its report (expectations judged).
pub fn execute(plan: &Plan, options: &SimOptions) -> anyhow::Result<crate::metrics::Report> {
    let outcome = run(plan, options)?;
    Ok(crate::metrics::build_report(plan, &outcome))
}

/// Runs a plan to the end on a fresh paused-clock runtime.
pub fn run(plan: &Plan, options: &SimOptions) -> anyhow::Result<Outcome> {
    // Only loopback TCP needs the I/O driver; without it an idle runtime
    // parks straight on the (paused) timer instead of polling epoll.
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().start_paused(true);
    if options.transport == TransportKind::WsTcp {
        builder.enable_io();
    }
    let runtime = builder.build().context("starting the simulation runtime")?;
    let timer = WallTimer::start();
    let mut outcome = runtime.block_on(simulate(plan, options))?;
    // Dropping the runtime ends every task still running (the agents).
    drop(runtime);
    outcome.wall = timer.elapsed();
    Ok(outcome)
}

/// How agents reach the server, surviving restarts.
#[derive(Clone)]
enum Hub {
    Mem(MemHub),
    Tcp(TcpHub),
    Direct(DirectHub),
}

impl Hub {
    fn down(&self) {
        match self {
            Self::Mem(h) => h.down(),
            Self::Tcp(h) => h.down(),
            Self::Direct(h) => h.down(),
        }
    }
}

/// A running server and how to stop it.
struct Running {
    state: AppState,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// What the simulator needs to (re)start the server.
struct ServerSetup {
    /// `last_seen` stamps are written this often (the report's sample period).
    flush_every: Duration,
    db: PathBuf,
    clock: Clock,
    config: CoreConfig,
    hub: Hub,
}

impl ServerSetup {
    fn start(&self) -> anyhow::Result<Running> {
        let store = SqliteStore::open(&self.db).context("opening the simulation database")?;
        let core = Core::open(Box::new(store), self.clock, self.config.clone()).context("starting the server")?;
        // Builds from memory, read on this thread: nothing waits on the blocking pool.
        let state = AppState::with_downloads(core, "simulation", DownloadServing::Memory);
        let (stop, stopped) = oneshot::channel::<()>();
        // No idle timeout: simulated agents heartbeat as their scenario says
        // (hours apart in some), and an agent that goes offline closes its
        // link itself. The header and hello timeouts stay at their defaults:
        // simulated agents send both at once, in virtual time.
        let options = RunOptions {
            rescan_every: None,
            flush_every: Some(self.flush_every),
            idle_timeout: None,
            ..RunOptions::default()
        };
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = match &self.hub {
            Hub::Mem(h) => tokio::spawn(server::run(h.listen(), state.clone(), options, shutdown)),
            Hub::Tcp(h) => {
                let listener = h.listen().context("binding the loopback listener")?;
                tokio::spawn(server::run(listener, state.clone(), options, shutdown))
            }
            Hub::Direct(h) => {
                h.serve(state.clone());
                let state = state.clone();
                tokio::spawn(async move {
                    server::run_in_process(state, options, shutdown).await;
                    Ok(())
                })
            }
        };
        Ok(Running { state, stop, task })
    }

    async fn stop(&self, running: Running) -> anyhow::Result<Counters> {
        self.hub.down();
        let _ = running.stop.send(());
        running.task.await.context("server task")?.context("server")?;
        // Read after the sessions closed: what they handled on the way out counts.
        Ok(running.state.core().counters())
    }
}

async fn simulate(plan: &Plan, options: &SimOptions) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir().context("creating the simulation folder")?;
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads)?;
    let clock = Clock::virtual_from(plan.start);
    let origin = clock.instant_at(plan.start);
    let config = CoreConfig {
        downloads: downloads.clone(),
        public_url: String::new(),
        gate: plan.gate,
        seed: plan.seed,
        max_enrolments_per_minute: plan.max_enrolments_per_minute,
    };
    let setup = ServerSetup {
        flush_every: plan.sample_every,
        db: dir.path().join("server.sqlite3"),
        clock,
        config,
        hub: hub_for(plan, options)?,
    };
    let running = setup.start()?;
    let keys = events::create_sites(plan, &mut running.state.core())?;
    let (world, specs) = build_world(plan, clock, &keys);
    world.set_server(Some(running.state.clone()));
    let bandwidth = Bandwidth::new(clock, plan.egress, plan.start, plan.sample_every);
    let network = tokio::spawn(bandwidth.clone().drive());
    let fleet = Fleet {
        hub: &setup.hub,
        world: &world,
        bandwidth: &bandwidth,
        clock,
    };
    let (controls, agents) = spawn_fleet(plan, specs, &fleet);
    let progress = options
        .progress
        .clone()
        .map(|sink| progress::tick(sink, plan.duration, origin));

    let mut timeline = events::Timeline::new(plan, &world, &downloads, &controls);
    let (running, counters) = drive(plan, &setup, &world, &mut timeline, running).await?;
    tokio::time::sleep_until(origin + plan.duration).await;
    if let Some(p) = progress {
        p.abort();
    }
    // Freeze the fleet, then read the server's own view (starting it if the
    // run ends while it is down, so its store can be read).
    for agent in &agents {
        agent.abort();
    }
    network.abort();
    let storm = bandwidth.figures(plan.start.plus(plan.duration));
    let running = match running {
        Some(r) => r,
        None => setup.start()?,
    };
    let mut outcome = finish(&setup, running, &world, plan).await?;
    outcome.storm = storm;
    outcome.counters += counters;
    (outcome.published, outcome.promoted, outcome.rolled_back) = timeline.into_dates();
    outcome.transport = options.transport.to_string();
    drop(controls);
    Ok(outcome)
}

/// Runs the timeline: the plan's events, the periodic scans the server
/// owes, and, while the server is down, the moment it comes back; whichever
/// is first. On a tie the server comes back first, then the scan runs, then
/// the event: a build published at the moment of a scan waits for the next.
/// Returns the server (if it is up) and the counters of the runs it ended.
async fn drive(
    plan: &Plan,
    setup: &ServerSetup,
    world: &World,
    timeline: &mut events::Timeline<'_>,
    running: Running,
) -> anyhow::Result<(Option<Running>, Counters)> {
    let origin = setup.clock.instant_at(plan.start);
    let end = origin + plan.duration;
    let mut counters = Counters::default();
    let mut running = Some(running);
    let mut next = 0;
    let mut back_at: Option<tokio::time::Instant> = None;
    loop {
        let event_at = plan.events.get(next).map(|e| origin + e.at);
        let scan_at = timeline.next_scan().map(|d| origin + d).filter(|&s| s <= end);
        let before_event = |t: tokio::time::Instant| event_at.is_none_or(|e| t <= e);
        match (event_at, back_at, scan_at) {
            (_, Some(back), _) if before_event(back) => {
                tokio::time::sleep_until(back).await;
                back_at = None;
                let restarted = setup.start()?;
                world.set_server(Some(restarted.state.clone()));
                running = Some(restarted);
                timeline.server_started();
                let back = format!("stopped; serving again at {}", crate::clock::short(world.elapsed()));
                let mut w = world.state();
                if let Some(entry) = w
                    .rec
                    .timeline
                    .iter_mut()
                    .rev()
                    .find(|e| e.action.starts_with("server restart"))
                {
                    entry.outcome = back;
                }
            }
            (_, _, Some(scan)) if before_event(scan) => {
                tokio::time::sleep_until(scan).await;
                timeline.scan(running.as_ref().map(|r| &r.state))?;
            }
            (Some(at), _, _) => {
                tokio::time::sleep_until(at).await;
                let server = running.as_ref().map(|r| r.state.clone());
                if let events::Applied::Restart(down) = timeline.apply(next, &plan.events[next], server.as_ref())? {
                    world.set_server(None);
                    if let Some(r) = running.take() {
                        counters += setup.stop(r).await?;
                    }
                    back_at = Some(tokio::time::Instant::now() + down);
                }
                next += 1;
            }
            (None, _, _) => break,
        }
    }
    Ok((running, counters))
}

/// The transport's hub; for TCP, with enough open files for every agent.
fn hub_for(plan: &Plan, options: &SimOptions) -> anyhow::Result<Hub> {
    Ok(match options.transport {
        TransportKind::WsMem => Hub::Mem(MemHub::default()),
        TransportKind::Direct => Hub::Direct(DirectHub::default()),
        TransportKind::WsTcp => {
            // Two descriptors per agent (both ends of its socket) and a few per download.
            ensure_open_files(plan.fleet_size() as u64 * 2 + 256)?;
            Hub::Tcp(TcpHub::start())
        }
    })
}

/// What every agent of the fleet shares.
struct Fleet<'a> {
    hub: &'a Hub,
    world: &'a Arc<World>,
    bandwidth: &'a Arc<Bandwidth>,
    clock: Clock,
}

/// Starts every agent; returns their control senders and tasks.
fn spawn_fleet(plan: &Plan, specs: Vec<AgentSpec>, fleet: &Fleet<'_>) -> (Vec<Orders>, Vec<JoinHandle<()>>) {
    let field = Arc::new(FieldBehaviour {
        install_faults: plan.builds.iter().map(|b| (b.version, b.failure_rate)).collect(),
        logs: FieldLogs::new(&plan.logs, plan.builds.iter().map(|b| (b.version, &b.logs[..]))),
    });
    let mut controls = Vec::with_capacity(specs.len());
    let mut agents = Vec::with_capacity(specs.len());
    for spec in specs {
        let (tx, rx) = crate::agent::orders();
        controls.push(tx);
        agents.push(match fleet.hub {
            Hub::Mem(h) => spawn_agent(spec, WsConnector::new(h.clone(), "sim"), &field, fleet, rx),
            Hub::Tcp(h) => spawn_agent(spec, WsConnector::new(h.clone(), "127.0.0.1"), &field, fleet, rx),
            Hub::Direct(h) => spawn_agent(spec, h.clone(), &field, fleet, rx),
        });
    }
    (controls, agents)
}

/// Stops the server and gathers the outcome: the recorder, and the server's
/// own view read back from its store.
async fn finish(setup: &ServerSetup, running: Running, world: &World, plan: &Plan) -> anyhow::Result<Outcome> {
    running.state.core().flush()?;
    let versions = plan
        .builds
        .iter()
        .map(|b| b.version)
        .chain(plan.groups.iter().map(|g| g.version));
    let mut logs = logs_seen(&mut running.state.core(), versions)?;
    logs.start_versions = plan.groups.iter().map(|g| g.version).collect();
    let store_rows = SqliteStore::open(&setup.db)?.load()?.agents;
    let (catalog, blocked, rollouts) = {
        let core = running.state.core();
        (
            core.catalog().clone(),
            core.blocked().keys().copied().collect(),
            core.rollouts().cloned().collect(),
        )
    };
    world.set_server(None);
    let counters = setup.stop(running).await?;
    let state = std::mem::take(&mut *world.state());
    Ok(Outcome {
        recorder: state.rec,
        violations: state.violations,
        store_rows,
        counters,
        catalog,
        blocked,
        rollouts,
        published: Default::default(),
        promoted: Default::default(),
        rolled_back: Default::default(),
        wall: Duration::ZERO,
        transport: String::new(),
        storm: Default::default(),
        logs,
    })
}

/// The server's log signatures, each with its rows per version, and the
/// machine-hours it saw on each version the plan names or a signature was
/// logged on (U13); which version is the server's own.
fn logs_seen(core: &mut Core, versions: impl Iterator<Item = Version>) -> anyhow::Result<LogsSeen> {
    let mut seen = LogsSeen::default();
    for signature in core.log_signatures(&SignatureFilter::default())? {
        let rows = core.signature_versions(signature.id)?;
        seen.signatures.push((signature, rows));
    }
    let planned: BTreeSet<Version> = versions.collect();
    // The server's own events are logged under its own version, which
    // is the server's alone unless a machine of the plan runs it too.
    seen.server_version = Some(server_version()).filter(|v| !planned.contains(v));
    let logged = seen
        .signatures
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|r| r.version));
    let versions: BTreeSet<Version> = planned.iter().copied().chain(logged).collect();
    seen.machine_hours = versions.into_iter().map(|v| (v, core.machine_hours_on(v))).collect();
    Ok(seen)
}

fn spawn_agent<C: Connector>(
    spec: AgentSpec,
    connector: C,
    field: &Arc<FieldBehaviour>,
    fleet: &Fleet<'_>,
    control: OrderWatch,
) -> JoinHandle<()> {
    let observer: Arc<dyn crate::agent::Observer> = fleet.world.clone();
    let agent = Agent::new(
        spec,
        connector,
        field.clone(),
        fleet.bandwidth.clone(),
        observer,
        control,
        fleet.clock,
    );
    tokio::spawn(agent.run())
}

/// The machines of the plan: the simulator's model and the agents' specs.
fn build_world(plan: &Plan, clock: Clock, keys: &[Vec<String>]) -> (Arc<World>, Vec<AgentSpec>) {
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let mut state = WorldState {
        site_channels: plan
            .clients
            .iter()
            .map(|c| c.sites.iter().map(|s| s.channel).collect())
            .collect(),
        client_channels: plan.clients.iter().map(|c| c.channel).collect(),
        ..WorldState::default()
    };
    let mut specs = Vec::with_capacity(plan.fleet_size());
    for (g, group) in plan.groups.iter().enumerate() {
        for k in 0..group.count {
            let mut bytes = [0u8; 16];
            rng.fill_bytes(&mut bytes);
            let machine = uuid::Builder::from_random_bytes(bytes).into_uuid();
            let hostname = format!("{}-{:04}", group.name, k + 1);
            state.machines.push(MachineModel {
                group: g,
                site: (group.client, group.site),
                channel_on_enroll: group.channel.map(Some),
                ..MachineModel::default()
            });
            let index = state.machines.len() - 1;
            let channel = state.channel_of(index);
            let channel = group.channel.unwrap_or(channel);
            state.rec.add_machine(
                g,
                machine,
                hostname.clone(),
                group.platform.clone(),
                group.version,
                channel,
            );
            specs.push(AgentSpec {
                index,
                machine,
                hostname,
                platform: group.platform.clone(),
                version: group.version,
                site_key: keys[group.client][group.site].clone(),
                identity_boundary: group.identity_boundary,
                timing: group.timing,
                availability: group.availability,
                seed: rng.next_u64(),
                report_rtt: false,
            });
        }
    }
    (World::new(clock, plan.start, state), specs)
}

/// The folder a scenario's reports go to.
pub(crate) fn report_dir(out: &Path, plan: &Plan) -> PathBuf {
    out.join(&plan.name)
}
