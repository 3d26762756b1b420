"""The edge's durable queue: events and snapshots in SQLite (WAL, synchronous=FULL).

A write returns only after its transaction is on disk, so a kill -9 or a power cut loses
nothing that was reported written. An event leaves only when the hub answered accepted (or
duplicate); a rejected one is kept aside with the reason. The spool is bounded by the bytes
it holds; when full, the eviction policy decides what goes:

- `oldest`: the oldest events (and their snapshots) first;
- `media-first`: snapshots not yet uploaded first (their events go without them), then events;
- `refuse-new`: nothing is dropped, the new event is refused.

Rejected events are always dropped first, and an event whose snapshot is already on the hub is
never evicted (the hub would hold a snapshot no event explains).
"""

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from hub.contracts.detection_v1 import DetectionEvent, MediaRef

Eviction = Literal["oldest", "media-first", "refuse-new"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    not_before REAL NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS event_state ON event (state, seq);
CREATE TABLE IF NOT EXISTS media (
    sha256 TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    content_type TEXT NOT NULL,
    created REAL NOT NULL,
    uploaded INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    redacted TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS event_media (
    event_seq INTEGER NOT NULL REFERENCES event (seq) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (event_seq, sha256)
);
CREATE INDEX IF NOT EXISTS event_media_sha ON event_media (sha256);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
COUNTERS = ("bytes", "written", "sent", "rejected", "evicted_events", "evicted_media", "refused")


class SpoolFullError(RuntimeError):
    """The spool is full and its policy keeps what it holds."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Image bytes to keep with an event, addressed by their SHA-256."""

    sha256: str
    data: bytes
    kind: Literal["snapshot", "crop"] = "snapshot"
    content_type: Literal["image/jpeg", "image/png"] = "image/jpeg"
    # Classes burned into the image before it was stored (redaction at the source).
    redacted_classes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PendingMedia:
    """A snapshot to upload before the events that refer to it."""

    sha256: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A spooled event ready to send: its sequence number and the event with its media."""

    seq: int
    event: DetectionEvent


class SpoolStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Depth, age and totals (the spool's metrics)."""

    pending: int
    rejected: int
    media: int
    media_uploaded: int
    bytes: int
    max_bytes: int
    oldest_pending_age: float | None
    written: int
    sent: int
    rejected_total: int
    evicted_events: int
    evicted_media: int
    refused: int
    rejections: list[tuple[str, str]]  # (event_id, reason) of the latest rejected events


class Spool:
    """One SQLite file; safe to share between threads (one connection, one lock)."""

    def __init__(self, path: Path, *, max_bytes: int, eviction: Eviction = "oldest") -> None:
        """Open (creating if needed) the spool at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.eviction = eviction
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # durable at commit, also on power loss
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(SCHEMA)
        _add_missing_columns(self._db)
        with self._transaction() as db:
            for name in COUNTERS:
                db.execute("INSERT OR IGNORE INTO counter VALUES (?, 0)", (name,))

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def put(self, event: DetectionEvent, snapshots: Sequence[Snapshot] = ()) -> None:
        """Store an event and its snapshots durably; SpoolFullError if the policy refuses."""
        body = msgspec.json.encode(msgspec.structs.replace(event, media=[]))
        now = time.time()
        with self._transaction() as db:
            fresh = {s.sha256: len(s.data) for s in snapshots if not _exists(db, s.sha256)}
            needed = len(body) + sum(fresh.values())
            room = self._make_room(db, needed)
            if room:
                self._insert(db, event, body, snapshots, now=now)
                _bump(db, "bytes", needed)
                _bump(db, "written", 1)
            else:
                _bump(db, "refused", 1)
        if not room:
            raise SpoolFullError(f"spool full ({self.max_bytes} bytes, {self.eviction})")

    @staticmethod
    def _insert(
        db: sqlite3.Connection,
        event: DetectionEvent,
        body: bytes,
        snapshots: Sequence[Snapshot],
        *,
        now: float,
    ) -> None:
        cursor = db.execute(
            "INSERT INTO event (event_id, body, created, size) VALUES (?, ?, ?, ?)",
            (str(event.event_id), body, now, len(body)),
        )
        for position, snap in enumerate(snapshots):
            db.execute(
                "INSERT OR IGNORE INTO media (sha256, body, content_type, created, size, redacted)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    snap.sha256,
                    snap.data,
                    snap.content_type,
                    now,
                    len(snap.data),
                    ",".join(snap.redacted_classes),
                ),
            )
            db.execute(
                "INSERT OR IGNORE INTO event_media VALUES (?, ?, ?, ?)",
                (cursor.lastrowid, snap.sha256, snap.kind, position),
            )

    def next_batch(self, limit: int, *, now: float | None = None) -> list[PendingEvent]:
        """The oldest pending events that are due, with the refs of their stored snapshots."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body FROM event WHERE state = 'pending' AND not_before <= ?"
                " ORDER BY seq LIMIT ?",
                (now, limit),
            ).fetchall()
            pending = []
            for seq, body in rows:
                refs = self._db.execute(
                    "SELECT em.sha256, em.kind, m.content_type, m.redacted FROM event_media em"
                    " JOIN media m ON m.sha256 = em.sha256 WHERE em.event_seq = ?"
                    " ORDER BY em.position",
                    (seq,),
                ).fetchall()
                event = msgspec.json.decode(body, type=DetectionEvent)
                media = [media_ref(*ref) for ref in refs]
                pending.append(PendingEvent(seq, msgspec.structs.replace(event, media=media)))
        return pending

    def media_to_upload(self, seqs: Sequence[int]) -> list[PendingMedia]:
        """Snapshots of these events that the hub does not have yet."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT m.sha256, m.content_type, m.body FROM media m"
                " JOIN event_media em ON em.sha256 = m.sha256"
                " WHERE m.uploaded = 0 AND em.event_seq IN (SELECT value FROM json_each(?))",
                (msgspec.json.encode(list(seqs)).decode(),),
            ).fetchall()
        return [PendingMedia(sha, content_type, bytes(data)) for sha, content_type, data in rows]

    def mark_media_uploaded(self, sha256: str) -> None:
        """The hub holds this snapshot: keep its events from eviction."""
        with self._transaction() as db:
            db.execute("UPDATE media SET uploaded = 1 WHERE sha256 = ?", (sha256,))

    def drop_media(self, sha256: str) -> None:
        """Forget a snapshot the hub refuses for good; its events go without it."""
        with self._transaction() as db:
            _delete_media(db, sha256)

    def settle(
        self,
        *,
        done: Sequence[int],
        rejected: Sequence[tuple[int, str]] = (),
        retry_later: Sequence[tuple[int, float]] = (),
    ) -> None:
        """Apply the hub's answers: drop `done`, set aside `rejected`, delay `retry_later`."""
        with self._transaction() as db:
            for seq in done:
                _delete_event(db, seq)
            for seq, reason in rejected:
                db.execute(
                    "UPDATE event SET state = 'rejected', reason = ? WHERE seq = ?", (reason, seq)
                )
            for seq, not_before in retry_later:
                db.execute("UPDATE event SET not_before = ? WHERE seq = ?", (not_before, seq))
            _bump(db, "sent", len(done))
            _bump(db, "rejected", len(rejected))

    def pending(self) -> int:
        """Events waiting to be sent (reported to the hub as `Hub-Spool-Depth`)."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM event WHERE state = 'pending'").fetchone()
        return int(row[0])

    def status(self, *, latest_rejections: int = 10) -> SpoolStatus:
        """Depth, age, size and totals."""
        with self._lock:
            db = self._db
            counts = dict(db.execute("SELECT state, COUNT(*) FROM event GROUP BY state"))
            media, uploaded = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(uploaded), 0) FROM media"
            ).fetchone()
            oldest = db.execute("SELECT MIN(created) FROM event WHERE state = 'pending'")
            oldest_created = oldest.fetchone()[0]
            totals = dict(db.execute("SELECT name, value FROM counter"))
            rejections = db.execute(
                "SELECT event_id, reason FROM event WHERE state = 'rejected'"
                " ORDER BY seq DESC LIMIT ?",
                (latest_rejections,),
            ).fetchall()
        age = None if oldest_created is None else max(time.time() - oldest_created, 0.0)
        return SpoolStatus(
            pending=counts.get("pending", 0),
            rejected=counts.get("rejected", 0),
            media=media,
            media_uploaded=uploaded,
            bytes=totals["bytes"],
            max_bytes=self.max_bytes,
            oldest_pending_age=age,
            written=totals["written"],
            sent=totals["sent"],
            rejected_total=totals["rejected"],
            evicted_events=totals["evicted_events"],
            evicted_media=totals["evicted_media"],
            refused=totals["refused"],
            rejections=[(str(e), str(r)) for e, r in rejections],
        )

    def _make_room(self, db: sqlite3.Connection, needed: int) -> bool:
        """Evict per policy until `needed` more bytes fit; False if they cannot."""
        if needed > self.max_bytes:
            return False
        while _value(db, "bytes") + needed > self.max_bytes:
            if not self._evict_one(db):
                return False
        return True

    def _evict_one(self, db: sqlite3.Connection) -> bool:
        row = db.execute("SELECT seq FROM event WHERE state = 'rejected' ORDER BY seq LIMIT 1")
        found = row.fetchone()
        if found is not None:
            _delete_event(db, found[0])
            return True
        if self.eviction == "refuse-new":
            return False
        if self.eviction == "media-first":
            row = db.execute("SELECT sha256 FROM media WHERE uploaded = 0 ORDER BY created LIMIT 1")
            media = row.fetchone()
            if media is not None:
                _delete_media(db, media[0])
                _bump(db, "evicted_media", 1)
                return True
        row = db.execute(
            "SELECT e.seq FROM event e WHERE e.state = 'pending' AND NOT EXISTS ("
            " SELECT 1 FROM event_media em JOIN media m ON m.sha256 = em.sha256"
            " WHERE em.event_seq = e.seq AND m.uploaded = 1) ORDER BY e.seq LIMIT 1"
        )
        victim = row.fetchone()
        if victim is None:
            return False
        _delete_event(db, victim[0])
        _bump(db, "evicted_events", 1)
        return True


def _exists(db: sqlite3.Connection, sha256: str) -> bool:
    return db.execute("SELECT 1 FROM media WHERE sha256 = ?", (sha256,)).fetchone() is not None


def _value(db: sqlite3.Connection, name: str) -> int:
    return int(db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()[0])


def _bump(db: sqlite3.Connection, name: str, amount: int) -> None:
    db.execute("UPDATE counter SET value = value + ? WHERE name = ?", (amount, name))


def _delete_event(db: sqlite3.Connection, seq: int) -> None:
    """Delete an event, then every snapshot no remaining event refers to."""
    size = db.execute("SELECT size FROM event WHERE seq = ?", (seq,)).fetchone()
    if size is None:
        return
    shas = [r[0] for r in db.execute("SELECT sha256 FROM event_media WHERE event_seq = ?", (seq,))]
    db.execute("DELETE FROM event WHERE seq = ?", (seq,))  # cascades to event_media
    _bump(db, "bytes", -size[0])
    for sha in shas:
        if db.execute("SELECT 1 FROM event_media WHERE sha256 = ?", (sha,)).fetchone() is None:
            _delete_media(db, sha)


def _delete_media(db: sqlite3.Connection, sha256: str) -> None:
    size = db.execute("SELECT size FROM media WHERE sha256 = ?", (sha256,)).fetchone()
    db.execute("DELETE FROM event_media WHERE sha256 = ?", (sha256,))
    if size is not None:
        db.execute("DELETE FROM media WHERE sha256 = ?", (sha256,))
        _bump(db, "bytes", -size[0])


def media_ref(sha256: str, kind: str, content_type: str, redacted: str) -> MediaRef:
    """The contract's reference to a stored snapshot; `redacted_classes` only when the image
    had classes burned in (so events without it keep their canonical form)."""
    ref = msgspec.convert({"sha256": sha256, "kind": kind, "content_type": content_type}, MediaRef)
    if redacted:
        ref = msgspec.structs.replace(ref, redacted_classes=redacted.split(","))
    return ref


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Bring a spool written by an older agent up to the current schema (in place)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(media)")}
    if "redacted" not in columns:
        db.execute("ALTER TABLE media ADD COLUMN redacted TEXT NOT NULL DEFAULT ''")
