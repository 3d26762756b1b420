-- Deliveries are claimed in batches per agency (hub/delivery/repository.py, claim_batch):
-- "up to N due rows of agency A, oldest first, skipping rows another worker holds". The
-- global due index answers "what is due anywhere" (reconcile); this one answers the claim
-- without scanning other agencies' backlog, so a slow agency's million open rows cost a
-- healthy agency nothing. Expired leases (in_flight past next_attempt_at) are due as well:
-- that is how a batch held by a killed worker comes back.
CREATE INDEX delivery_agency_due_idx ON delivery (agency_id, next_attempt_at)
    WHERE status IN ('pending', 'retrying', 'in_flight');

-- A delivery keeps the trace of the request that created it: the batch that sends it runs
-- long after that request, among rows of many requests, and continues each row's own trace.
ALTER TABLE delivery ADD COLUMN traceparent text;
