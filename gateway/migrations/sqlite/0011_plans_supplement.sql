-- Inspection plans are kept as records of kind `plan` in `cases`: the plan numbers that
-- 双随机 inspections name (`rule.plan_unknown`) are read by this index.
CREATE INDEX cases_plan_numbers ON cases (case_number) WHERE case_type = 'plan';

-- Cases awaiting supplement (待补录): one row per case whose current version lacks fields its
-- source cannot supply; written by the commit, listed per department.
CREATE TABLE awaiting_supplement (
    case_id            INTEGER     PRIMARY KEY,  -- cases (id)
    unified_code       TEXT        NOT NULL,
    agency_credit_code TEXT        NOT NULL,
    case_type          TEXT        NOT NULL,
    case_number        TEXT        NOT NULL,
    source_id          TEXT        NOT NULL,
    fields             TEXT        NOT NULL,  -- JSON array of pointers
    since              TEXT        NOT NULL,
    updated_at         TEXT        NOT NULL
);
CREATE INDEX awaiting_supplement_agency ON awaiting_supplement (agency_credit_code, since);
CREATE INDEX awaiting_supplement_source ON awaiting_supplement (source_id, since);

-- Values departments supplied for fields awaiting supplement, with the version they became.
CREATE TABLE case_supplements (
    id           INTEGER     PRIMARY KEY,
    case_id      INTEGER     NOT NULL,  -- cases (id)
    unified_code TEXT        NOT NULL,
    business_key TEXT        NOT NULL,
    pointer      TEXT        NOT NULL,
    value        TEXT        NOT NULL,  -- JSON
    version      INTEGER     NOT NULL,
    actor        TEXT        NOT NULL,
    created_at   TEXT        NOT NULL
);
CREATE INDEX case_supplements_case ON case_supplements (unified_code, id);
