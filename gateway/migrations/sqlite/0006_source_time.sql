-- Versions of a case are ordered by the source's own time when the mapping names it
-- (`source_updated_at`): the head keeps its source time, and a record older than the head is
-- kept in its own table for the case's lineage: never the head, never delivered onward.
ALTER TABLE cases ADD COLUMN source_updated_at TEXT;

CREATE TABLE stale_versions (
    id                INTEGER PRIMARY KEY,
    case_id           INTEGER NOT NULL REFERENCES cases (id),
    head_version      INTEGER NOT NULL,  -- the newer version that was the head on arrival
    raw_id            INTEGER NOT NULL REFERENCES raw_records (id),
    mapping_id        TEXT    NOT NULL,
    mapping_version   INTEGER NOT NULL,
    record_hash       TEXT    NOT NULL,
    record            TEXT    NOT NULL,
    source_updated_at TEXT,
    warnings          TEXT    NOT NULL,
    created_at        TEXT    NOT NULL
);
CREATE INDEX stale_versions_case ON stale_versions (case_id, id);

-- Open entries by their record at the source: an accepted later record of the same source and
-- key marks them superseded.
CREATE INDEX quarantine_open_key ON quarantine (source_id, record_key) WHERE status = 'open';

-- Delivery counts without scanning the outbox: pending, dead and superseded rows are counted
-- through partial indexes (small sets); delivered rows, which only grow, are counted when they
-- are settled.
CREATE INDEX outbox_dead ON outbox (sink_id, id) WHERE status = 'dead';
CREATE INDEX outbox_superseded ON outbox (sink_id, id) WHERE status = 'superseded';
CREATE TABLE outbox_delivered (
    sink_id   TEXT    PRIMARY KEY,
    delivered INTEGER NOT NULL
);
INSERT INTO outbox_delivered (sink_id, delivered)
SELECT sink_id, count(*) FROM outbox WHERE status = 'delivered' GROUP BY sink_id;

-- Cases by the agency's case number alone (a clerk often has only the legacy number).
CREATE INDEX cases_number ON cases (case_number);
