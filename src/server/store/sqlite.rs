//! The embedded SQLite store: a file for `serve`, memory or a temp file for
//! simulations.

use std::path::Path;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Type, ValueRef};
use rusqlite::{Connection, Row, ToSql, params};

use super::{
    AgentRow, BlockedRow, Change, ClientRow, Flush, IntentKind, IntentRow, RolloutRow, RolloutStatus, SignatureId,
    SignatureMachine, SignatureRow, SignatureVersionRow, SiteMoveRow, SiteRow, Snapshot, Store, StoreError,
    UpdateReason, UpdateRow, UpdateStatus, VersionTime,
};
use crate::clock::Timestamp;
use crate::protocol::{AgentId, Channel, ClientId, DeviceId, Platform, SiteId, UpdateId, Version};

/// Migrations in order; `PRAGMA user_version` counts how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_late_outcome.sql"),
    include_str!("migrations/0003_intents.sql"),
    include_str!("migrations/0004_site_moves.sql"),
    include_str!("migrations/0005_log_signatures.sql"),
];

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
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Self { conn })
    }
}

/// Text columns holding a type that parses from and prints to a string.
macro_rules! sql_text {
    ($($ty:ty),*) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.to_string()))
            }
        }
        impl FromSql for $ty {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                v.as_str()?.parse().map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    )*};
}
sql_text!(Version, DeviceId, Channel);

/// Text columns holding one of a fixed set of words.
macro_rules! sql_enum {
    ($ty:ty { $($var:path => $word:literal),* $(,)? }) => {
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(match self { $($var => $word),* }))
            }
        }
        impl FromSql for $ty {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                match v.as_str()? {
                    $($word => Ok($var),)*
                    other => Err(FromSqlError::Other(format!("unknown value `{other}`").into())),
                }
            }
        }
    };
}
sql_enum!(UpdateReason { UpdateReason::Heartbeat => "heartbeat", UpdateReason::Manual => "manual", UpdateReason::Rollback => "rollback" });
sql_enum!(UpdateStatus {
    UpdateStatus::Pending => "pending",
    UpdateStatus::Succeeded => "succeeded",
    UpdateStatus::Failed => "failed",
    UpdateStatus::Superseded => "superseded",
});
sql_enum!(IntentKind { IntentKind::Promote => "promote", IntentKind::Rollback => "rollback" });
sql_enum!(RolloutStatus { RolloutStatus::Beta => "beta", RolloutStatus::Promoted => "promoted", RolloutStatus::RolledBack => "rolled_back" });

/// Integer columns: ids and timestamps.
macro_rules! sql_int {
    ($($ty:ident),*) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }
        impl FromSql for $ty {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                FromSql::column_result(v).map($ty)
            }
        }
    )*};
}
sql_int!(AgentId, UpdateId, ClientId, SiteId, Timestamp, SignatureId);

/// A platform is two columns, `os` and `arch`.
fn platform(r: &Row<'_>, os: usize) -> rusqlite::Result<Platform> {
    let (o, a): (String, String) = (r.get(os)?, r.get(os + 1)?);
    Platform::new(&o, &a).map_err(|e| rusqlite::Error::FromSqlConversionFailure(os, Type::Text, Box::new(e)))
}

fn client(r: &Row<'_>) -> rusqlite::Result<ClientRow> {
    Ok(ClientRow {
        id: r.get(0)?,
        name: r.get(1)?,
        channel: r.get(2)?,
        created_at: r.get(3)?,
    })
}

fn site(r: &Row<'_>) -> rusqlite::Result<SiteRow> {
    Ok(SiteRow {
        id: r.get(0)?,
        client_id: r.get(1)?,
        name: r.get(2)?,
        channel: r.get(3)?,
        site_key: r.get(4)?,
        created_at: r.get(5)?,
    })
}

fn agent(r: &Row<'_>) -> rusqlite::Result<AgentRow> {
    Ok(AgentRow {
        id: r.get(0)?,
        device_id: r.get(1)?,
        site_id: r.get(2)?,
        hostname: r.get(3)?,
        platform: platform(r, 4)?,
        version: r.get(6)?,
        channel: r.get(7)?,
        enrolled_at: r.get(8)?,
        last_seen: r.get(9)?,
        pseudo: false,
    })
}

fn update(r: &Row<'_>) -> rusqlite::Result<UpdateRow> {
    Ok(UpdateRow {
        id: r.get(0)?,
        agent_id: r.get(1)?,
        platform: platform(r, 2)?,
        from_version: r.get(4)?,
        to_version: r.get(5)?,
        channel: r.get(6)?,
        reason: r.get(7)?,
        status: r.get(8)?,
        dispatches: r.get(9)?,
        dispatched_at: r.get(10)?,
        finished_at: r.get(11)?,
        error: r.get(12)?,
        late_outcome: r.get(13)?,
    })
}

fn rollout(r: &Row<'_>) -> rusqlite::Result<RolloutRow> {
    Ok(RolloutRow {
        version: r.get(0)?,
        platform: platform(r, 1)?,
        status: r.get(3)?,
        successes: r.get(4)?,
        failures: r.get(5)?,
        published_at: r.get(6)?,
        promoted_at: r.get(7)?,
        rolled_back_at: r.get(8)?,
    })
}

fn intent(r: &Row<'_>) -> rusqlite::Result<IntentRow> {
    let os: Option<String> = r.get(2)?;
    Ok(IntentRow {
        version: r.get(0)?,
        kind: r.get(1)?,
        scope: match os {
            Some(_) => Some(platform(r, 2)?),
            None => None,
        },
        created_at: r.get(4)?,
    })
}

fn site_move(r: &Row<'_>) -> rusqlite::Result<SiteMoveRow> {
    Ok(SiteMoveRow {
        agent_id: r.get(0)?,
        moved_at: r.get(1)?,
        from_site_id: r.get(2)?,
        to_site_id: r.get(3)?,
    })
}

fn signature(r: &Row<'_>) -> rusqlite::Result<SignatureRow> {
    Ok(SignatureRow {
        id: r.get(0)?,
        signature: r.get(1)?,
        level: r.get(2)?,
        sample: r.get(3)?,
        first_seen: r.get(4)?,
        last_seen: r.get(5)?,
        count: r.get(6)?,
        first_version: r.get(7)?,
    })
}

fn signature_version(r: &Row<'_>) -> rusqlite::Result<SignatureVersionRow> {
    Ok(SignatureVersionRow {
        signature: r.get(0)?,
        version: r.get(1)?,
        count: r.get(2)?,
        machines: r.get(3)?,
        first_seen: r.get(4)?,
    })
}

fn signature_machine(r: &Row<'_>) -> rusqlite::Result<SignatureMachine> {
    Ok(SignatureMachine {
        signature: r.get(0)?,
        version: r.get(1)?,
        agent: r.get(2)?,
    })
}

fn version_time(r: &Row<'_>) -> rusqlite::Result<VersionTime> {
    Ok(VersionTime {
        version: r.get(0)?,
        machine_ms: r.get(1)?,
    })
}

fn blocked(r: &Row<'_>) -> rusqlite::Result<BlockedRow> {
    Ok(BlockedRow {
        version: r.get(0)?,
        blocked_at: r.get(1)?,
    })
}

const CLIENT_COLUMNS: &str = "id, name, channel, created_at";
const SITE_COLUMNS: &str = "id, client_id, name, channel, site_key, created_at";
const AGENT_COLUMNS: &str = "id, device_id, site_id, hostname, os, arch, version, channel, enrolled_at, last_seen";
const UPDATE_COLUMNS: &str = "id, agent_id, os, arch, from_version, to_version, channel, reason, status, \
                              dispatches, dispatched_at, finished_at, error, late_outcome";
const INTENT_COLUMNS: &str = "version, kind, os, arch, created_at";
const ROLLOUT_COLUMNS: &str =
    "version, os, arch, status, successes, failures, published_at, promoted_at, rolled_back_at";
const SIGNATURE_COLUMNS: &str = "id, signature, level, sample, first_seen, last_seen, count, first_version";
const SIGNATURE_VERSION_COLUMNS: &str = "signature_id, version, count, machines, first_seen";

impl SqliteStore {
    /// Every row of a query, mapped.
    fn rows<T>(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        map: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map(args, map)?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

impl SqliteStore {
    /// U13's tables, in the order [`Snapshot`] documents (versions are
    /// text in SQL, so they are ordered here).
    fn load_logs(&self) -> Result<Flush, StoreError> {
        let signatures = self.rows(
            &format!("SELECT {SIGNATURE_COLUMNS} FROM log_signatures ORDER BY id"),
            [],
            signature,
        )?;
        let sql = format!("SELECT {SIGNATURE_VERSION_COLUMNS} FROM log_signature_versions");
        let mut signature_versions = self.rows(&sql, [], signature_version)?;
        signature_versions.sort_by_key(|r| (r.signature, r.version));
        let sql = "SELECT signature_id, version, agent_id FROM log_signature_machines";
        let mut signature_machines = self.rows(sql, [], signature_machine)?;
        signature_machines.sort();
        let mut version_time = self.rows("SELECT version, machine_ms FROM version_hours", [], version_time)?;
        version_time.sort_by_key(|t| t.version);
        Ok(Flush {
            stamps: Vec::new(),
            signatures,
            signature_versions,
            signature_machines,
            version_time,
        })
    }
}

/// `INSERT … ON CONFLICT (key) DO UPDATE SET …` for a table's columns.
fn upsert(table: &str, columns: &str, key: &str, update: &str) -> String {
    let marks: Vec<String> = (1..=columns.split(',').count()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {table} ({columns}) VALUES ({}) ON CONFLICT ({key}) DO UPDATE SET {update}",
        marks.join(", ")
    )
}

/// The upsert statements, built once: clients, sites, agents, updates,
/// rollouts, signatures, signature versions, version hours.
fn upserts() -> &'static [String; 8] {
    static SQL: std::sync::OnceLock<[String; 8]> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        [
            upsert(
                "clients",
                CLIENT_COLUMNS,
                "id",
                "name = excluded.name, channel = excluded.channel",
            ),
            upsert(
                "sites",
                SITE_COLUMNS,
                "id",
                "name = excluded.name, channel = excluded.channel, site_key = excluded.site_key",
            ),
            upsert(
                "agents",
                AGENT_COLUMNS,
                "id",
                "site_id = excluded.site_id, hostname = excluded.hostname, os = excluded.os, arch = excluded.arch, \
                 version = excluded.version, channel = excluded.channel, last_seen = excluded.last_seen",
            ),
            upsert(
                "agent_updates",
                UPDATE_COLUMNS,
                "id",
                "status = excluded.status, dispatches = excluded.dispatches, finished_at = excluded.finished_at, \
                 error = excluded.error, late_outcome = excluded.late_outcome",
            ),
            upsert(
                "rollouts",
                ROLLOUT_COLUMNS,
                "version, os, arch",
                "status = excluded.status, successes = excluded.successes, failures = excluded.failures, \
                 promoted_at = excluded.promoted_at, rolled_back_at = excluded.rolled_back_at",
            ),
            upsert(
                "log_signatures",
                SIGNATURE_COLUMNS,
                "id",
                "last_seen = excluded.last_seen, count = excluded.count",
            ),
            upsert(
                "log_signature_versions",
                SIGNATURE_VERSION_COLUMNS,
                "signature_id, version",
                "count = excluded.count, machines = excluded.machines",
            ),
            upsert(
                "version_hours",
                "version, machine_ms",
                "version",
                "machine_ms = excluded.machine_ms",
            ),
        ]
    })
}

/// The batched writes of [`Store::flush`], inside its transaction.
fn write_flush(tx: &rusqlite::Transaction<'_>, b: &Flush) -> rusqlite::Result<()> {
    let sql = upserts();
    let mut st = tx.prepare_cached("UPDATE agents SET last_seen = ?2 WHERE id = ?1")?;
    for (id, at) in &b.stamps {
        st.execute(params![id, at])?;
    }
    let mut st = tx.prepare_cached(&sql[5])?;
    for r in &b.signatures {
        st.execute(params![
            r.id,
            r.signature,
            r.level,
            r.sample,
            r.first_seen,
            r.last_seen,
            r.count,
            r.first_version
        ])?;
    }
    let mut st = tx.prepare_cached(&sql[6])?;
    for r in &b.signature_versions {
        st.execute(params![r.signature, r.version, r.count, r.machines, r.first_seen])?;
    }
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO log_signature_machines (signature_id, version, agent_id) VALUES (?1, ?2, ?3)",
    )?;
    for m in &b.signature_machines {
        st.execute(params![m.signature, m.version, m.agent])?;
    }
    let mut st = tx.prepare_cached(&sql[7])?;
    for t in &b.version_time {
        st.execute(params![t.version, t.machine_ms])?;
    }
    Ok(())
}

fn write(tx: &rusqlite::Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    let sql = upserts();
    match change {
        Change::Client(c) => tx
            .prepare_cached(&sql[0])?
            .execute(params![c.id, c.name, c.channel, c.created_at]),
        Change::Site(s) => {
            tx.prepare_cached(&sql[1])?
                .execute(params![s.id, s.client_id, s.name, s.channel, s.site_key, s.created_at])
        }
        Change::Agent(a) => tx.prepare_cached(&sql[2])?.execute(params![
            a.id,
            a.device_id,
            a.site_id,
            a.hostname,
            a.platform.os(),
            a.platform.arch(),
            a.version,
            a.channel,
            a.enrolled_at,
            a.last_seen
        ]),
        Change::Update(u) => tx.prepare_cached(&sql[3])?.execute(params![
            u.id,
            u.agent_id,
            u.platform.os(),
            u.platform.arch(),
            u.from_version,
            u.to_version,
            u.channel,
            u.reason,
            u.status,
            u.dispatches,
            u.dispatched_at,
            u.finished_at,
            u.error,
            u.late_outcome
        ]),
        Change::Rollout(r) => tx.prepare_cached(&sql[4])?.execute(params![
            r.version,
            r.platform.os(),
            r.platform.arch(),
            r.status,
            r.successes,
            r.failures,
            r.published_at,
            r.promoted_at,
            r.rolled_back_at
        ]),
        Change::Blocked(b) => tx
            .prepare_cached("INSERT OR IGNORE INTO blocked_versions (version, blocked_at) VALUES (?1, ?2)")?
            .execute(params![b.version, b.blocked_at]),
        Change::Intent(i) => tx
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO intents ({INTENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))?
            .execute(params![
                i.version,
                i.kind,
                i.scope.as_ref().map(Platform::os),
                i.scope.as_ref().map(Platform::arch),
                i.created_at
            ]),
        Change::IntentDone(version) => tx
            .prepare_cached("DELETE FROM intents WHERE version = ?1")?
            .execute(params![version]),
        Change::SiteMove(m) => tx
            .prepare_cached(
                "INSERT INTO agent_site_moves (agent_id, moved_at, from_site_id, to_site_id) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![m.agent_id, m.moved_at, m.from_site_id, m.to_site_id]),
    }
    .map(|_| ())
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let max_update_id: Option<u64> = self
            .conn
            .query_row("SELECT MAX(id) FROM agent_updates", [], |r| r.get(0))?;
        let mut rollouts = self.rows(&format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts"), [], rollout)?;
        rollouts.sort_by(|a, b| (a.version, &a.platform).cmp(&(b.version, &b.platform)));
        let mut blocked = self.rows("SELECT version, blocked_at FROM blocked_versions", [], blocked)?;
        blocked.sort_by_key(|b| b.version);
        let mut intents = self.rows(&format!("SELECT {INTENT_COLUMNS} FROM intents"), [], intent)?;
        intents.sort_by_key(|i| i.version);
        let logs = self.load_logs()?;
        Ok(Snapshot {
            clients: self.rows(&format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id"), [], client)?,
            sites: self.rows(&format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY id"), [], site)?,
            agents: self.rows(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"), [], agent)?,
            pending: self.rows(
                &format!("SELECT {UPDATE_COLUMNS} FROM agent_updates WHERE status = 'pending' ORDER BY id"),
                [],
                update,
            )?,
            rollouts,
            blocked,
            intents,
            max_update_id: max_update_id.unwrap_or(0),
            signatures: logs.signatures,
            signature_versions: logs.signature_versions,
            signature_machines: logs.signature_machines,
            version_time: logs.version_time,
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

    fn flush(&mut self, batch: &Flush) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        write_flush(&tx, batch)?;
        tx.commit()?;
        Ok(())
    }

    fn update(&mut self, id: UpdateId) -> Result<Option<UpdateRow>, StoreError> {
        let sql = format!("SELECT {UPDATE_COLUMNS} FROM agent_updates WHERE id = ?1");
        Ok(self.rows(&sql, [id], update)?.pop())
    }

    fn updates_of(&mut self, agent: AgentId) -> Result<Vec<UpdateRow>, StoreError> {
        let sql = format!("SELECT {UPDATE_COLUMNS} FROM agent_updates WHERE agent_id = ?1 ORDER BY id");
        self.rows(&sql, [agent], update)
    }

    fn outcomes_to(&mut self, version: Version) -> Result<Vec<UpdateRow>, StoreError> {
        let sql = format!(
            "SELECT {UPDATE_COLUMNS} FROM agent_updates WHERE to_version = ?1 \
             AND (status IN ('succeeded', 'failed') OR late_outcome IS NOT NULL) ORDER BY id"
        );
        self.rows(&sql, [version], update)
    }

    fn site_moves_of(&mut self, agent: AgentId) -> Result<Vec<SiteMoveRow>, StoreError> {
        let sql = "SELECT agent_id, moved_at, from_site_id, to_site_id FROM agent_site_moves \
                   WHERE agent_id = ?1 ORDER BY id";
        self.rows(sql, [agent], site_move)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::protocol::Version;
    use crate::server::store::{IntentKind, IntentRow};

    /// One row of every table, committed in an order the foreign keys accept.
    pub(in crate::server::store) fn sample() -> Vec<Change> {
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
            pseudo: false,
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
            late_outcome: None,
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
        let intent = IntentRow {
            version: Version::new(0, 6, 58),
            kind: IntentKind::Promote,
            scope: Some(agent.platform.clone()),
            created_at: t,
        };
        let moved = SiteMoveRow {
            agent_id: AgentId(1),
            moved_at: t,
            from_site_id: SiteId(1),
            to_site_id: SiteId(1),
        };
        vec![
            Change::Client(client),
            Change::Site(site),
            Change::Agent(agent),
            Change::Update(update),
            Change::Rollout(rollout),
            Change::Blocked(blocked),
            Change::Intent(intent),
            Change::SiteMove(moved),
        ]
    }

    /// A batch of every kind of batched row, for agent 1 of [`sample`]; the
    /// signature was logged `count` times, by agents 1 and 0 (the server).
    pub(in crate::server::store) fn sample_flush(count: u64, at: Timestamp) -> Flush {
        let id = SignatureId(3);
        let version = Version::new(0, 6, 58);
        let machine = |agent| SignatureMachine {
            signature: id,
            version,
            agent: AgentId(agent),
        };
        Flush {
            stamps: vec![(AgentId(1), at)],
            signatures: vec![SignatureRow {
                id,
                signature: "disk <path> full".into(),
                level: "error".into(),
                sample: "disk /var full".into(),
                first_seen: at,
                last_seen: at,
                count,
                first_version: version,
            }],
            signature_versions: vec![SignatureVersionRow {
                signature: id,
                version,
                count,
                machines: 2,
                first_seen: at,
            }],
            signature_machines: vec![machine(0), machine(1)],
            version_time: vec![VersionTime {
                version,
                machine_ms: count * 1000,
            }],
        }
    }

    #[test]
    fn a_flush_loads_back_and_keeps_each_rows_first_sighting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let t = Timestamp(1_780_000_000_000);
        let later = Timestamp(1_790_000_000_000);
        let mut store = SqliteStore::open(&path).unwrap();
        store.commit(&sample()).unwrap();
        store.flush(&sample_flush(2, t)).unwrap();
        let mut again = sample_flush(5, later);
        again.signatures[0].sample = "another sample".into();
        store.flush(&again).unwrap();
        drop(store);
        let snap = SqliteStore::open(&path).unwrap().load().unwrap();
        let sig = &snap.signatures[0];
        assert_eq!((sig.first_seen, sig.last_seen, sig.count), (t, later, 5));
        assert_eq!(sig.sample, "disk /var full");
        let row = &snap.signature_versions[0];
        assert_eq!((row.first_seen, row.count, row.machines), (t, 5, 2));
        assert_eq!(snap.signature_machines.len(), 2, "each machine once");
        assert_eq!(snap.version_time[0].machine_ms, 5000);
        assert_eq!(snap.agents[0].last_seen, later);
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
        assert_eq!(
            snap.intents,
            [changes[6].clone()].map(|c| match c {
                Change::Intent(i) => i,
                _ => unreachable!(),
            })
        );
        assert_eq!(snap.max_update_id, 7);
        assert_eq!(store.updates_of(AgentId(1)).unwrap().len(), 1);
        assert_eq!(store.site_moves_of(AgentId(1)).unwrap().len(), 1);
        // A rollback intent has no scope; finishing deletes it.
        let rollback = IntentRow {
            version: Version::new(0, 6, 50),
            kind: IntentKind::Rollback,
            scope: None,
            created_at: Timestamp(1),
        };
        store
            .commit(&[
                Change::Intent(rollback.clone()),
                Change::IntentDone(Version::new(0, 6, 58)),
            ])
            .unwrap();
        assert_eq!(SqliteStore::open(&path).unwrap().load().unwrap().intents, [rollback]);
    }

    #[test]
    fn a_version_2_database_is_migrated_and_records_intents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let changes = sample();
        {
            // What the rmmsim before intents left behind: two migrations.
            let mut conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..2] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            let tx = conn.transaction().unwrap();
            for c in &changes[..6] {
                write(&tx, c).unwrap();
            }
            tx.commit().unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let version: i64 = store.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let snap = store.load().unwrap();
        assert!(snap.intents.is_empty());
        assert_eq!((snap.agents.len(), snap.pending.len(), snap.rollouts.len()), (1, 1, 1));
        store.commit(&changes[6..]).unwrap();
        drop(store);
        assert_eq!(SqliteStore::open(&path).unwrap().load().unwrap().intents.len(), 1);
    }

    #[test]
    fn a_version_1_database_is_migrated_and_keeps_its_updates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let changes = sample();
        {
            // What an older rmmsim left behind: the first migration only.
            let mut conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            let tx = conn.transaction().unwrap();
            for c in &changes[..3] {
                write(&tx, c).unwrap();
            }
            tx.execute(
                "INSERT INTO agent_updates (id, agent_id, os, arch, from_version, to_version, channel, reason, \
                 status, dispatches, dispatched_at) \
                 VALUES (7, 1, 'windows', 'amd64', '0.6.27', '0.6.58', 'beta', 'heartbeat', 'superseded', 1, 0)",
                [],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let mut old = store.update(UpdateId(7)).unwrap().unwrap();
        assert_eq!((old.status, old.late_outcome), (UpdateStatus::Superseded, None));
        old.late_outcome = Some(UpdateStatus::Succeeded);
        store.commit(&[Change::Update(old.clone())]).unwrap();
        drop(store);
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.update(UpdateId(7)).unwrap(), Some(old));
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
