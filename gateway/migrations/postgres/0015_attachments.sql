-- Evidence attachments (证据附件). Each file is stored once in the object store under
-- `sha256/<hash>`; `attachment_objects` says what is there. `case_attachments` lists the
-- attachments of each case version (position = index in the record's `attachments`), where each
-- came from (origin url | inline | file, and the URL or file path), and its fetch state:
-- pending (due at next_try_at, retried with backoff) -> stored | failed (out of attempts) |
-- refused (over a limit or of a media type not allowed). A fetcher claims due rows with
-- FOR UPDATE SKIP LOCKED and holds them until lease_until.
CREATE TABLE attachment_objects (
    sha256      TEXT        PRIMARY KEY,
    bytes       BIGINT      NOT NULL,
    media_type  TEXT        NOT NULL,
    storage_key TEXT        NOT NULL,
    first_seen  TIMESTAMPTZ NOT NULL
);

CREATE TABLE case_attachments (
    id               BIGSERIAL   PRIMARY KEY,
    unified_code     TEXT        NOT NULL,
    version          INTEGER     NOT NULL,
    position         INTEGER     NOT NULL,
    source_id        TEXT        NOT NULL,
    kind             TEXT        NOT NULL,
    title            TEXT,
    file_name        TEXT,
    media_type       TEXT,
    captured_at      TEXT,
    duration_seconds DOUBLE PRECISION,
    origin           TEXT        NOT NULL,
    origin_ref       TEXT        NOT NULL,
    optional         BOOLEAN     NOT NULL,
    status           TEXT        NOT NULL,
    attempts         INTEGER     NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_try_at      TIMESTAMPTZ NOT NULL,
    lease_until      TIMESTAMPTZ,
    sha256           TEXT,
    bytes            BIGINT,
    created_at       TIMESTAMPTZ NOT NULL,
    stored_at        TIMESTAMPTZ,
    UNIQUE (unified_code, version, position)
);
CREATE INDEX case_attachments_due ON case_attachments (next_try_at) WHERE status = 'pending';
CREATE INDEX case_attachments_sha256 ON case_attachments (sha256);
