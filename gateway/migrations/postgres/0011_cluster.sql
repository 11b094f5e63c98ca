-- Several gateway instances on one store: each instance heartbeats its row, and every scheduled
-- job (a REST/SOAP source, a catalogue, a drop folder) runs only on the holder of its lease. A
-- commit made for a job carries the lease's epoch and is refused once another instance holds a
-- newer one (fencing), so a paused or partitioned old holder cannot move a cursor back.
CREATE TABLE instances (
    id             TEXT        PRIMARY KEY,
    host           TEXT        NOT NULL,
    pid            INTEGER     NOT NULL,
    version        TEXT        NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    last_heartbeat TIMESTAMPTZ NOT NULL,
    committed      BIGINT      NOT NULL DEFAULT 0,
    stopped_at     TIMESTAMPTZ
);

CREATE TABLE job_leases (
    job         TEXT        PRIMARY KEY,
    holder      TEXT        NOT NULL,
    epoch       BIGINT      NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
