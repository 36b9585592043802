-- rmmsim schema v2: an update the server ended as superseded may still be
-- installed (or fail) on the machine; the agent's report on it is recorded
-- here once and counted once on the version's rollout row.
ALTER TABLE agent_updates
    ADD COLUMN late_outcome TEXT CHECK (late_outcome IN ('succeeded', 'failed'));
