-- Publicity (双公示): one row per penalty case, kept by the commit from the case's current
-- version (decision date, the 7-working-day deadline, the publicity date the record gives) and
-- marked by publicity sinks' dispatchers (delivered: published_at; withheld: the reason).
CREATE TABLE penalty_publicity (
    case_id            INTEGER     PRIMARY KEY,  -- cases (id)
    unified_code       TEXT        NOT NULL UNIQUE,
    agency_credit_code TEXT        NOT NULL,
    agency_name        TEXT        NOT NULL,
    source_id          TEXT        NOT NULL,
    version            INTEGER     NOT NULL,
    decision_date      TEXT        NOT NULL,     -- YYYY-MM-DD
    deadline           TEXT,                     -- NULL: outside the holiday calendar
    publicity_date     TEXT,                     -- as the record gives it
    published_at       TEXT,                     -- first delivery by a publicity sink
    published_on       TEXT,                     -- that day in China
    published_sink     TEXT,
    withheld_reason    TEXT,
    withdrawn          INTEGER     NOT NULL DEFAULT 0,
    updated_at         TEXT        NOT NULL
);
CREATE INDEX penalty_publicity_agency ON penalty_publicity (agency_credit_code, decision_date);
CREATE INDEX penalty_publicity_open ON penalty_publicity (deadline)
    WHERE publicity_date IS NULL AND published_on IS NULL AND withheld_reason IS NULL AND withdrawn = 0;

CREATE INDEX outbox_withheld ON outbox (sink_id) WHERE status = 'withheld';
