-- Joint inspections (联合检查相似度比对、合并): the current, not withdrawn inspection cases by
-- target (written in every commit's transaction), the groups found among them, and the joint
-- records of merged groups on their way to the sinks.
CREATE TABLE joint_members (
    case_id    INTEGER PRIMARY KEY REFERENCES cases (id),
    target_id  TEXT    NOT NULL,
    agency     TEXT    NOT NULL,
    source_id  TEXT    NOT NULL,
    check_date TEXT    NOT NULL,
    task_id    TEXT,
    group_id   INTEGER
);
CREATE INDEX joint_members_target ON joint_members (target_id);
CREATE INDEX joint_members_group ON joint_members (group_id) WHERE group_id IS NOT NULL;

CREATE TABLE joint_groups (
    id            INTEGER PRIMARY KEY,
    target_id     TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    task_id       TEXT,
    members       TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'candidate',
    decision      TEXT,
    previous      TEXT,
    joint_record  TEXT,
    joint_version INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);
CREATE INDEX joint_groups_target ON joint_groups (target_id);
CREATE INDEX joint_groups_status ON joint_groups (status, id);

-- Deliveries of joint records: one row per (sink, joint record version), like `outbox`.
CREATE TABLE joint_outbox (
    id              INTEGER PRIMARY KEY,
    sink_id         TEXT    NOT NULL,
    group_id        INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    idempotency_key TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    withdrawn       INTEGER NOT NULL,
    record          TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    delivered_at    TEXT,
    UNIQUE (sink_id, idempotency_key)
);
CREATE INDEX joint_outbox_pending ON joint_outbox (sink_id, id) WHERE status = 'pending';
