-- The instance that runs on this store (one: a second `gateway run` on the same file is refused)
-- and the leases of its scheduled jobs, kept as PostgreSQL keeps them for several instances.
CREATE TABLE instances (
    id             TEXT    PRIMARY KEY,
    host           TEXT    NOT NULL,
    pid            INTEGER NOT NULL,
    version        TEXT    NOT NULL,
    started_at     TEXT    NOT NULL,
    last_heartbeat TEXT    NOT NULL,
    committed      INTEGER NOT NULL DEFAULT 0,
    stopped_at     TEXT
);

CREATE TABLE job_leases (
    job         TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    epoch       INTEGER NOT NULL,
    acquired_at TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL
);
