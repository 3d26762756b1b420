-- Due rows are found per agency only (issue 16). The global due index on (next_attempt_at)
-- let the planner answer one agency's claim ("up to N of agency A's due rows, oldest first")
-- by walking every agency's due rows in time order and filtering on agency_id: the table's
-- statistics cover all rows, delivered ones included, so a healthy agency with a long history
-- looks like most of the table, and the walk looks cheap. Measured on a scratch ledger with
-- 11,000 open rows of two disabled agencies and 300 of a healthy one (60,000 delivered): each
-- claim of the healthy agency read and dropped 10,497 rows of the others (6.9 ms; 0.56 ms
-- through delivery_agency_due_idx), so one agency's backlog slowed every other agency's
-- claims. The back-pressure and reconcile backlog (hub/delivery/repository/ledger.py,
-- `backlog`) now counts per active agency through delivery_agency_due_idx too, and nothing
-- else reads the global index; without it the claim cannot take that path, and each
-- ledger update maintains one index fewer.
SET LOCAL lock_timeout = '5s';

DROP INDEX IF EXISTS delivery_due_idx;
