-- Operator API lookups: cases by their target's identifier (credit code or ID number), in any
-- version. An expression index over the canonical record, so the commit path is unchanged.
CREATE INDEX case_versions_target ON case_versions (json_extract(record, '$.target.id_number'), case_id);
