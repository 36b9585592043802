//! Stores for unit tests: [`MemStore`] keeps the tables in memory, and
//! [`FailingStore`] wraps one and refuses commits on demand, so a test can
//! show what the core does when the database says no.
//!
//! Both are compiled for the crate's own tests only (`#[cfg(test)]`): the
//! server, the simulator and the integration tests all run on SQLite (in
//! memory for simulations), which is the store that ships; these doubles exist
//! so `Core` and `Session` can be tested alone, without SQL in the way, and
//! they stay out of the library's public surface.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    AgentRow, BlockedRow, Change, ClientRow, Flush, IntentRow, RolloutRow, SignatureId, SignatureMachine, SignatureRow,
    SignatureVersionRow, SiteMoveRow, SiteRow, Snapshot, Store, StoreError, UpdateRow, UpdateStatus,
};
use crate::clock::Timestamp;
use crate::protocol::{AgentId, ClientId, Platform, SiteId, UpdateId, Version};

/// The tables, keyed as the SQL schema keys them.
#[derive(Debug, Clone, Default)]
struct Tables {
    clients: BTreeMap<ClientId, ClientRow>,
    sites: BTreeMap<SiteId, SiteRow>,
    agents: BTreeMap<AgentId, AgentRow>,
    updates: BTreeMap<UpdateId, UpdateRow>,
    rollouts: BTreeMap<(Version, Platform), RolloutRow>,
    blocked: BTreeMap<Version, BlockedRow>,
    intents: BTreeMap<Version, IntentRow>,
    site_moves: Vec<SiteMoveRow>,
    signatures: BTreeMap<SignatureId, SignatureRow>,
    signature_versions: BTreeMap<(SignatureId, Version), SignatureVersionRow>,
    signature_machines: std::collections::BTreeSet<SignatureMachine>,
    version_ms: BTreeMap<Version, u64>,
}

impl Tables {
    /// One upsert, with the SQLite store's conflict rules: the columns its
    /// `ON CONFLICT … DO UPDATE` leaves alone keep their first value.
    fn write(&mut self, change: &Change) {
        match change {
            Change::Client(c) => {
                let created_at = self.clients.get(&c.id).map_or(c.created_at, |old| old.created_at);
                self.clients.insert(
                    c.id,
                    ClientRow {
                        created_at,
                        ..c.clone()
                    },
                );
            }
            Change::Site(s) => {
                let kept = self.sites.get(&s.id).map(|old| (old.client_id, old.created_at));
                let (client_id, created_at) = kept.unwrap_or((s.client_id, s.created_at));
                let row = SiteRow {
                    client_id,
                    created_at,
                    ..s.clone()
                };
                self.sites.insert(s.id, row);
            }
            Change::Agent(a) => {
                let kept = self.agents.get(&a.id).map(|old| (old.device_id, old.enrolled_at));
                let (device_id, enrolled_at) = kept.unwrap_or((a.device_id, a.enrolled_at));
                let row = AgentRow {
                    device_id,
                    enrolled_at,
                    ..a.clone()
                };
                self.agents.insert(a.id, row);
            }
            Change::Update(u) => {
                let row = match self.updates.get(&u.id) {
                    Some(old) => UpdateRow {
                        status: u.status,
                        dispatches: u.dispatches,
                        finished_at: u.finished_at,
                        error: u.error.clone(),
                        late_outcome: u.late_outcome,
                        ..old.clone()
                    },
                    None => u.clone(),
                };
                self.updates.insert(u.id, row);
            }
            Change::Rollout(r) => {
                let key = (r.version, r.platform.clone());
                let published_at = self.rollouts.get(&key).map_or(r.published_at, |old| old.published_at);
                self.rollouts.insert(
                    key,
                    RolloutRow {
                        published_at,
                        ..r.clone()
                    },
                );
            }
            Change::Blocked(b) => {
                self.blocked.entry(b.version).or_insert_with(|| b.clone());
            }
            Change::Intent(i) => {
                self.intents.insert(i.version, i.clone());
            }
            Change::IntentDone(version) => {
                self.intents.remove(version);
            }
            Change::SiteMove(m) => self.site_moves.push(m.clone()),
        }
    }
}

impl Tables {
    /// [`Store::flush`], with the SQLite store's conflict rules: a
    /// signature keeps its text, level, sample, first sighting and first
    /// version; a signature × version row keeps its first sighting.
    fn flush(&mut self, b: &Flush) {
        for &(id, at) in &b.stamps {
            if let Some(a) = self.agents.get_mut(&id) {
                a.last_seen = at;
            }
        }
        for r in &b.signatures {
            let row = self.signatures.entry(r.id).or_insert_with(|| r.clone());
            row.last_seen = r.last_seen;
            row.count = r.count;
        }
        for r in &b.signature_versions {
            let row = self
                .signature_versions
                .entry((r.signature, r.version))
                .or_insert_with(|| r.clone());
            row.count = r.count;
            row.machines = r.machines;
        }
        self.signature_machines.extend(b.signature_machines.iter().copied());
        for t in &b.version_time {
            self.version_ms.insert(t.version, t.machine_ms);
        }
    }
}

/// A [`Store`] in memory. Clones share the tables, so a test can keep one
/// and hand another to a `Core`, then open a second `Core` on the same
/// tables (a restart) or look at what was committed.
#[derive(Debug, Clone, Default)]
pub struct MemStore(Arc<Mutex<Tables>>);

impl MemStore {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every update row ever committed, by id.
    pub fn updates(&self) -> Vec<UpdateRow> {
        self.tables().updates.values().cloned().collect()
    }
}

impl Store for MemStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let t = self.tables();
        Ok(Snapshot {
            clients: t.clients.values().cloned().collect(),
            sites: t.sites.values().cloned().collect(),
            agents: t.agents.values().cloned().collect(),
            pending: t
                .updates
                .values()
                .filter(|u| u.status == UpdateStatus::Pending)
                .cloned()
                .collect(),
            rollouts: t.rollouts.values().cloned().collect(),
            blocked: t.blocked.values().cloned().collect(),
            intents: t.intents.values().cloned().collect(),
            max_update_id: t.updates.keys().next_back().map_or(0, |id| id.0),
            signatures: t.signatures.values().cloned().collect(),
            signature_versions: t.signature_versions.values().cloned().collect(),
            signature_machines: t.signature_machines.iter().copied().collect(),
            version_time: t
                .version_ms
                .iter()
                .map(|(&version, &machine_ms)| super::VersionTime { version, machine_ms })
                .collect(),
        })
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let mut t = self.tables();
        for change in changes {
            t.write(change);
        }
        Ok(())
    }

    fn flush(&mut self, batch: &Flush) -> Result<(), StoreError> {
        self.tables().flush(batch);
        Ok(())
    }

    fn update(&mut self, id: UpdateId) -> Result<Option<UpdateRow>, StoreError> {
        Ok(self.tables().updates.get(&id).cloned())
    }

    fn updates_of(&mut self, agent: AgentId) -> Result<Vec<UpdateRow>, StoreError> {
        let t = self.tables();
        Ok(t.updates.values().filter(|u| u.agent_id == agent).cloned().collect())
    }

    fn outcomes_to(&mut self, version: Version) -> Result<Vec<UpdateRow>, StoreError> {
        let t = self.tables();
        let ended = |u: &&UpdateRow| {
            matches!(u.status, UpdateStatus::Succeeded | UpdateStatus::Failed) || u.late_outcome.is_some()
        };
        Ok(t.updates
            .values()
            .filter(|u| u.to_version == version)
            .filter(ended)
            .cloned()
            .collect())
    }

    fn site_moves_of(&mut self, agent: AgentId) -> Result<Vec<SiteMoveRow>, StoreError> {
        let t = self.tables();
        Ok(t.site_moves.iter().filter(|m| m.agent_id == agent).cloned().collect())
    }
}

/// When a [`FailingStore`] refuses writes.
#[derive(Debug, Default)]
struct Faults {
    /// Non-empty commits seen so far, refused or not.
    commits: usize,
    /// Refuse the commit with this 1-based number.
    nth: Option<usize>,
    /// Refuse every write (commit or `flush`) while set.
    failing: bool,
}

/// The test's handle on a [`FailingStore`]: switches failures on and off
/// while the store itself belongs to a `Core`.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch(Arc<Mutex<Faults>>);

impl FaultSwitch {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses every write from now on, until [`heal`](Self::heal).
    pub fn fail_from_now(&self) {
        self.faults().failing = true;
    }

    /// Stops refusing writes.
    pub fn heal(&self) {
        let mut f = self.faults();
        f.failing = false;
        f.nth = None;
    }

    /// Refuses the `n`th non-empty commit counted from the store's start (1-based).
    pub fn fail_commit(&self, n: usize) {
        self.faults().nth = Some(n);
    }

    /// Non-empty commits so far, refused ones included.
    pub fn commits(&self) -> usize {
        self.faults().commits
    }
}

/// A [`MemStore`] that refuses writes when its [`FaultSwitch`] says so. A
/// refused write changes no table, as a rolled-back transaction would.
#[derive(Debug)]
pub struct FailingStore {
    inner: MemStore,
    switch: FaultSwitch,
}

impl FailingStore {
    /// Wraps `inner`; the switch starts with no fault.
    pub fn new(inner: MemStore) -> (Self, FaultSwitch) {
        let switch = FaultSwitch::default();
        (
            Self {
                inner,
                switch: switch.clone(),
            },
            switch,
        )
    }

    /// The error a refused write returns: what SQLite says when the disk fails.
    fn refused() -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            Some("write refused by FailingStore".into()),
        ))
    }
}

impl Store for FailingStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        self.inner.load()
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        // An empty batch opens no transaction in the SQLite store either.
        if changes.is_empty() {
            return Ok(());
        }
        let refuse = {
            let mut f = self.switch.faults();
            f.commits += 1;
            f.failing || f.nth == Some(f.commits)
        };
        if refuse {
            return Err(Self::refused());
        }
        self.inner.commit(changes)
    }

    fn flush(&mut self, batch: &Flush) -> Result<(), StoreError> {
        if !batch.is_empty() && self.switch.faults().failing {
            return Err(Self::refused());
        }
        self.inner.flush(batch)
    }

    fn update(&mut self, id: UpdateId) -> Result<Option<UpdateRow>, StoreError> {
        self.inner.update(id)
    }

    fn outcomes_to(&mut self, version: Version) -> Result<Vec<UpdateRow>, StoreError> {
        self.inner.outcomes_to(version)
    }

    fn site_moves_of(&mut self, agent: AgentId) -> Result<Vec<SiteMoveRow>, StoreError> {
        self.inner.site_moves_of(agent)
    }

    fn updates_of(&mut self, agent: AgentId) -> Result<Vec<UpdateRow>, StoreError> {
        self.inner.updates_of(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::super::sqlite::tests::{sample, sample_flush};
    use super::*;
    use crate::server::store::SqliteStore;

    /// The same batches give the same snapshot from both stores: the double
    /// keeps SQLite's conflict rules.
    #[test]
    fn mem_store_loads_what_sqlite_loads() {
        let mut changes = sample();
        // A second write of every row, with every column changed: what each
        // upsert keeps of the first write must agree.
        let later = Timestamp(1_790_000_000_000);
        let mut again = sample();
        for c in &mut again {
            match c {
                Change::Client(c) => c.created_at = later,
                Change::Site(s) => s.created_at = later,
                Change::Agent(a) => {
                    a.enrolled_at = later;
                    a.last_seen = later;
                    a.version = Version::new(0, 6, 58);
                }
                Change::Update(u) => {
                    u.status = UpdateStatus::Failed;
                    u.dispatched_at = later;
                    u.finished_at = Some(later);
                }
                Change::Rollout(r) => {
                    r.published_at = later;
                    r.failures = 2;
                }
                Change::Blocked(b) => b.blocked_at = later,
                Change::Intent(i) => {
                    i.created_at = later;
                    i.kind = super::super::IntentKind::Rollback;
                    i.scope = None;
                }
                Change::IntentDone(_) => {}
                Change::SiteMove(m) => m.moved_at = later,
            }
        }
        changes.extend(again);
        let mut sqlite = SqliteStore::in_memory().unwrap();
        let mut mem = MemStore::new();
        for batch in changes.chunks(7) {
            sqlite.commit(batch).unwrap();
            mem.commit(batch).unwrap();
        }
        for batch in [sample_flush(2, Timestamp(1_795_000_000_000)), sample_flush(4, later)] {
            sqlite.flush(&batch).unwrap();
            mem.flush(&batch).unwrap();
        }
        assert_eq!(mem.load().unwrap(), sqlite.load().unwrap());
        assert_eq!(mem.load().unwrap().signatures[0].count, 4);
        let done = [Change::IntentDone(Version::new(0, 6, 58))];
        sqlite.commit(&done).unwrap();
        mem.commit(&done).unwrap();
        assert_eq!(mem.load().unwrap(), sqlite.load().unwrap());
        assert!(mem.load().unwrap().intents.is_empty());
        assert_eq!(
            mem.updates_of(AgentId(1)).unwrap(),
            sqlite.updates_of(AgentId(1)).unwrap()
        );
        assert_eq!(mem.update(UpdateId(7)).unwrap(), sqlite.update(UpdateId(7)).unwrap());
        let to = Version::new(0, 6, 58);
        assert_eq!(mem.outcomes_to(to).unwrap(), sqlite.outcomes_to(to).unwrap());
        assert_eq!(mem.outcomes_to(to).unwrap().len(), 1, "the failed update");
        assert_eq!(
            mem.site_moves_of(AgentId(1)).unwrap(),
            sqlite.site_moves_of(AgentId(1)).unwrap()
        );
        assert_eq!(mem.site_moves_of(AgentId(1)).unwrap().len(), 2);
    }

    #[test]
    fn the_nth_commit_fails_and_writes_nothing() {
        let mut mem = MemStore::new();
        let (mut store, switch) = FailingStore::new(mem.clone());
        let changes = sample();
        switch.fail_commit(2);
        store.commit(&changes[..2]).unwrap();
        assert!(store.commit(&changes[2..]).is_err());
        let snap = mem.load().unwrap();
        assert_eq!((snap.clients.len(), snap.agents.len()), (1, 0));
        // Empty batches are not counted, as SQLite opens no transaction for them.
        store.commit(&[]).unwrap();
        store.commit(&changes[2..]).unwrap();
        assert_eq!(switch.commits(), 3);
        assert_eq!(mem.load().unwrap().agents.len(), 1);
    }

    #[test]
    fn a_switched_on_store_refuses_every_write_until_healed() {
        let mut mem = MemStore::new();
        let (mut store, switch) = FailingStore::new(mem.clone());
        let changes = sample();
        switch.fail_from_now();
        assert!(store.commit(&changes).is_err());
        assert!(store.commit(&changes).is_err());
        assert!(store.flush(&sample_flush(1, Timestamp(1))).is_err());
        assert_eq!(mem.load().unwrap(), Snapshot::default());
        switch.heal();
        store.commit(&changes).unwrap();
        assert_eq!(mem.load().unwrap().agents.len(), 1);
    }
}
