-- Publicity (双公示): one row per penalty case, kept by the commit from the case's current
-- version (decision date, the 7-working-day deadline, the publicity date the record gives) and
-- marked by publicity sinks' dispatchers (delivered: published_at; withheld: the reason).
CREATE TABLE penalty_publicity (
    case_id            BIGINT      PRIMARY KEY,  -- cases (id)
    unified_code       TEXT        COLLATE "C" NOT NULL,     -- found through cases (unified_code)
    agency_credit_code TEXT        COLLATE "C" NOT NULL,
    agency_name        TEXT        NOT NULL,
    source_id          TEXT        COLLATE "C" NOT NULL,
    version            INTEGER     NOT NULL,
    decision_date      DATE        NOT NULL,
    deadline           DATE,                     -- NULL: outside the holiday calendar
    publicity_date     DATE,                     -- as the record gives it
    published_at       TIMESTAMPTZ,              -- first delivery by a publicity sink
    published_on       DATE,                     -- that day in China
    published_sink     TEXT,
    withheld_reason    TEXT,
    withdrawn          BOOLEAN     NOT NULL DEFAULT FALSE,
    updated_at         TIMESTAMPTZ NOT NULL
);
-- Penalties not yet public (the overdue count of every metrics scrape).
CREATE INDEX penalty_publicity_open ON penalty_publicity (deadline)
    WHERE publicity_date IS NULL AND published_on IS NULL AND withheld_reason IS NULL AND NOT withdrawn;

-- Deliveries a publicity sink's rules withheld, counted per sink.
CREATE INDEX outbox_withheld ON outbox (sink_id) WHERE status = 'withheld';
