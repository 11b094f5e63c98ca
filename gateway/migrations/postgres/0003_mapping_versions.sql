-- Mapping versions: each a self-contained bundle (mapping text + contents of every code table it
-- reads) with its test report, uploader and status. At most one active version per source: the
-- unique partial index is the last guard; activations also serialise per source on an advisory
-- lock (see store/mappings_postgres.rs).
CREATE TABLE mapping_versions (
    id           BIGSERIAL   PRIMARY KEY,
    source_id    TEXT        NOT NULL,
    mapping_id   TEXT        NOT NULL,
    version      BIGINT      NOT NULL,
    fingerprint  TEXT        NOT NULL,
    description  TEXT        NOT NULL,
    file_name    TEXT        NOT NULL,
    mapping_toml TEXT        NOT NULL,
    code_tables  JSONB       NOT NULL,  -- file name as written in the mapping -> contents
    status       TEXT        NOT NULL,  -- candidate | active | retired
    uploaded_by  TEXT        NOT NULL,
    uploaded_at  TIMESTAMPTZ NOT NULL,
    tests        JSONB       NOT NULL,  -- {"total","passed","failures":[{"name","problems"}]}
    activated_at TIMESTAMPTZ,
    activated_by TEXT,
    retired_at   TIMESTAMPTZ,
    UNIQUE (source_id, version)
);
CREATE UNIQUE INDEX mapping_versions_one_active ON mapping_versions (source_id) WHERE status = 'active';

-- Every activation (import at first start, activate, rollback), for the history.
CREATE TABLE mapping_activations (
    id               BIGSERIAL   PRIMARY KEY,
    source_id        TEXT        NOT NULL,
    version          BIGINT      NOT NULL,
    previous_version BIGINT,
    kind             TEXT        NOT NULL,  -- import | activate | rollback
    actor            TEXT        NOT NULL,
    at               TIMESTAMPTZ NOT NULL
);
CREATE INDEX mapping_activations_source ON mapping_activations (source_id, id);

-- The history of one subject (e.g. `source:nanchang-amr`) from the audit log.
CREATE INDEX audit_log_subject ON audit_log (subject, id);
