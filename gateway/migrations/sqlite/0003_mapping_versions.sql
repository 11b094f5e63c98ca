-- Mapping versions: each a self-contained bundle (mapping text + contents of every code table it
-- reads) with its test report, uploader and status. At most one active version per source.
CREATE TABLE mapping_versions (
    id           INTEGER PRIMARY KEY,
    source_id    TEXT    NOT NULL,
    mapping_id   TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    fingerprint  TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    file_name    TEXT    NOT NULL,
    mapping_toml TEXT    NOT NULL,
    code_tables  TEXT    NOT NULL,  -- JSON object: file name as written in the mapping -> contents
    status       TEXT    NOT NULL,  -- candidate | active | retired
    uploaded_by  TEXT    NOT NULL,
    uploaded_at  TEXT    NOT NULL,
    tests        TEXT    NOT NULL,  -- JSON: {"total","passed","failures":[{"name","problems"}]}
    activated_at TEXT,
    activated_by TEXT,
    retired_at   TEXT,
    UNIQUE (source_id, version)
);
CREATE UNIQUE INDEX mapping_versions_one_active ON mapping_versions (source_id) WHERE status = 'active';

-- Every activation (import at first start, activate, rollback), for the history.
CREATE TABLE mapping_activations (
    id               INTEGER PRIMARY KEY,
    source_id        TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    previous_version INTEGER,
    kind             TEXT    NOT NULL,  -- import | activate | rollback
    actor            TEXT    NOT NULL,
    at               TEXT    NOT NULL
);
CREATE INDEX mapping_activations_source ON mapping_activations (source_id, id);

-- The history of one subject (e.g. `source:nanchang-amr`) from the audit log.
CREATE INDEX audit_log_subject ON audit_log (subject, id);
