-- rmmsim schema v3: a promote or rollback writes its intent here before it
-- touches the downloads folder and deletes it in the transaction that
-- finishes it; an intent found at startup is finished then.
CREATE TABLE intents (
    version    TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('promote', 'rollback')),
    os         TEXT,
    arch       TEXT,
    created_at INTEGER NOT NULL,
    CHECK ((os IS NULL) = (arch IS NULL))
);
