-- Reconciliation (对账): what the gateway did with each source's records, per source and
-- calendar day (China time), counted when a batch is committed (an atomic add, right with
-- several instances), and what each source said it holds for the day (its count query).
CREATE TABLE reconciliation_counts (
    source_id   TEXT COLLATE "C" NOT NULL,
    day         DATE   NOT NULL,  -- Asia/Shanghai
    received    BIGINT NOT NULL DEFAULT 0,
    accepted    BIGINT NOT NULL DEFAULT 0,  -- new cases, new versions, withdrawals
    unchanged   BIGINT NOT NULL DEFAULT 0,
    stale       BIGINT NOT NULL DEFAULT 0,
    quarantined BIGINT NOT NULL DEFAULT 0,
    replayed    BIGINT NOT NULL DEFAULT 0,  -- quarantined records replayed and accepted
    PRIMARY KEY (source_id, day)
);

CREATE TABLE reconciliation_claims (
    source_id     TEXT COLLATE "C" NOT NULL,
    day           DATE        NOT NULL,
    claimed       BIGINT,                -- what the source says it holds (NULL: the check failed)
    keys_listed   BOOLEAN     NOT NULL DEFAULT false,
    missing_count BIGINT      NOT NULL DEFAULT 0,
    missing_keys  JSONB       NOT NULL DEFAULT '[]',  -- at most 1000
    checked_at    TIMESTAMPTZ NOT NULL,
    error         TEXT,
    PRIMARY KEY (source_id, day)
);

-- Records received and quarantined per source and minute (UTC, `YYYY-MM-DDTHH:MM`), added with
-- the daily counts: the quarantine rate of the last N minutes without scanning the archive.
-- Rows older than two days are deleted by the alert evaluation.
CREATE TABLE intake_minutes (
    source_id   TEXT COLLATE "C" NOT NULL,
    minute      TEXT    NOT NULL,
    received    BIGINT  NOT NULL DEFAULT 0,
    quarantined BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (source_id, minute)
);

-- Alerts (告警): one firing row per (rule, subject) at a time, then resolved; the unique
-- partial index is what keeps instances from raising the same alert twice.
CREATE TABLE alerts (
    id               BIGSERIAL PRIMARY KEY,
    rule             TEXT        NOT NULL,
    subject          TEXT        NOT NULL,
    status           TEXT        NOT NULL,  -- firing | resolved
    severity         TEXT        NOT NULL,  -- warning | critical
    summary_zh       TEXT        NOT NULL,
    summary_en       TEXT        NOT NULL,
    value            TEXT        NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    last_seen_at     TIMESTAMPTZ NOT NULL,
    resolved_at      TIMESTAMPTZ,
    last_notified_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX alerts_firing ON alerts (rule, subject) WHERE status = 'firing';

-- Webhook messages of alerts: one per (alert, webhook, event), sent by one instance at a time.
CREATE TABLE alert_notifications (
    id              BIGSERIAL PRIMARY KEY,
    alert_id        BIGINT      NOT NULL REFERENCES alerts (id),
    webhook_id      TEXT        NOT NULL,
    event           TEXT        NOT NULL,  -- firing | repeat | resolved
    status          TEXT        NOT NULL DEFAULT 'pending',  -- pending | sent | dead
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ
);
CREATE INDEX alert_notifications_pending ON alert_notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_notifications_alert ON alert_notifications (alert_id);
