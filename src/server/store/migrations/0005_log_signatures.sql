-- rmmsim schema v5: U13, log feedback. Agents' log messages (and the
-- server's own warnings and errors, under its pseudo-agent) grouped by
-- signature, per agent version; written in batches with last_seen.

-- One row per (level, normalised message).
CREATE TABLE log_signatures (
    id            INTEGER PRIMARY KEY,
    signature     TEXT    NOT NULL,
    level         TEXT    NOT NULL,
    sample        TEXT    NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    first_version TEXT    NOT NULL,
    UNIQUE (level, signature)
);

-- Each signature on each agent version it was logged on.
CREATE TABLE log_signature_versions (
    signature_id INTEGER NOT NULL REFERENCES log_signatures (id),
    version      TEXT    NOT NULL,
    count        INTEGER NOT NULL,
    machines     INTEGER NOT NULL,
    first_seen   INTEGER NOT NULL,
    PRIMARY KEY (signature_id, version)
);

-- The agent rows behind log_signature_versions.machines, so the count of
-- distinct machines stays right after a restart. agent_id 0 is the
-- server's pseudo-agent, which has no row in agents: no foreign key.
CREATE TABLE log_signature_machines (
    signature_id INTEGER NOT NULL REFERENCES log_signatures (id),
    version      TEXT    NOT NULL,
    agent_id     INTEGER NOT NULL,
    PRIMARY KEY (signature_id, version, agent_id)
) WITHOUT ROWID;

-- Milliseconds agents spent connected on each version (between consecutive
-- hello/heartbeat frames of a session on that version): the denominator of
-- a signature's rate per machine-hour.
CREATE TABLE version_hours (
    version    TEXT    PRIMARY KEY,
    machine_ms INTEGER NOT NULL
);
