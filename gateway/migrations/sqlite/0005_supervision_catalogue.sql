-- The supervision-item catalogue (监管事项目录清单) pulled from the 互联网+监管 system, by year:
-- the normaliser's "清单之外无检查" rule checks inspections against it.
CREATE TABLE supervision_catalogue (
    year        INTEGER NOT NULL,
    item_code   TEXT    NOT NULL,
    name        TEXT    NOT NULL DEFAULT '',
    parent_code TEXT,
    active      INTEGER NOT NULL DEFAULT 1,
    source_id   TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (year, item_code)
);
