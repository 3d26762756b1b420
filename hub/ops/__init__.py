"""Operations read-outs for the console: one overview of ingest, deliveries, incidents and
policy, and a redacted preview of what a delivery would send. It only reads; anything it
shows of a record passes `release()` first."""
