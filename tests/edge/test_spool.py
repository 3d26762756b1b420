"""The SQLite spool: durable across kill -9, bounded, and evicting by policy."""

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.spool import Snapshot, Spool, SpoolFullError
from hub.contracts.detection_v1 import BoundingBox, Detection, DetectionEvent
from tests.support import repo_root


def make_event(number: int = 0) -> DetectionEvent:
    return DetectionEvent(
        event_id=uuid.uuid4(),
        camera_id="cam-1",
        captured_at=datetime.now(UTC),
        model_name="test",
        model_version=str(number),
        detections=[
            Detection(
                label="person", confidence=0.9, box=BoundingBox(x=0.1, y=0.1, width=0.2, height=0.3)
            )
        ],
    )


def snap(tag: str, size: int = 1000) -> Snapshot:
    data = tag.encode().ljust(size, b".")
    import hashlib

    return Snapshot(sha256=hashlib.sha256(data).hexdigest(), data=data)


def test_events_come_back_in_order_with_their_media(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=10**6)
    shot = snap("a")
    first, second = make_event(1), make_event(2)
    spool.put(first, [shot])
    spool.put(second, [shot])  # the same snapshot, stored once
    pending = spool.next_batch(10)
    assert [p.event.event_id for p in pending] == [first.event_id, second.event_id]
    assert [m.sha256 for m in pending[0].event.media] == [shot.sha256]
    assert [m.sha256 for m in spool.media_to_upload([pending[0].seq])] == [shot.sha256]
    spool.mark_media_uploaded(shot.sha256)
    assert spool.media_to_upload([p.seq for p in pending]) == []
    spool.settle(done=[pending[0].seq], rejected=[(pending[1].seq, "dropped by policy")])
    status = spool.status()
    assert (status.pending, status.rejected, status.sent, status.media) == (0, 1, 1, 1)
    assert status.rejections == [(str(second.event_id), "dropped by policy")]
    spool.close()


def test_settled_events_free_their_bytes_and_snapshots(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=10**6)
    spool.put(make_event(), [snap("x")])
    (pending,) = spool.next_batch(10)
    spool.settle(done=[pending.seq])
    status = spool.status()
    assert (status.bytes, status.media, status.pending) == (0, 0, 0)
    spool.close()


def test_oldest_are_evicted_first_and_rejected_before_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=5000, eviction="oldest")
    events = [make_event(n) for n in range(4)]
    for event in events[:3]:
        spool.put(event, [snap(str(event.event_id), 1200)])
    rejected = spool.next_batch(1)[0]
    spool.settle(done=[], rejected=[(rejected.seq, "bad")])
    spool.put(events[3], [snap("new", 1200)])  # the rejected one makes room
    assert spool.status().rejected == 0
    spool.put(make_event(9), [snap("newer", 1200)])  # now the oldest pending one goes
    kept = [p.event.event_id for p in spool.next_batch(10)]
    assert events[1].event_id not in kept
    assert kept[:2] == [events[2].event_id, events[3].event_id]
    assert spool.status().evicted_events == 1
    assert spool.status().bytes <= 5000
    spool.close()


def test_an_event_whose_snapshot_is_on_the_hub_is_never_evicted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=3000, eviction="oldest")
    protected = make_event(1)
    shot = snap("uploaded", 1200)
    spool.put(protected, [shot])
    spool.mark_media_uploaded(shot.sha256)
    spool.put(make_event(2), [snap("b", 1200)])
    spool.put(make_event(3), [snap("c", 1200)])  # evicts event 2, not the protected one
    ids = [p.event.event_id for p in spool.next_batch(10)]
    assert ids[0] == protected.event_id
    with pytest.raises(SpoolFullError):
        spool.put(make_event(4), [snap("d", 2500)])
    spool.close()


def test_media_first_drops_snapshots_and_keeps_events(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=4000, eviction="media-first")
    events = [make_event(n) for n in range(3)]
    for number, event in enumerate(events):
        spool.put(event, [snap(f"m{number}", 1500)])
    pending = spool.next_batch(10)
    assert [p.event.event_id for p in pending] == [e.event_id for e in events]
    assert pending[0].event.media == []  # its snapshot was given up, the event kept
    assert len(pending[2].event.media) == 1
    assert spool.status().evicted_media == 1
    spool.close()


def test_refuse_new_keeps_what_it_holds(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=2000, eviction="refuse-new")
    spool.put(make_event(1), [snap("a", 1200)])
    with pytest.raises(SpoolFullError):
        spool.put(make_event(2), [snap("b", 1200)])
    status = spool.status()
    assert (status.pending, status.refused) == (1, 1)
    spool.close()


def test_status_reports_depth_and_age(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=10**6)
    assert spool.status().oldest_pending_age is None
    spool.put(make_event())
    status = spool.status()
    assert status.pending == 1
    assert status.oldest_pending_age is not None
    assert 0 <= status.oldest_pending_age < 5
    spool.close()


WRITER = """
import sys, uuid
from datetime import UTC, datetime
from pathlib import Path
from edge.spool import Spool
from tests.edge.test_spool import make_event, snap
spool = Spool(Path(sys.argv[1]), max_bytes=10**9)
number = 0
while True:
    event = make_event(number)
    spool.put(event, [snap(str(number), 2000)])
    print(event.event_id, flush=True)  # only after the commit returned
    number += 1
"""


@pytest.mark.slow
def test_everything_reported_written_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", WRITER, str(path)],
        cwd=repo_root(),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo_root())},
    )
    assert child.stdout is not None
    written = [child.stdout.readline().strip() for _ in range(200)]
    os.kill(child.pid, signal.SIGKILL)  # mid-write, with the WAL not checkpointed
    child.wait(10)
    with child.stdout:
        written += [line.strip() for line in child.stdout if line.strip()]
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    spool = Spool(path, max_bytes=10**9)
    stored = {str(p.event.event_id) for p in spool.next_batch(500)}
    assert set(written) <= stored
    assert len(stored) - len(written) <= 1  # at most the one committed but not yet printed
    assert all(len(p.event.media) == 1 for p in spool.next_batch(500))
    spool.close()
