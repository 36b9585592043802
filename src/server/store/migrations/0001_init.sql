-- rmmsim schema v1. Times are milliseconds since the Unix epoch (server
-- clock); versions are MAJOR.MINOR.PATCH text, ordered in Rust, not SQL.

CREATE TABLE clients (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    channel     TEXT    CHECK (channel IN ('stable', 'beta')),
    created_at  INTEGER NOT NULL
);

CREATE TABLE sites (
    id          INTEGER PRIMARY KEY,
    client_id   INTEGER NOT NULL REFERENCES clients (id),
    name        TEXT    NOT NULL,
    channel     TEXT    CHECK (channel IN ('stable', 'beta')),
    site_key    TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    UNIQUE (client_id, name)
);

-- U12: keyed by device_id exactly; win-<uuid> and <uuid> are two rows.
CREATE TABLE agents (
    id          INTEGER PRIMARY KEY,
    device_id   TEXT    NOT NULL UNIQUE,
    site_id     INTEGER NOT NULL REFERENCES sites (id),
    hostname    TEXT    NOT NULL,
    os          TEXT    NOT NULL,
    arch        TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    channel     TEXT    CHECK (channel IN ('stable', 'beta')),
    enrolled_at INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);

CREATE TABLE agent_updates (
    id            INTEGER PRIMARY KEY,
    agent_id      INTEGER NOT NULL REFERENCES agents (id),
    os            TEXT    NOT NULL,
    arch          TEXT    NOT NULL,
    from_version  TEXT    NOT NULL,
    to_version    TEXT    NOT NULL,
    channel       TEXT    NOT NULL CHECK (channel IN ('stable', 'beta')),
    reason        TEXT    NOT NULL CHECK (reason IN ('heartbeat', 'manual', 'rollback')),
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'superseded')),
    dispatches    INTEGER NOT NULL,
    dispatched_at INTEGER NOT NULL,
    finished_at   INTEGER,
    error         TEXT
);
CREATE INDEX agent_updates_by_agent ON agent_updates (agent_id);
CREATE INDEX agent_updates_pending ON agent_updates (status) WHERE status = 'pending';

-- U11: one row per (version, os, arch) that went through beta.
CREATE TABLE rollouts (
    version        TEXT    NOT NULL,
    os             TEXT    NOT NULL,
    arch           TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('beta', 'promoted', 'rolled_back')),
    successes      INTEGER NOT NULL,
    failures       INTEGER NOT NULL,
    published_at   INTEGER NOT NULL,
    promoted_at    INTEGER,
    rolled_back_at INTEGER,
    PRIMARY KEY (version, os, arch)
);

-- U10: a blocked version is never offered again.
CREATE TABLE blocked_versions (
    version    TEXT    PRIMARY KEY,
    blocked_at INTEGER NOT NULL
);
