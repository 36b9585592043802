-- rmmsim schema v4: a `hello` that moves an agent row to another site of
-- its client is recorded, so the row's history says where it was admitted
-- before (this project's rule; update-model.md); and the health gate reads
-- the outcomes of a version from agent_updates, by version.
CREATE TABLE agent_site_moves (
    id           INTEGER PRIMARY KEY,
    agent_id     INTEGER NOT NULL REFERENCES agents (id),
    moved_at     INTEGER NOT NULL,
    from_site_id INTEGER NOT NULL REFERENCES sites (id),
    to_site_id   INTEGER NOT NULL REFERENCES sites (id)
);
CREATE INDEX agent_site_moves_by_agent ON agent_site_moves (agent_id);

-- The health gate reads every outcome of one version (U9).
CREATE INDEX agent_updates_by_to_version ON agent_updates (to_version);
