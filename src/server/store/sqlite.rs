//! The embedded SQLite store: a file for `serve`, memory or a temp file for
//! simulations.

use std::path::Path;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    AgentRow, BlockedRow, Change, ClientRow, RolloutRow, RolloutStatus, SiteRow, Snapshot, Store,
    StoreError, UpdateReason, UpdateRow, UpdateStatus,
};
use crate::clock::Timestamp;
use crate::protocol::{AgentId, Channel, ClientId, Platform, SiteId, UpdateId};

/// Migrations in order; `PRAGMA user_version` counts how many ran.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_init.sql")];

/// A [`Store`] on one SQLite connection.
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) a database file and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // WAL: readers (a person with the sqlite3 shell) never block the server.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn)
    }

    /// A private in-memory database, gone when dropped.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let known = MIGRATIONS.len() as i64;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Self { conn })
    }
}

fn parse<T: FromStr>(table: &'static str, s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| StoreError::Corrupt {
        table,
        detail: e.to_string(),
    })
}

fn opt_channel(table: &'static str, s: Option<String>) -> Result<Option<Channel>, StoreError> {
    s.map(|s| parse(table, &s)).transpose()
}

fn platform(table: &'static str, os: &str, arch: &str) -> Result<Platform, StoreError> {
    Platform::new(os, arch).map_err(|e| StoreError::Corrupt {
        table,
        detail: e.to_string(),
    })
}

fn reason_str(r: UpdateReason) -> &'static str {
    match r {
        UpdateReason::Heartbeat => "heartbeat",
        UpdateReason::Manual => "manual",
        UpdateReason::Rollback => "rollback",
    }
}

fn status_str(s: UpdateStatus) -> &'static str {
    match s {
        UpdateStatus::Pending => "pending",
        UpdateStatus::Succeeded => "succeeded",
        UpdateStatus::Failed => "failed",
        UpdateStatus::Superseded => "superseded",
    }
}

fn rollout_str(s: RolloutStatus) -> &'static str {
    match s {
        RolloutStatus::Beta => "beta",
        RolloutStatus::Promoted => "promoted",
        RolloutStatus::RolledBack => "rolled_back",
    }
}

fn corrupt(table: &'static str, what: &str, value: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: format!("unknown {what} `{value}`"),
    }
}

/// Raw columns of an `agent_updates` row, read inside rusqlite's closure and
/// checked outside it (rusqlite's closures can only fail with its own error).
type RawUpdate = (
    u64,
    u64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    u32,
    i64,
    Option<i64>,
    Option<String>,
);

const UPDATE_COLUMNS: &str = "id, agent_id, os, arch, from_version, to_version, channel, reason, status, \
                              dispatches, dispatched_at, finished_at, error";

fn raw_update(r: &Row<'_>) -> rusqlite::Result<RawUpdate> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn update_row(raw: RawUpdate) -> Result<UpdateRow, StoreError> {
    const T: &str = "agent_updates";
    let (id, agent, os, arch, from, to, channel, reason, status, dispatches, at, finished, error) =
        raw;
    Ok(UpdateRow {
        id: UpdateId(id),
        agent_id: AgentId(agent),
        platform: platform(T, &os, &arch)?,
        from_version: parse(T, &from)?,
        to_version: parse(T, &to)?,
        channel: parse(T, &channel)?,
        reason: match reason.as_str() {
            "heartbeat" => UpdateReason::Heartbeat,
            "manual" => UpdateReason::Manual,
            "rollback" => UpdateReason::Rollback,
            other => return Err(corrupt(T, "reason", other)),
        },
        status: match status.as_str() {
            "pending" => UpdateStatus::Pending,
            "succeeded" => UpdateStatus::Succeeded,
            "failed" => UpdateStatus::Failed,
            "superseded" => UpdateStatus::Superseded,
            other => return Err(corrupt(T, "status", other)),
        },
        dispatches,
        dispatched_at: Timestamp(at),
        finished_at: finished.map(Timestamp),
        error,
    })
}

impl SqliteStore {
    fn load_clients(&self) -> Result<Vec<ClientRow>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, name, channel, created_at FROM clients ORDER BY id")?;
        let raw = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        raw.map(|row| {
            let (id, name, channel, at): (u64, String, Option<String>, i64) = row?;
            Ok(ClientRow {
                id: ClientId(id),
                name,
                channel: opt_channel("clients", channel)?,
                created_at: Timestamp(at),
            })
        })
        .collect()
    }

    fn load_sites(&self) -> Result<Vec<SiteRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, client_id, name, channel, site_key, created_at FROM sites ORDER BY id",
        )?;
        let raw = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        raw.map(|row| {
            let (id, client, name, channel, site_key, at): (
                u64,
                u64,
                String,
                Option<String>,
                String,
                i64,
            ) = row?;
            Ok(SiteRow {
                id: SiteId(id),
                client_id: ClientId(client),
                name,
                channel: opt_channel("sites", channel)?,
                site_key,
                created_at: Timestamp(at),
            })
        })
        .collect()
    }

    fn load_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        const T: &str = "agents";
        let mut st = self.conn.prepare_cached(
            "SELECT id, device_id, site_id, hostname, os, arch, version, channel, enrolled_at, last_seen \
             FROM agents ORDER BY id",
        )?;
        let raw = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
            ))
        })?;
        raw.map(|row| {
            let (id, device, site, hostname, os, arch, version, channel, enrolled, seen): (
                u64,
                String,
                u64,
                String,
                String,
                String,
                String,
                Option<String>,
                i64,
                i64,
            ) = row?;
            Ok(AgentRow {
                id: AgentId(id),
                device_id: parse(T, &device)?,
                site_id: SiteId(site),
                hostname,
                platform: platform(T, &os, &arch)?,
                version: parse(T, &version)?,
                channel: opt_channel(T, channel)?,
                enrolled_at: Timestamp(enrolled),
                last_seen: Timestamp(seen),
            })
        })
        .collect()
    }

    fn load_rollouts(&self) -> Result<Vec<RolloutRow>, StoreError> {
        const T: &str = "rollouts";
        let mut st = self.conn.prepare_cached(
            "SELECT version, os, arch, status, successes, failures, published_at, promoted_at, rolled_back_at \
             FROM rollouts",
        )?;
        let raw = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })?;
        let mut rows = raw
            .map(|row| {
                let (version, os, arch, status, ok, failed, published, promoted, rolled): (
                    String,
                    String,
                    String,
                    String,
                    u64,
                    u64,
                    i64,
                    Option<i64>,
                    Option<i64>,
                ) = row?;
                Ok(RolloutRow {
                    version: parse(T, &version)?,
                    platform: platform(T, &os, &arch)?,
                    status: match status.as_str() {
                        "beta" => RolloutStatus::Beta,
                        "promoted" => RolloutStatus::Promoted,
                        "rolled_back" => RolloutStatus::RolledBack,
                        other => return Err(corrupt(T, "status", other)),
                    },
                    successes: ok,
                    failures: failed,
                    published_at: Timestamp(published),
                    promoted_at: promoted.map(Timestamp),
                    rolled_back_at: rolled.map(Timestamp),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.sort_by(|a, b| (a.version, &a.platform).cmp(&(b.version, &b.platform)));
        Ok(rows)
    }

    fn load_blocked(&self) -> Result<Vec<BlockedRow>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT version, blocked_at FROM blocked_versions")?;
        let raw = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut rows = raw
            .map(|row| {
                let (version, at): (String, i64) = row?;
                Ok(BlockedRow {
                    version: parse("blocked_versions", &version)?,
                    blocked_at: Timestamp(at),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.sort_by_key(|r| r.version);
        Ok(rows)
    }

    fn query_updates(&self, filter: &str, arg: Option<u64>) -> Result<Vec<UpdateRow>, StoreError> {
        let sql = format!("SELECT {UPDATE_COLUMNS} FROM agent_updates WHERE {filter} ORDER BY id");
        let mut st = self.conn.prepare_cached(&sql)?;
        let raw: Vec<RawUpdate> = match arg {
            Some(a) => st
                .query_map([a], raw_update)?
                .collect::<rusqlite::Result<_>>()?,
            None => st
                .query_map([], raw_update)?
                .collect::<rusqlite::Result<_>>()?,
        };
        raw.into_iter().map(update_row).collect()
    }
}

fn write(tx: &rusqlite::Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    let ch = |c: Option<Channel>| c.map(Channel::as_str);
    match change {
        Change::Client(c) => tx
            .prepare_cached(
                "INSERT INTO clients (id, name, channel, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, channel = excluded.channel",
            )?
            .execute(params![c.id.0, c.name, ch(c.channel), c.created_at.0]),
        Change::Site(s) => tx
            .prepare_cached(
                "INSERT INTO sites (id, client_id, name, channel, site_key, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, channel = excluded.channel, \
                 site_key = excluded.site_key",
            )?
            .execute(params![s.id.0, s.client_id.0, s.name, ch(s.channel), s.site_key, s.created_at.0]),
        Change::Agent(a) => tx
            .prepare_cached(
                "INSERT INTO agents (id, device_id, site_id, hostname, os, arch, version, channel, enrolled_at, last_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (id) DO UPDATE SET site_id = excluded.site_id, hostname = excluded.hostname, \
                 os = excluded.os, arch = excluded.arch, version = excluded.version, channel = excluded.channel, \
                 last_seen = excluded.last_seen",
            )?
            .execute(params![
                a.id.0,
                a.device_id.to_string(),
                a.site_id.0,
                a.hostname,
                a.platform.os(),
                a.platform.arch(),
                a.version.to_string(),
                ch(a.channel),
                a.enrolled_at.0,
                a.last_seen.0
            ]),
        Change::Update(u) => tx
            .prepare_cached(&format!(
                "INSERT INTO agent_updates ({UPDATE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, dispatches = excluded.dispatches, \
                 finished_at = excluded.finished_at, error = excluded.error"
            ))?
            .execute(params![
                u.id.0,
                u.agent_id.0,
                u.platform.os(),
                u.platform.arch(),
                u.from_version.to_string(),
                u.to_version.to_string(),
                u.channel.as_str(),
                reason_str(u.reason),
                status_str(u.status),
                u.dispatches,
                u.dispatched_at.0,
                u.finished_at.map(|t| t.0),
                u.error
            ]),
        Change::Rollout(r) => tx
            .prepare_cached(
                "INSERT INTO rollouts (version, os, arch, status, successes, failures, published_at, promoted_at, \
                 rolled_back_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (version, os, arch) DO UPDATE SET status = excluded.status, \
                 successes = excluded.successes, failures = excluded.failures, promoted_at = excluded.promoted_at, \
                 rolled_back_at = excluded.rolled_back_at",
            )?
            .execute(params![
                r.version.to_string(),
                r.platform.os(),
                r.platform.arch(),
                rollout_str(r.status),
                r.successes,
                r.failures,
                r.published_at.0,
                r.promoted_at.map(|t| t.0),
                r.rolled_back_at.map(|t| t.0)
            ]),
        Change::Blocked(b) => tx
            .prepare_cached("INSERT OR IGNORE INTO blocked_versions (version, blocked_at) VALUES (?1, ?2)")?
            .execute(params![b.version.to_string(), b.blocked_at.0]),
    }
    .map(|_| ())
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let max_update_id: Option<u64> = self
            .conn
            .query_row("SELECT MAX(id) FROM agent_updates", [], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(Snapshot {
            clients: self.load_clients()?,
            sites: self.load_sites()?,
            agents: self.load_agents()?,
            pending: self.query_updates("status = 'pending'", None)?,
            rollouts: self.load_rollouts()?,
            blocked: self.load_blocked()?,
            max_update_id: max_update_id.unwrap_or(0),
        })
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for change in changes {
            write(&tx, change)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn updates_of(&mut self, agent: AgentId) -> Result<Vec<UpdateRow>, StoreError> {
        self.query_updates("agent_id = ?1", Some(agent.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Version;

    fn sample() -> Vec<Change> {
        let t = Timestamp(1_780_000_000_000);
        let client = ClientRow {
            id: ClientId(1),
            name: "acme".into(),
            channel: None,
            created_at: t,
        };
        let site = SiteRow {
            id: SiteId(1),
            client_id: ClientId(1),
            name: "hq".into(),
            channel: Some(Channel::Beta),
            site_key: "k".into(),
            created_at: t,
        };
        let agent = AgentRow {
            id: AgentId(1),
            device_id: "win-6f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10".parse().unwrap(),
            site_id: SiteId(1),
            hostname: "pc".into(),
            platform: "windows-amd64".parse().unwrap(),
            version: Version::new(0, 6, 27),
            channel: None,
            enrolled_at: t,
            last_seen: t,
        };
        let update = UpdateRow {
            id: UpdateId(7),
            agent_id: AgentId(1),
            platform: agent.platform.clone(),
            from_version: agent.version,
            to_version: Version::new(0, 6, 58),
            channel: Channel::Beta,
            reason: UpdateReason::Heartbeat,
            status: UpdateStatus::Pending,
            dispatches: 2,
            dispatched_at: t,
            finished_at: None,
            error: None,
        };
        let rollout = RolloutRow {
            version: Version::new(0, 6, 58),
            platform: agent.platform.clone(),
            status: RolloutStatus::Beta,
            successes: 3,
            failures: 1,
            published_at: t,
            promoted_at: None,
            rolled_back_at: None,
        };
        let blocked = BlockedRow {
            version: Version::new(0, 6, 50),
            blocked_at: t,
        };
        vec![
            Change::Client(client),
            Change::Site(site),
            Change::Agent(agent),
            Change::Update(update),
            Change::Rollout(rollout),
            Change::Blocked(blocked),
        ]
    }

    #[test]
    fn what_is_committed_loads_back_after_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let changes = sample();
        SqliteStore::open(&path).unwrap().commit(&changes).unwrap();
        let mut store = SqliteStore::open(&path).unwrap();
        let snap = store.load().unwrap();
        let Change::Update(update) = &changes[3] else {
            unreachable!()
        };
        assert_eq!(snap.clients.len(), 1);
        assert_eq!(snap.sites[0].channel, Some(Channel::Beta));
        assert!(snap.agents[0].device_id.is_legacy());
        assert_eq!(snap.pending, vec![update.clone()]);
        assert_eq!(snap.rollouts[0].failures, 1);
        assert_eq!(snap.blocked[0].version, Version::new(0, 6, 50));
        assert_eq!(snap.max_update_id, 7);
        assert_eq!(store.updates_of(AgentId(1)).unwrap().len(), 1);
    }

    #[test]
    fn a_failed_batch_writes_nothing() {
        let mut store = SqliteStore::in_memory().unwrap();
        let mut changes = sample();
        // A site pointing at a client that does not exist breaks the batch.
        if let Change::Site(s) = &mut changes[1] {
            s.client_id = ClientId(99);
        }
        assert!(store.commit(&changes).is_err());
        assert_eq!(store.load().unwrap(), Snapshot::default());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
