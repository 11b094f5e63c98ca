-- Evidence-grade raw archive (issue 27): each NEW raw row of a source is one link of that source's
-- hash chain (docs/archive.md). Rows archived before this migration keep NULL links: each chain
-- starts at its source's first row archived after it.
ALTER TABLE raw_records ADD COLUMN chain_seq INTEGER;   -- position in the source's chain, from 1
ALTER TABLE raw_records ADD COLUMN chain_alg INTEGER;   -- 1 sm3, 2 sha256
ALTER TABLE raw_records ADD COLUMN chain_hash BLOB;     -- the link's hash
CREATE UNIQUE INDEX raw_records_chain ON raw_records (source_id, chain_seq) WHERE chain_seq IS NOT NULL;

-- Each source's last link (SQLite commits one writer at a time).
CREATE TABLE archive_chain_heads (
    source_id  TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL DEFAULT 0,
    head_hash  BLOB    NOT NULL,
    updated_at TEXT    NOT NULL
);

-- Signed statements of the chain heads.
CREATE TABLE archive_checkpoints (
    id         INTEGER PRIMARY KEY,
    signed_at  TEXT NOT NULL,
    instance   TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    public_key TEXT NOT NULL,
    statement  TEXT NOT NULL,
    signature  BLOB NOT NULL
);
CREATE TABLE archive_checkpoint_heads (
    checkpoint_id INTEGER NOT NULL REFERENCES archive_checkpoints (id),
    source_id     TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    PRIMARY KEY (source_id, seq, checkpoint_id)
);

-- What each external witness has acknowledged.
CREATE TABLE archive_witnesses (
    name              TEXT PRIMARY KEY,
    delivered_through INTEGER NOT NULL DEFAULT 0,
    failures          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    updated_at        TEXT    NOT NULL
);
