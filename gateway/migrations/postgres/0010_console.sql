-- The operator console: a rejected record is found by what the mapping could read from it (case
-- number, target name and identifier), a resolved entry names the case version it became, and
-- a record's fate is found from its archive row (versions, stale versions and entries by raw id).
ALTER TABLE quarantine ADD COLUMN case_number TEXT;
ALTER TABLE quarantine ADD COLUMN target_name TEXT;
ALTER TABLE quarantine ADD COLUMN target_id TEXT;
ALTER TABLE quarantine ADD COLUMN resolved_code TEXT;
ALTER TABLE quarantine ADD COLUMN resolved_version INTEGER;
CREATE INDEX quarantine_case_number ON quarantine (case_number) WHERE case_number IS NOT NULL;
CREATE INDEX quarantine_target_id ON quarantine (target_id) WHERE target_id IS NOT NULL;
CREATE INDEX quarantine_record_key ON quarantine (record_key);
CREATE INDEX quarantine_raw ON quarantine (raw_id);
CREATE INDEX case_versions_raw ON case_versions (raw_id);
CREATE INDEX stale_versions_raw ON stale_versions (raw_id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
