-- Fewer bytes and fewer index entries per committed record: on this machine class the store's
-- write rate is decided by the bytes written per record (see BENCHMARKS.md, `gateway ingest`).
--
-- The gateway now keeps the raw payload and the canonical record lz4-compressed (a size-prefixed
-- lz4 block, written and read by store/postgres.rs); rows written before keep their plain columns.
-- Reporting queries belong on the PostgreSQL sink's platform tables, one column per field.
ALTER TABLE raw_records ADD COLUMN payload_codec SMALLINT NOT NULL DEFAULT 0;  -- 0 plain, 1 lz4

ALTER TABLE case_versions ALTER COLUMN record DROP NOT NULL;
ALTER TABLE case_versions ADD COLUMN record_lz4 BYTEA;
ALTER TABLE case_versions ADD CONSTRAINT case_versions_record_present
    CHECK (record IS NOT NULL OR record_lz4 IS NOT NULL);

-- Cases by their target's identifier: a narrow column filled at commit instead of an expression
-- index over the jsonb record.
ALTER TABLE case_versions ADD COLUMN target_id TEXT COLLATE "C";
UPDATE case_versions SET target_id = record -> 'target' ->> 'id_number' WHERE record IS NOT NULL;
DROP INDEX case_versions_target;
CREATE INDEX case_versions_target ON case_versions (target_id, case_id);

-- A version is identified by (case_id, version); its surrogate id and that id's index served no
-- query.
ALTER TABLE case_versions DROP CONSTRAINT case_versions_pkey;
ALTER TABLE case_versions DROP COLUMN id;
ALTER TABLE case_versions DROP CONSTRAINT case_versions_case_id_version_key, ADD PRIMARY KEY (case_id, version);

-- Outbox: rows are unique by construction (one per sink and new version, written by one code
-- path in the version's transaction); the unique index on the idempotency key only cost writes.
-- Pending and dead rows get partial indexes, so a delivered row leaves every index but the
-- primary key.
ALTER TABLE outbox DROP CONSTRAINT outbox_sink_id_idempotency_key_key;
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (sink_id, id) WHERE status = 'pending';
CREATE INDEX outbox_dead ON outbox (sink_id, id) WHERE status = 'dead';

-- Identifiers compare byte by byte: with the database's collation (C.UTF-8, en_US.UTF-8,
-- zh_CN.UTF-8 ...) every B-tree comparison of these keys went through strcoll.
ALTER TABLE raw_records
    ALTER COLUMN source_id TYPE TEXT COLLATE "C",
    ALTER COLUMN content_hash TYPE TEXT COLLATE "C";
ALTER TABLE cases
    ALTER COLUMN unified_code TYPE TEXT COLLATE "C",
    ALTER COLUMN agency_credit_code TYPE TEXT COLLATE "C",
    ALTER COLUMN case_type TYPE TEXT COLLATE "C",
    ALTER COLUMN case_number TYPE TEXT COLLATE "C",
    ALTER COLUMN source_id TYPE TEXT COLLATE "C";
ALTER TABLE outbox ALTER COLUMN sink_id TYPE TEXT COLLATE "C";
ALTER TABLE quarantine ALTER COLUMN source_id TYPE TEXT COLLATE "C";
