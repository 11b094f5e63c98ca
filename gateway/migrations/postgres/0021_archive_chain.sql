-- Evidence-grade raw archive (issue 27): each NEW raw row of a source is one link of that source's
-- hash chain (docs/archive.md). Rows archived before this migration keep NULL links: each chain
-- starts at its source's first row archived after it.
ALTER TABLE raw_records
    ADD COLUMN chain_seq  BIGINT,    -- position in the source's chain, from 1
    ADD COLUMN chain_alg  SMALLINT,  -- 1 sm3, 2 sha256
    ADD COLUMN chain_hash BYTEA;     -- the link's hash
-- One link per position: two writers can never fork a chain, even past the head lock.
CREATE UNIQUE INDEX raw_records_chain ON raw_records (source_id, chain_seq) WHERE chain_seq IS NOT NULL;

-- Each source's last link; its row is locked (FOR UPDATE) by every commit that archives a new
-- payload of the source, so the instances append to one chain in turn.
CREATE TABLE archive_chain_heads (
    source_id  TEXT PRIMARY KEY,
    seq        BIGINT      NOT NULL DEFAULT 0,
    head_hash  BYTEA       NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Signed statements of the chain heads.
CREATE TABLE archive_checkpoints (
    id         BIGSERIAL PRIMARY KEY,
    signed_at  TIMESTAMPTZ NOT NULL,
    instance   TEXT        NOT NULL,
    algorithm  TEXT        NOT NULL,
    public_key TEXT        NOT NULL,
    statement  TEXT        NOT NULL,
    signature  BYTEA       NOT NULL
);
-- The heads each checkpoint states, to find the first checkpoint covering a link.
CREATE TABLE archive_checkpoint_heads (
    checkpoint_id BIGINT NOT NULL,  -- archive_checkpoints (id)
    source_id     TEXT   NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (source_id, seq, checkpoint_id)
);

-- What each external witness has acknowledged.
CREATE TABLE archive_witnesses (
    name              TEXT PRIMARY KEY,
    delivered_through BIGINT  NOT NULL DEFAULT 0,
    failures          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
