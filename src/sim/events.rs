//! The scenario's timeline, applied to the running server as an
//! administrator (and a release pipeline) would: publish, promote, roll
//! back, manual updates, channels, outages and restarts; and the server's
//! periodic rescans, run here on the simulation's thread.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::World;
use crate::agent::Orders;
use crate::protocol::{ClientId, SiteId, Version};
use crate::scenario::{Action, EventPlan, Plan, Target};
use crate::server::core::{ChannelTarget, Core};
use crate::server::publish::{self, Content, Publication};
use crate::server::{AppState, CoreError};

/// Creates the plan's clients and sites on the server; returns the site keys
/// by client then site.
pub fn create_sites(plan: &Plan, core: &mut Core) -> Result<Vec<Vec<String>>, CoreError> {
    let mut keys = Vec::new();
    for c in &plan.clients {
        let client = core.create_client(&c.name, c.channel)?;
        let mut site_keys = Vec::new();
        for s in &c.sites {
            site_keys.push(core.create_site(client.id, &s.name, s.channel)?.site_key);
        }
        keys.push(site_keys);
    }
    Ok(keys)
}

/// What applying an event asks of the simulator.
pub enum Applied {
    /// Nothing more.
    Done,
    /// Restart the server after this downtime.
    Restart(Duration),
}

/// Applies events and remembers when builds were published, promoted and
/// rolled back.
pub struct Timeline<'a> {
    plan: &'a Plan,
    world: &'a Arc<World>,
    downloads: &'a Path,
    controls: &'a [Orders],
    scans: Scans,
    published: BTreeMap<Version, Duration>,
    promoted: BTreeMap<Version, Duration>,
    rolled_back: BTreeMap<Version, Duration>,
}

/// The server's periodic rescan (`[server] rescan_every`), as `serve` runs
/// it: at the server's start and every `every` after. Of those scans only
/// the ones that can find something new are run, the first after each
/// publish; the others would find what the previous one found. A promote or
/// rollback rescans at once by itself (U9, U10).
struct Scans {
    /// Zero: the timeline rescans at every publish.
    every: Duration,
    /// When the server (last) started, from the scenario's start.
    origin: Duration,
    /// The next scan to run, while the server is up.
    due: Option<Duration>,
}

impl Scans {
    /// The first periodic scan strictly after `at`: a build landing at the
    /// very moment of a scan waits for the next one.
    fn after(&self, at: Duration) -> Duration {
        let every = self.every.as_nanos().max(1);
        let periods = at.saturating_sub(self.origin).as_nanos() / every + 1;
        self.origin + Duration::from_nanos(u64::try_from(periods * every).unwrap_or(u64::MAX))
    }
}

fn describe(target: Target, plan: &Plan) -> String {
    match target {
        Target::All => "the fleet".into(),
        Target::Group(g) => format!("group {}", plan.groups[g].name),
        Target::Site(c, s) => format!("site {}/{}", plan.clients[c].name, plan.clients[c].sites[s].name),
        Target::Client(c) => format!("client {}", plan.clients[c].name),
    }
}

impl<'a> Timeline<'a> {
    /// A timeline over the world's machines.
    pub fn new(plan: &'a Plan, world: &'a Arc<World>, downloads: &'a Path, controls: &'a [Orders]) -> Self {
        Self {
            plan,
            world,
            downloads,
            controls,
            scans: Scans {
                every: plan.rescan_every,
                origin: Duration::ZERO,
                due: None,
            },
            published: BTreeMap::new(),
            promoted: BTreeMap::new(),
            rolled_back: BTreeMap::new(),
        }
    }

    /// When builds were published, promoted and rolled back.
    #[allow(clippy::type_complexity)]
    pub fn into_dates(
        self,
    ) -> (
        BTreeMap<Version, Duration>,
        BTreeMap<Version, Duration>,
        BTreeMap<Version, Duration>,
    ) {
        (self.published, self.promoted, self.rolled_back)
    }

    /// When the next periodic scan that matters is due, from the start.
    pub fn next_scan(&self) -> Option<Duration> {
        self.scans.due
    }

    /// Runs the periodic scan that is due, on this thread, as the timeline's
    /// other admin actions: nothing else runs, and the clock stands still,
    /// until it is applied.
    /// While the server is down there is nothing to scan; it scans as it
    /// starts again.
    pub fn scan(&mut self, server: Option<&AppState>) -> anyhow::Result<()> {
        self.scans.due = None;
        if let Some(server) = server {
            server.core().rescan()?;
        }
        Ok(())
    }

    /// The server (re)started now: it scanned the folder as it opened, and
    /// its periodic scans count from here.
    pub fn server_started(&mut self) {
        self.scans.origin = self.world.elapsed();
        self.scans.due = None;
    }

    /// Machines an event targets, in fleet order.
    fn machines(&self, target: Target) -> Vec<usize> {
        let w = self.world.state();
        (0..w.machines.len())
            .filter(|&i| {
                let m = &w.machines[i];
                match target {
                    Target::All => true,
                    Target::Group(g) => m.group == g,
                    Target::Site(c, s) => m.site == (c, s),
                    Target::Client(c) => m.site.0 == c,
                }
            })
            .collect()
    }

    /// What an event does, for the timeline.
    fn describe(&self, action: &Action) -> String {
        match action {
            Action::Publish(v) => format!("publish {v}"),
            Action::Promote { version, scope, .. } => {
                format!(
                    "promote {version}{}",
                    scope.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()
                )
            }
            Action::Rollback(v) => format!("rollback {v}"),
            Action::Update { target, version } => {
                let to = version.map_or_else(|| "latest".to_owned(), |v| v.to_string());
                format!("manual update of {} to {to}", describe(*target, self.plan))
            }
            Action::SetChannel { target, channel } => {
                let name = channel.map_or("inherit", |c| c.as_str());
                format!("set channel of {} to {name}", describe(*target, self.plan))
            }
            Action::Disconnect {
                target,
                fraction,
                duration,
            } => format!(
                "disconnect {:.0}% of {} for {}",
                fraction * 100.0,
                describe(*target, self.plan),
                crate::clock::short(*duration)
            ),
            Action::ServerRestart { down } => format!("server restart ({} down)", crate::clock::short(*down)),
        }
    }

    /// Applies event `index` now. `server` is `None` while it is down for a
    /// restart: a publish still lands (the server scans the folder when it
    /// starts), an outage still happens, anything that needs the server is
    /// refused.
    pub fn apply(&mut self, index: usize, event: &EventPlan, server: Option<&AppState>) -> anyhow::Result<Applied> {
        let at = self.world.elapsed();
        let what = self.describe(&event.action);
        let outcome = match (&event.action, server) {
            (Action::Publish(v), server) => self.publish(*v, server, at)?,
            (
                Action::Disconnect {
                    target,
                    fraction,
                    duration,
                },
                _,
            ) => self.disconnect(index, *target, *fraction, *duration),
            (_, None) => "refused: the server is down".into(),
            (Action::ServerRestart { down }, Some(_)) => {
                // Its next start scans the folder; until then nothing does.
                self.scans.due = None;
                self.world.state().rec.note(at, what, "stopped");
                return Ok(Applied::Restart(*down));
            }
            (Action::Promote { version, scope, force }, Some(server)) => {
                match server.core().promote(*version, scope.as_ref(), *force) {
                    Ok(p) => {
                        self.promoted.insert(*version, at);
                        let how = if p.forced {
                            "forced past the gate"
                        } else {
                            "gate passed"
                        };
                        let ignored = match p.gate.ignored {
                            0 => String::new(),
                            n => format!(" ({n} outcomes ignored: repeats, or rows enrolled after the publish)"),
                        };
                        format!(
                            "{how}: {} successes, {} failures{ignored}",
                            p.gate.successes, p.gate.failures
                        )
                    }
                    Err(e) => format!("refused: {e}"),
                }
            }
            (Action::Rollback(v), Some(server)) => match server.core().rollback(*v) {
                Ok(r) => {
                    self.rolled_back.insert(*v, at);
                    let pushed = r.downgrades_pushed.len();
                    format!(
                        "blocked; {} agents ran it, {pushed} downgrades pushed",
                        r.agents_running
                    )
                }
                Err(e) => format!("refused: {e}"),
            },
            (Action::Update { target, version }, Some(server)) => self.manual_update(*target, *version, server),
            (Action::SetChannel { target, channel }, Some(server)) => {
                self.set_channel(*target, *channel, server, at)?
            }
        };
        self.world.state().rec.note(at, what, outcome);
        Ok(Applied::Done)
    }

    fn publish(&mut self, version: Version, server: Option<&AppState>, at: Duration) -> anyhow::Result<String> {
        let build = self.plan.builds.iter().find(|b| b.version == version);
        let build = build.ok_or_else(|| anyhow::anyhow!("no build {version}"))?;
        for platform in &build.platforms {
            let publication = Publication {
                version,
                platform: platform.clone(),
                content: Content::Synthetic(build.size),
                channel: build.channel,
                digest: build.digest,
                overwrite: false,
            };
            publish::publish(self.downloads, &publication)?;
        }
        self.published.insert(version, at);
        let platforms: Vec<String> = build.platforms.iter().map(ToString::to_string).collect();
        let what = format!("{} as {}", platforms.join(", "), build.channel);
        Ok(match server {
            Some(server) if self.scans.every.is_zero() => {
                server.core().rescan()?;
                what
            }
            Some(_) => {
                let due = self.scans.after(at);
                self.scans.due = Some(due);
                let wait = crate::clock::short(due - at);
                format!("{what}; visible at the next scan, in {wait}")
            }
            None => format!("{what}; the server, down, sees it when it starts"),
        })
    }

    fn manual_update(&self, target: Target, version: Option<Version>, server: &AppState) -> String {
        let machines = self.machines(target);
        let rows: Vec<_> = {
            let w = self.world.state();
            machines.into_iter().filter_map(|i| w.machines[i].row).collect()
        };
        let (mut pushed, mut queued, mut refused) = (0, 0, 0);
        for row in rows {
            match server.core().manual_update(row, version) {
                Ok(u) if u.pushed => pushed += 1,
                Ok(_) => queued += 1,
                Err(_) => refused += 1,
            }
        }
        format!("{pushed} pushed, {queued} sent on next heartbeat, {refused} refused")
    }

    fn set_channel(
        &self,
        target: Target,
        channel: Option<crate::protocol::Channel>,
        server: &AppState,
        at: Duration,
    ) -> anyhow::Result<String> {
        match target {
            Target::Group(_) | Target::All => {
                let machines = self.machines(target);
                let mut w = self.world.state();
                for i in machines {
                    match w.machines[i].row {
                        Some(row) => {
                            server.core().set_channel(ChannelTarget::Agent(row), channel)?;
                            w.machines[i].agent_channel = channel;
                            w.machines[i].row_channels.insert(row, channel);
                        }
                        None => w.machines[i].channel_on_enroll = Some(channel),
                    }
                }
                w.refresh_channels(at);
            }
            Target::Site(c, s) => {
                server
                    .core()
                    .set_channel(ChannelTarget::Site(self.site_id(c, s)), channel)?;
                let mut w = self.world.state();
                w.site_channels[c][s] = channel;
                w.refresh_channels(at);
            }
            Target::Client(c) => {
                server
                    .core()
                    .set_channel(ChannelTarget::Client(ClientId(c as u64 + 1)), channel)?;
                let mut w = self.world.state();
                w.client_channels[c] = channel;
                w.refresh_channels(at);
            }
        }
        Ok("applied".into())
    }

    /// Sites are created in plan order, so their ids follow it.
    fn site_id(&self, client: usize, site: usize) -> SiteId {
        let before: usize = self.plan.clients[..client].iter().map(|c| c.sites.len()).sum();
        SiteId((before + site) as u64 + 1)
    }

    fn disconnect(&self, index: usize, target: Target, fraction: f64, duration: Duration) -> String {
        let mut machines = self.machines(target);
        let seed = self.plan.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        machines.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let n = ((machines.len() as f64 * fraction).round() as usize).clamp(1, machines.len().max(1));
        let until = self.plan.start.plus(self.world.elapsed() + duration);
        for &i in machines.iter().take(n) {
            self.controls[i].go_offline_until(until);
        }
        format!("{n} machines offline")
    }
}
