-- The officer registry (执法人员名录): each agency's current list, and every load of it as a
-- version with what changed. The normaliser's officer rules check records against it.
CREATE TABLE officer_registry_versions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    agency_credit_code TEXT    NOT NULL,
    version            INTEGER NOT NULL,
    loaded_at          TEXT    NOT NULL,
    loaded_by          TEXT    NOT NULL,
    origin             TEXT    NOT NULL DEFAULT '',
    officers           INTEGER NOT NULL,
    added              INTEGER NOT NULL,
    removed            INTEGER NOT NULL,
    changed            INTEGER NOT NULL,
    UNIQUE (agency_credit_code, version)
);

CREATE TABLE officers (
    agency_credit_code TEXT    NOT NULL,
    cert_no            TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    valid_from         TEXT,
    valid_to           TEXT,
    status             TEXT    NOT NULL,
    version            INTEGER NOT NULL,
    PRIMARY KEY (agency_credit_code, cert_no)
);

-- Catalogue items may apply to one agency or region only (scope) and belong to a domain (领域),
-- for the name look-up and the domains exempt from the random-inspection model.
ALTER TABLE supervision_catalogue ADD COLUMN scope TEXT;
ALTER TABLE supervision_catalogue ADD COLUMN domain TEXT;
