//! The invariants ARCHITECTURE.md states for the core's memory, asserted
//! where they live. Debug builds (every `cargo test`, and so every simulation
//! a test runs) check them; release builds compile them out.
//!
//! - pending updates and their index by update id agree one to one;
//! - no pending update targets a blocked version;
//! - the device index and the agent rows agree one to one (U12);
//! - at most one pending update per agent row (U4): a new pending row never
//!   replaces another one that its batch did not end;
//! - the server's pseudo-agent (U13) is no agent row: every row is a
//!   machine (`pseudo` false, an id above 0), so no update, fleet figure or
//!   row count ever includes it.
//!
//! They are cheap enough for a heartbeat: after each batch only what the
//! batch touched is checked (a few map lookups, plus the sizes of the
//! indexes); the whole state is checked where changes are rare: after
//! [`Core::open`], a promote and a rollback.

use super::Core;
use crate::protocol::{AgentId, SiteId, UpdateId};
use crate::server::store::{Change, UpdateRow, UpdateStatus};

/// The keys a batch of changes touched, to re-check once it is applied.
#[derive(Debug, Default)]
pub(super) struct Touched {
    agents: Vec<AgentId>,
    updates: Vec<(UpdateId, AgentId)>,
    sites: Vec<SiteId>,
    blocked: bool,
}

impl Touched {
    /// What `changes` touch.
    pub(super) fn of(changes: &[Change]) -> Self {
        let mut t = Self::default();
        for change in changes {
            match change {
                Change::Agent(a) => t.agents.push(a.id),
                Change::Update(u) => t.updates.push((u.id, u.agent_id)),
                Change::Site(s) => t.sites.push(s.id),
                Change::Blocked(_) => t.blocked = true,
                Change::Client(_)
                | Change::Rollout(_)
                | Change::Intent(_)
                | Change::IntentDone(_)
                | Change::SiteMove(_) => {}
            }
        }
        t
    }
}

impl Core {
    /// Checks, after a batch was applied, the invariants on what it touched;
    /// a batch that blocked a version has the whole state checked.
    pub(super) fn check_touched(&self, t: &Touched) {
        if !cfg!(debug_assertions) {
            return;
        }
        if t.blocked {
            self.check_all();
            return;
        }
        self.check_index_sizes();
        for &id in &t.agents {
            self.check_agent(id);
        }
        for &(update, agent) in &t.updates {
            if let Some(p) = self.pending.get(&agent) {
                self.check_pending(p);
            }
            if let Some(owner) = self.pending_ids.get(&update) {
                let pending = self.pending.get(owner).map(|p| p.id);
                debug_assert_eq!(
                    pending,
                    Some(update),
                    "pending index: update {update} is indexed under agent {owner}, whose pending update is {pending:?}"
                );
            }
        }
        for &id in &t.sites {
            self.check_site(id);
        }
    }

    /// Checks every invariant over the whole state.
    pub(super) fn check_all(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        self.check_index_sizes();
        for p in self.pending.values() {
            self.check_pending(p);
        }
        for &id in self.agents.keys() {
            self.check_agent(id);
        }
        for &id in self.sites.keys() {
            self.check_site(id);
        }
        debug_assert!(
            self.blocked.keys().eq(self.blocked_set.iter()),
            "blocked versions: the set {:?} and the rows {:?} disagree",
            self.blocked_set,
            self.blocked.keys().collect::<Vec<_>>()
        );
    }

    /// The indexes hold as many entries as what they index; with the
    /// per-entry checks this makes each a one-to-one map.
    fn check_index_sizes(&self) {
        debug_assert_eq!(
            self.pending.len(),
            self.pending_ids.len(),
            "pending updates and their index by update id differ in size"
        );
        debug_assert_eq!(
            self.agents.len(),
            self.devices.len(),
            "agent rows and the device index differ in size"
        );
        debug_assert_eq!(
            self.sites.len(),
            self.site_keys.len(),
            "sites and the site-key index differ in size"
        );
    }

    /// One agent row and its device index entry point at each other (U12);
    /// it is a machine, not the server's pseudo-agent (U13).
    fn check_agent(&self, id: AgentId) {
        let row = self.agents.get(&id);
        debug_assert!(row.is_some(), "agent {id} was written but has no row in memory");
        let Some(row) = row else { return };
        debug_assert!(
            !row.pseudo && id != super::SERVER_AGENT_ID,
            "agent {id} is the server's pseudo-agent, which is not an agent row"
        );
        let indexed = self.devices.get(&row.device_id);
        debug_assert_eq!(
            indexed,
            Some(&id),
            "device index: {} maps to {indexed:?}, its row is agent {id}",
            row.device_id
        );
    }

    /// A pending update is filed under its agent, indexed by its id, pending,
    /// for a row that exists, and not to a blocked version (U10).
    fn check_pending(&self, p: &UpdateRow) {
        let (id, agent) = (p.id, p.agent_id);
        debug_assert_eq!(p.status, UpdateStatus::Pending, "update {id} is in the pending map");
        debug_assert_eq!(
            self.pending.get(&agent).map(|q| q.id),
            Some(id),
            "update {id} is pending for agent {agent}, which has another pending update"
        );
        debug_assert_eq!(
            self.pending_ids.get(&id),
            Some(&agent),
            "pending index: update {id} of agent {agent} is indexed elsewhere"
        );
        debug_assert!(
            self.agents.contains_key(&agent),
            "update {id} is pending for agent {agent}, which has no row"
        );
        debug_assert!(
            !self.blocked_set.contains(&p.to_version),
            "update {id} of agent {agent} is pending to {}, a blocked version",
            p.to_version
        );
    }

    /// A site and its key's index entry point at each other.
    fn check_site(&self, id: SiteId) {
        let site = self.sites.get(&id);
        debug_assert!(site.is_some(), "site {id} was written but has no row in memory");
        let Some(site) = site else { return };
        debug_assert_eq!(
            self.site_keys.get(&site.site_key),
            Some(&id),
            "site-key index: site {id}'s key maps elsewhere"
        );
    }
}
