//! The simulator's side of the world: the machines as the scenario defines
//! them, the channels it has set, and the observer that records what agents
//! report and checks the update model's promises as they happen.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::agent::{AgentEvent, Observer};
use crate::clock::{Clock, Timestamp};
use crate::metrics::Recorder;
use crate::protocol::{AgentId, Channel, UpdateId, Version};
use crate::server::core::ChannelTarget;
use crate::server::rules::resolve_channel;
use crate::server::store::UpdateReason;
use crate::server::{AppState, Core};

/// What the simulator knows of one machine beyond its track.
#[derive(Debug, Clone, Default)]
pub struct MachineModel {
    /// Its fleet entry.
    pub group: usize,
    /// (client, site) indexes.
    pub site: (usize, usize),
    /// The agent-level channel its current row has.
    pub agent_channel: Option<Channel>,
    /// The agent-level channel of each of its rows: a machine that moves
    /// between device ids (U12) finds each row as it was left.
    pub row_channels: BTreeMap<AgentId, Option<Channel>>,
    /// A channel to set on its first row when it first enrolls.
    pub channel_on_enroll: Option<Option<Channel>>,
    /// Whether it has enrolled at all.
    pub enrolled: bool,
    /// Its current row.
    pub row: Option<AgentId>,
}

/// Mutable state behind the observer.
#[derive(Debug, Default)]
pub struct WorldState {
    /// Ground truth.
    pub rec: Recorder,
    /// Per machine.
    pub machines: Vec<MachineModel>,
    /// Site-level channels, by client then site.
    pub site_channels: Vec<Vec<Option<Channel>>>,
    /// Client-level channels.
    pub client_channels: Vec<Option<Channel>>,
    /// Broken promises of the update model, as found.
    pub violations: Vec<String>,
}

impl WorldState {
    /// A machine's channel by U2, from what the simulator has set.
    pub fn channel_of(&self, i: usize) -> Channel {
        let m = &self.machines[i];
        let (c, s) = m.site;
        resolve_channel(m.agent_channel, self.site_channels[c][s], self.client_channels[c])
    }

    /// Records every machine's channel after a change, at `at`.
    pub fn refresh_channels(&mut self, at: Duration) {
        for i in 0..self.machines.len() {
            let channel = self.channel_of(i);
            self.rec.channel(at, i, channel);
        }
    }
}

/// Shared by the simulator and every agent.
pub struct World {
    clock: Clock,
    start: Timestamp,
    state: Mutex<WorldState>,
    server: Mutex<Option<AppState>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl World {
    /// A world at the scenario's start.
    pub fn new(clock: Clock, start: Timestamp, state: WorldState) -> Arc<Self> {
        Arc::new(Self {
            clock,
            start,
            state: Mutex::new(state),
            server: Mutex::new(None),
        })
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.clock.now().since(self.start)
    }

    /// The world's state.
    pub fn state(&self) -> MutexGuard<'_, WorldState> {
        lock(&self.state)
    }

    /// The running server, if it is up.
    pub fn server(&self) -> Option<AppState> {
        lock(&self.server).clone()
    }

    /// Sets (or clears, while restarting) the running server.
    pub fn set_server(&self, server: Option<AppState>) {
        *lock(&self.server) = server;
    }

    fn on_connected(&self, w: &mut WorldState, i: usize, row: AgentId, at: Duration) {
        let m = &mut w.machines[i];
        if m.row == Some(row) {
            return;
        }
        m.row = Some(row);
        // A row keeps the agent-level channel it had; a new row has none (U12).
        m.agent_channel = m.row_channels.get(&row).copied().flatten();
        if !m.enrolled {
            m.enrolled = true;
            if let Some(channel) = m.channel_on_enroll.take() {
                m.agent_channel = channel;
                m.row_channels.insert(row, channel);
                if let Some(server) = self.server() {
                    if let Err(e) = server.core().set_channel(ChannelTarget::Agent(row), channel) {
                        w.violations
                            .push(format!("setting the channel of {}: {e}", w.rec.machines[i].hostname));
                    }
                }
            }
        }
        let channel = w.channel_of(i);
        w.rec.channel(at, i, channel);
    }

    /// Checks an offer against the update model: a heartbeat never offers a
    /// stable agent a beta build, and nobody is offered a blocked version.
    fn check_offer(&self, w: &mut WorldState, i: usize, update_id: UpdateId, version: Version) {
        let Some(server) = self.server() else { return };
        let Some(row) = w.machines[i].row else { return };
        let core = server.core();
        let host = &w.rec.machines[i].hostname;
        if core.blocked().contains_key(&version) {
            w.violations
                .push(format!("{host} was offered blocked version {version}"));
        }
        let Some(p) = core.pending_of(row).filter(|p| p.id == update_id) else {
            return;
        };
        let agent = core.agent(row);
        let stable = agent.is_some_and(|a| core.channel_of(a) == Channel::Stable);
        if p.reason == UpdateReason::Heartbeat && stable && is_beta(&core, agent.map(|a| &a.platform), version) {
            w.violations
                .push(format!("stable agent {host} was offered beta build {version}"));
        }
        let model = w.channel_of(i);
        if let Some(a) = agent.filter(|a| core.channel_of(a) != model) {
            w.violations.push(format!(
                "{host}: the server resolves channel {} but the scenario set {model}",
                core.channel_of(a)
            ));
        }
    }
}

fn is_beta(core: &Core, platform: Option<&crate::protocol::Platform>, version: Version) -> bool {
    platform
        .and_then(|p| core.catalog().find(p, version))
        .is_some_and(|b| b.channel == Channel::Beta)
}

impl Observer for World {
    fn observe(&self, index: usize, event: AgentEvent) {
        let at = self.elapsed();
        let mut w = self.state();
        w.rec.record(at, index, &event);
        match event {
            AgentEvent::Connected { agent_id, .. } => self.on_connected(&mut w, index, agent_id, at),
            AgentEvent::Offered { update_id, version, .. } => self.check_offer(&mut w, index, update_id, version),
            _ => {}
        }
    }
}
