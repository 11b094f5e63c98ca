-- No foreign keys on the hot tables (case_versions, quarantine, outbox): every row of a batch is
-- written in the same transaction as the rows it points to, by one code path (store::plan), and
-- rows are never deleted. Measured on this machine class, the foreign-key checks made version
-- inserts 3x and outbox inserts 4-6x slower (see BENCHMARKS.md). The SQLite store keeps them.

-- Raw archive: every payload received, once per (source, content hash).
CREATE TABLE raw_records (
    id               BIGSERIAL PRIMARY KEY,
    source_id        TEXT        NOT NULL,
    record_key       TEXT        NOT NULL,
    content_hash     TEXT        NOT NULL,
    format           TEXT        NOT NULL,
    received_at      TIMESTAMPTZ NOT NULL,
    last_received_at TIMESTAMPTZ NOT NULL,
    times_received   INTEGER     NOT NULL DEFAULT 1,
    payload          BYTEA       NOT NULL,
    UNIQUE (source_id, content_hash)
);
CREATE INDEX raw_records_source ON raw_records (source_id, id);

-- Unified-code sequences per (case type, year, region).
CREATE TABLE code_counters (
    case_type TEXT    NOT NULL,
    year      INTEGER NOT NULL,
    region    TEXT    NOT NULL,
    last_seq  INTEGER NOT NULL,
    PRIMARY KEY (case_type, year, region)
);

-- Cases: one row per business key, with its never-changing unified code.
CREATE TABLE cases (
    id                 BIGSERIAL PRIMARY KEY,
    unified_code       TEXT        NOT NULL UNIQUE,
    agency_credit_code TEXT        NOT NULL,
    case_type          TEXT        NOT NULL,
    case_number        TEXT        NOT NULL,
    year               INTEGER     NOT NULL,
    region             TEXT        NOT NULL,
    current_version    INTEGER     NOT NULL,
    record_hash        TEXT        NOT NULL,
    withdrawn          BOOLEAN     NOT NULL DEFAULT FALSE,
    source_id          TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    UNIQUE (agency_credit_code, case_type, case_number)
);
CREATE INDEX cases_source ON cases (source_id, id);

-- Every version of a case with its lineage (raw record, mapping version).
CREATE TABLE case_versions (
    id              BIGSERIAL PRIMARY KEY,
    case_id         BIGINT      NOT NULL,  -- cases (id)
    version         INTEGER     NOT NULL,
    status          TEXT        NOT NULL,
    raw_id          BIGINT      NOT NULL,  -- raw_records (id)
    mapping_id      TEXT        NOT NULL,
    mapping_version BIGINT      NOT NULL,
    record_hash     TEXT        NOT NULL,
    record          JSONB       NOT NULL,
    warnings        JSONB       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (case_id, version)
);

-- Records that failed validation, with every violation.
CREATE TABLE quarantine (
    id              BIGSERIAL PRIMARY KEY,
    raw_id          BIGINT      NOT NULL,  -- raw_records (id)
    source_id       TEXT        NOT NULL,
    record_key      TEXT        NOT NULL,
    status          TEXT        NOT NULL,
    violations      JSONB       NOT NULL,
    rules           TEXT[]      NOT NULL,
    mapping_id      TEXT        NOT NULL,
    mapping_version BIGINT      NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    note            TEXT
);
CREATE UNIQUE INDEX quarantine_open_raw ON quarantine (raw_id) WHERE status = 'open';
CREATE INDEX quarantine_source ON quarantine (source_id, status, id);
CREATE INDEX quarantine_rules ON quarantine USING GIN (rules);

-- Deliveries onward: one row per (sink, case version).
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    sink_id         TEXT        NOT NULL,
    case_id         BIGINT      NOT NULL,  -- cases (id)
    version         INTEGER     NOT NULL,
    idempotency_key TEXT        NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending',
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    UNIQUE (sink_id, idempotency_key)
);
CREATE INDEX outbox_pending ON outbox (sink_id, status, id);

-- Source watermarks.
CREATE TABLE source_cursors (
    source_id  TEXT PRIMARY KEY,
    cursor     TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Who did what, when.
CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL,
    actor   TEXT        NOT NULL,
    action  TEXT        NOT NULL,
    subject TEXT        NOT NULL,
    detail  JSONB       NOT NULL
);
