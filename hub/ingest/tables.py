"""Piccolo tables of ingest (schema, partitions and indexes in migrations/sql/).

Piccolo cannot express partitioning or a composite primary key; `id` is declared the key
here for reads, while the database's key is (id, captured_at). Hot-path writes are SQL in
repository.py.
"""

from piccolo.columns import JSONB, UUID, Array, BigInt, Bytea, Real, Text, Timestamptz
from piccolo.table import Table


class DetectionEvent(Table, tablename="detection_event"):
    """An accepted (or quarantined) detection event, partitioned by month of capture."""

    id = BigInt(primary_key=True)
    node_id = UUID()
    event_id = UUID()
    captured_at = Timestamptz()
    received_at = Timestamptz()
    camera_id = Text()
    classes = Array(base_column=Text())
    max_confidence = Real()
    media_sha256 = Array(base_column=Text())
    disposition = Text(default="accepted")
    content_sha256 = Bytea()
    payload = JSONB()


class MediaObject(Table, tablename="media_object"):
    """A snapshot or crop stored content-addressed."""

    sha256 = Text(primary_key=True)
    size_bytes = BigInt()
    content_type = Text()
    storage_path = Text()
    node_id = UUID(null=True, default=None)
    created_at = Timestamptz()
    # The hub's own scan (hub.media): NULL until it ran; a failed scan counts as none.
    scanned_at = Timestamptz(null=True, default=None)
    scanned_by = Text(null=True, default=None)
    scan_error = Text(null=True, default=None)
