"""How busy each API worker process of a host is, shared through one small file (ADR 0040).

`hub api --workers N` creates the board before uvicorn starts its workers and removes it when
they have stopped; each worker claims a slot in it and writes its in-flight request count there
on every request. A worker then closes a keep-alive connection only when another worker is
less busy by enough that the move evens them out (`ConnectionRecycler`), instead of whenever it
serves another request: on a balanced host no connection moves, and on an uneven one the move
happens after a couple of requests, not ten.

The board is a shared memory map of `SLOTS` triples of 64-bit integers (process id, the
process's start time, in-flight requests). Slots are claimed under an exclusive POSIX lock
(`lockf`) of the file; a slot whose process is gone (a worker uvicorn restarted) is claimed
again. The start time (from /proc) tells a worker from an unrelated process that was given a
dead worker's id later. Reads and writes after that take no lock: each slot has one writer, an
aligned 8-byte store is not torn on the platforms the hub runs on, and a count read a moment
late only delays a move by a request.

`hub api` holds a shared `flock` on its board for as long as it runs (Linux keeps `flock` and
POSIX locks apart, so the workers' claims never wait on it). A board that nobody holds was left
by a `hub api` that was killed before it could remove it; the next `hub api` on the host
removes such boards (`sweep_stale_boards`)."""

import fcntl
import mmap
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from hub.observability.pids import pid_exists, process_start

log = structlog.get_logger(__name__)

# Worker processes one board holds; a host runs a handful (`HUB_API_WORKERS`).
SLOTS = 64
_CELL = 8  # bytes of one integer
_FIELDS = 3  # a slot's integers: process id, its start time, in-flight requests
_PID, _START, _IN_FLIGHT = range(_FIELDS)
SIZE = SLOTS * _FIELDS * _CELL
# How often a worker looks again at which slots belong to live processes: a restarted
# worker's old slot stops counting within this, and the check costs one kill(0) and one read
# of /proc per claimed slot.
REFRESH_SECONDS = 1.0


# Where boards go when the host has it: memory, never a disk. mkstemp makes the file private.
_SHARED_MEMORY = Path("/dev/shm")  # noqa: S108
_PREFIX = "hub-api-load-"
# A board nobody holds is removed by the next `hub api` only once it is this old: between
# mkstemp and its `flock`, a new board is briefly unheld.
STALE_AFTER_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class HeldBoard:
    """A board file and the descriptor `hub api` holds its shared `flock` through."""

    path: Path
    fd: int


def create_board(directory: str | None = None) -> HeldBoard:
    """A new, empty board file (in /dev/shm where there is one), held until `remove_board`;
    first, the boards in that directory that killed `hub api` processes left behind go."""
    if directory is None:
        directory = str(_SHARED_MEMORY) if _SHARED_MEMORY.is_dir() else tempfile.gettempdir()
    sweep_stale_boards(Path(directory))
    handle, name = tempfile.mkstemp(prefix=_PREFIX, dir=directory)
    try:
        os.ftruncate(handle, SIZE)
        fcntl.flock(handle, fcntl.LOCK_SH)
    except OSError:
        os.close(handle)
        Path(name).unlink(missing_ok=True)
        raise
    return HeldBoard(Path(name), handle)


def remove_board(board: HeldBoard) -> None:
    """Remove a board once its workers have stopped (no error if it is gone already)."""
    board.path.unlink(missing_ok=True)
    os.close(board.fd)


def sweep_stale_boards(directory: Path, *, now: float | None = None) -> list[Path]:
    """Remove the boards in `directory` that no `hub api` holds (older than
    `STALE_AFTER_SECONDS`, this user's, of a board's size); the paths removed."""
    at = time.time() if now is None else now
    removed = []
    for path in sorted(directory.glob(f"{_PREFIX}*")):
        if _stale(path, at):
            path.unlink(missing_ok=True)
            removed.append(path)
            log.info("stale API load board removed", board=str(path))
    return removed


def _stale(path: Path, now: float) -> bool:
    try:
        # Never through a link; and a FIFO of that name must not block the start of `hub api`.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.getuid()
            or info.st_size != SIZE
            or now - info.st_mtime < STALE_AFTER_SECONDS
        ):
            return False
        try:  # taken only if no `hub api` holds its shared lock: then nobody uses the board
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True
    finally:
        os.close(fd)


class LoadBoard:
    """This worker's slot on the host's board, and what the other workers' slots say."""

    def __init__(self, path: Path, *, pid: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.started = process_start(self.pid) or 0
        with path.open("r+b") as file:
            if os.fstat(file.fileno()).st_size < SIZE:
                raise ValueError(f"{path} is not an API load board ({SIZE} bytes)")
            self._map = mmap.mmap(file.fileno(), SIZE)
            self._cells = memoryview(self._map).cast("q")
            # A POSIX lock, not `flock`: `hub api` holds a shared `flock` on the board while it
            # runs, which an exclusive `flock` here would wait on forever. Unlocked explicitly
            # rather than left to the close.
            fcntl.lockf(file.fileno(), fcntl.LOCK_EX)
            try:
                self._slot = self._claim(path)
            finally:
                fcntl.lockf(file.fileno(), fcntl.LOCK_UN)
        self._others: list[int] = []
        self._refreshed = float("-inf")

    @property
    def slot(self) -> int:
        """The slot this worker writes."""
        return self._slot

    def publish(self, in_flight: int) -> None:
        """This worker now serves `in_flight` requests."""
        self._cells[_FIELDS * self._slot + _IN_FLIGHT] = in_flight

    def least_other(self) -> int | None:
        """The fewest in-flight requests of any other live worker; None when there is none."""
        now = time.monotonic()
        if now - self._refreshed >= REFRESH_SECONDS:
            self._others = self._live_others()
            self._refreshed = now
        cells = self._cells
        return min((cells[_FIELDS * s + _IN_FLIGHT] for s in self._others), default=None)

    def close(self) -> None:
        """Give the slot back (a stopping worker)."""
        base = _FIELDS * self._slot
        if self._cells[base + _PID] == self.pid:  # the next claim writes the start time anew
            self._cells[base + _IN_FLIGHT] = 0
            self._cells[base + _PID] = 0
        self._cells.release()
        self._map.close()

    def _claim(self, path: Path) -> int:
        """The first slot that is free, this process's, or a dead process's (under the lock)."""
        cells = self._cells
        for slot in range(SLOTS):
            if cells[_FIELDS * slot + _PID] == self.pid or not self._held(slot):
                base = _FIELDS * slot
                cells[base + _IN_FLIGHT] = 0
                cells[base + _START] = self.started
                cells[base + _PID] = self.pid
                return slot
        raise RuntimeError(f"the API load board {path} has no free slot ({SLOTS} workers)")

    def _live_others(self) -> list[int]:
        return [slot for slot in range(SLOTS) if slot != self._slot and self._held(slot)]

    def _held(self, slot: int) -> bool:
        """Whether a live worker holds `slot` (claimed, and its process still the claimer)."""
        base = _FIELDS * slot
        pid = self._cells[base + _PID]
        return pid != 0 and _alive(pid, self._cells[base + _START])


def open_board(path: str) -> LoadBoard | None:
    """This worker's slot on the board `hub api` made; None (and a warning) when it cannot be
    opened: the worker then falls back to the rule without a board."""
    try:
        return LoadBoard(Path(path))
    except (OSError, ValueError, RuntimeError) as error:
        log.warning(
            "API load board not usable: connections recycled by the local rule",
            board=path,
            error=str(error),
        )
        return None


def _alive(pid: int, started: int) -> bool:
    """Whether the worker that claimed a slot as (`pid`, `started`) still runs: a process of
    that id exists and, where both are known, started when the worker did."""
    if not pid_exists(pid):
        return False
    now = process_start(pid) if started else None
    return now is None or now == started
