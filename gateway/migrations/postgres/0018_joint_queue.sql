-- The joint-inspection index kept in the background (`[joint] index = "background"`): a commit
-- only appends its inspections' index facts here (one COPY); the indexer applies them in id
-- order, one instance at a time, and deletes what it applied.
CREATE TABLE joint_queue (
    id         BIGSERIAL   PRIMARY KEY,
    case_id    BIGINT      NOT NULL,               -- cases (id)
    removed    BOOLEAN     NOT NULL,               -- withdrawn, or no longer an indexed inspection
    target_id  TEXT        COLLATE "C",
    agency     TEXT        COLLATE "C",
    source_id  TEXT        COLLATE "C",
    check_date DATE,
    task_id    TEXT,
    queued_at  TIMESTAMPTZ NOT NULL
);
