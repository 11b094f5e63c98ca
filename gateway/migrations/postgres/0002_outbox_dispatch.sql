-- Outbox dispatch: the dispatcher claims a delivery only when no earlier version of the same case
-- is pending for the same sink (order per case). This partial index answers that question.
CREATE INDEX outbox_case_pending ON outbox (sink_id, case_id, version) WHERE status = 'pending';
