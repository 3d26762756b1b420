-- An agency's own retry schedule: the seconds to wait after attempt 1, 2, ... (the last
-- entry repeats). NULL keeps the hub's doubling backoff (HUB_DELIVERY_BACKOFF_*), which is
-- what every agency registered before this migration had.
ALTER TABLE agency ADD COLUMN IF NOT EXISTS retry_schedule double precision[];
ALTER TABLE agency ADD CONSTRAINT agency_retry_schedule_shape CHECK (
    retry_schedule IS NULL
    OR (cardinality(retry_schedule) BETWEEN 1 AND 20 AND 0 < ALL (retry_schedule))
);
