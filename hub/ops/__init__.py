"""Operations read-outs for the console: one overview of ingest, deliveries, incidents and
policy, and a delivery's metadata. Operators are not recipients: nothing here passes a
record through `release()` for them, so no record of an event is ever shown (ids and counts
only), and each look at a delivery is audited as a metadata view."""
