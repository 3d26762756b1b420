"""The API workers' load board (ADR 0040): slots, counts, the move rule, and a real `hub api
--workers 2` whose workers claim their slots and whose board is gone after it stops."""

import asyncio
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from hub.observability.balance import (
    SIZE,
    SLOTS,
    STALE_AFTER_SECONDS,
    LoadBoard,
    create_board,
    open_board,
    remove_board,
    sweep_stale_boards,
)
from hub.observability.drain import BALANCED_MIN, BUSY_MIN, ConnectionRecycler, Drain
from hub.observability.pids import process_start
from hub.settings import Settings
from tests.hub.observability.processes import HubProcess

PEER = ("10.0.0.9", 6000)


@pytest.fixture
def board_file(tmp_path: Path) -> Iterator[Path]:
    board = create_board(str(tmp_path))
    yield board.path
    remove_board(board)
    assert not board.path.exists()


def owners(path: Path) -> list[tuple[int, int]]:
    """(pid, in-flight) of every claimed slot, read from the file as another process would."""
    cells = struct.unpack(f"{3 * SLOTS}q", path.read_bytes())
    return [(cells[3 * s], cells[3 * s + 2]) for s in range(SLOTS) if cells[3 * s]]


def write_slot(
    path: Path, slot: int, pid: int, in_flight: int, *, started: int | None = None
) -> None:
    """Claim `slot` for `pid` as a worker would (by default with the process's start time)."""
    start = (process_start(pid) or 0) if started is None else started
    with path.open("r+b") as file:
        file.seek(slot * 24)
        file.write(struct.pack("3q", pid, start, in_flight))


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])  # noqa: S607 - coreutils, no input
    proc.wait()
    return proc.pid


def test_a_new_board_is_empty_and_of_the_right_size(board_file: Path) -> None:
    assert board_file.stat().st_size == SIZE
    assert owners(board_file) == []


def test_workers_claim_their_own_slots_and_see_each_others_counts(board_file: Path) -> None:
    mine = LoadBoard(board_file, pid=os.getpid())
    other = LoadBoard(board_file, pid=os.getppid())  # another live process
    assert mine.slot != other.slot
    assert mine.least_other() == 0
    other.publish(3)
    mine.publish(1)
    assert sorted(owners(board_file)) == sorted([(os.getpid(), 1), (os.getppid(), 3)])
    assert mine.least_other() == 3
    assert other.least_other() == 1
    other.close()
    assert owners(board_file) == [(os.getpid(), 1)]
    mine._refreshed = float("-inf")  # as a second later: the slot list is looked at again
    assert mine.least_other() is None
    mine.close()
    assert owners(board_file) == []


def test_the_slot_of_a_worker_that_died_does_not_count_and_is_claimed_again(
    board_file: Path,
) -> None:
    # A worker that stopped idle (killed, or restarted by uvicorn) would look least busy.
    write_slot(board_file, 1, dead_pid(), 0)
    mine = LoadBoard(board_file, pid=os.getpid())
    assert mine.slot == 0
    assert mine.least_other() is None
    other = LoadBoard(board_file, pid=os.getppid())
    assert other.slot == 1  # the dead worker's
    other.publish(4)
    mine._refreshed = float("-inf")  # as a second later
    assert mine.least_other() == 4
    for board in (mine, other):
        board.close()


def test_a_slot_whose_process_id_was_given_to_another_process_does_not_count(
    board_file: Path,
) -> None:
    # The worker died and the kernel gave its id to a process that started later: the id
    # answers kill(0), the start time does not match.
    parent = os.getppid()
    started = process_start(parent)
    assert started is not None
    write_slot(board_file, 1, parent, 0, started=started + 1)
    mine = LoadBoard(board_file, pid=os.getpid())
    assert mine.slot == 0
    assert mine.least_other() is None  # not a worker: an idle count that would draw moves
    other = LoadBoard(board_file, pid=parent)
    assert other.slot == 1  # claimed again, now with the right start time
    other.publish(2)
    mine._refreshed = float("-inf")
    assert mine.least_other() == 2
    for board in (mine, other):
        board.close()


def test_a_process_start_time_is_read_from_proc() -> None:
    here = process_start(os.getpid())
    assert here is not None
    assert here == process_start(os.getpid())
    assert process_start(dead_pid()) is None
    child = subprocess.Popen(["sleep", "5"])  # noqa: S607 - coreutils, no input
    try:
        later = process_start(child.pid)
        assert later is not None
        assert later >= here  # started after this test's process
    finally:
        child.kill()
        child.wait()


def test_a_full_board_refuses_and_a_worker_falls_back_to_the_local_rule(
    board_file: Path, tmp_path: Path
) -> None:
    with board_file.open("r+b") as file:  # every slot held by this (live) process
        started = process_start(os.getpid()) or 0
        file.write(struct.pack(f"{3 * SLOTS}q", *[os.getpid(), started, 0] * SLOTS))
    with pytest.raises(RuntimeError, match="no free slot"):
        LoadBoard(board_file, pid=os.getppid())
    own = open_board(str(board_file))  # this process's own slot is its own again
    assert own is not None
    assert own.slot == 0
    own.close()
    short = tmp_path / "short"
    short.write_bytes(b"\0" * 10)
    assert open_board(str(short)) is None
    assert open_board(str(tmp_path / "missing")) is None


def age(path: Path, seconds: float) -> None:
    """Make a file look `seconds` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_board_left_by_a_killed_hub_api_goes_when_the_next_one_starts(tmp_path: Path) -> None:
    # A real process makes and holds a board, as `hub api` does, and is killed with SIGKILL.
    code = (
        "import sys, time\n"
        "from hub.observability.balance import create_board\n"
        "print(create_board(sys.argv[1]).path, flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        left = Path(holder.stdout.readline().strip())
        age(left, STALE_AFTER_SECONDS + 60)
        assert sweep_stale_boards(tmp_path) == []  # held: its `hub api` still runs
        assert left.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    assert left.exists()  # nothing removed it
    board = create_board(str(tmp_path))
    try:
        assert not left.exists()
        assert sorted(tmp_path.iterdir()) == [board.path]
    finally:
        remove_board(board)


def test_the_sweep_leaves_young_boards_and_other_files_alone(tmp_path: Path) -> None:
    young = tmp_path / "hub-api-load-young"
    young.write_bytes(bytes(SIZE))  # unheld, but perhaps a board a moment before its lock
    odd = tmp_path / "hub-api-load-odd"
    odd.write_bytes(bytes(SIZE - 1))  # not a board
    other = tmp_path / "something-else"
    other.write_bytes(bytes(SIZE))
    stale = tmp_path / "hub-api-load-stale"
    stale.write_bytes(bytes(SIZE))
    for path in (odd, other, stale):
        age(path, STALE_AFTER_SECONDS + 1)
    link = tmp_path / "hub-api-load-link"
    link.symlink_to(other)  # never followed
    assert sweep_stale_boards(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["hub-api-load-young", "hub-api-load-odd", "something-else", "hub-api-load-link"]
    )


def recycler_on(board: LoadBoard) -> tuple[ConnectionRecycler, Drain]:
    drain = Drain(board)
    return ConnectionRecycler(limit=100, drain=drain, shared=True), drain


def test_on_a_balanced_host_no_connection_moves(board_file: Path) -> None:
    other = LoadBoard(board_file, pid=os.getppid())
    recycler, drain = recycler_on(LoadBoard(board_file, pid=os.getpid()))
    other.publish(2)
    drain.enter()  # one other request here; this one makes two, as many as the other worker
    assert not any(recycler.closes(PEER) for _ in range(99))
    assert recycler.closes(PEER) is True  # the limit still counts
    other.publish(1)  # the other worker a request lighter: moving gains nothing
    assert not any(recycler.closes(PEER) for _ in range(50))


def test_a_connection_leaves_a_worker_two_requests_ahead_after_a_couple_of_requests(
    board_file: Path,
) -> None:
    other = LoadBoard(board_file, pid=os.getppid())
    recycler, drain = recycler_on(LoadBoard(board_file, pid=os.getpid()))
    other.publish(1)
    drain.enter()
    drain.enter()  # two others here, this request the third: three against one
    assert [recycler.closes(PEER) for _ in range(BALANCED_MIN)] == [False] * (BALANCED_MIN - 1) + [
        True
    ]
    assert BALANCED_MIN < BUSY_MIN
    other.publish(2)  # the other worker caught up
    assert not any(recycler.closes(PEER) for _ in range(20))


def test_with_many_connections_a_swing_of_a_few_requests_moves_none(board_file: Path) -> None:
    other = LoadBoard(board_file, pid=os.getppid())
    recycler, drain = recycler_on(LoadBoard(board_file, pid=os.getpid()))
    for _ in range(10):
        drain.enter()  # ten others here: this request is the eleventh
    other.publish(8)  # 11 against 8: a swing, not a lopsided host
    assert not any(recycler.closes(PEER) for _ in range(50))
    other.publish(6)  # 11 against 6: moving one evens them out
    fresh = ("10.0.0.9", 6001)
    assert [recycler.closes(fresh) for _ in range(BALANCED_MIN)] == [False] * (BALANCED_MIN - 1) + [
        True
    ]


def test_the_drain_publishes_its_in_flight_count(board_file: Path) -> None:
    drain = Drain(LoadBoard(board_file, pid=os.getpid()))
    drain.enter()
    drain.enter()
    assert owners(board_file) == [(os.getpid(), 2)]
    drain.leave()
    assert owners(board_file) == [(os.getpid(), 1)]


def test_without_a_board_the_local_rule_still_applies() -> None:
    drain = Drain()
    recycler = ConnectionRecycler(limit=100, drain=drain, shared=True)
    drain.enter()
    assert [recycler.closes(PEER) for _ in range(BUSY_MIN)] == [False] * (BUSY_MIN - 1) + [True]


def children(pid: int) -> list[int]:
    """Ids of the live child processes of `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def board_of(pid: int) -> str | None:
    """The board a process was started with (its HUB_API_LOAD_BOARD), if any."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"HUB_API_LOAD_BOARD="):
            return item.split(b"=", 1)[1].decode()
    return None


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.slow
async def test_a_real_api_with_two_workers_shares_a_board_and_removes_it(
    settings: Settings, tmp_path: Path
) -> None:
    run = msgspec.structs.replace(settings, metrics_dir=str(tmp_path / "metrics"))
    api = HubProcess("api", run, tmp_path / "api.log", HUB_API_WORKERS="2").start()
    try:
        await asyncio.to_thread(api.wait_ready)
        assert api.proc is not None
        workers = {p: board_of(p) for p in children(api.proc.pid)}
        boards = {b for b in workers.values() if b is not None}
        assert len(boards) == 1, workers
        path = Path(boards.pop())
        claimed = {pid for pid, _ in owners(path)}
        # Each worker claims its slot when it starts serving: both have within moments.
        for _ in range(50):
            if len(claimed) == 2:
                break
            await asyncio.sleep(0.1)
            claimed = {pid for pid, _ in owners(path)}
        # The two workers (multiprocessing's resource tracker inherits the board too).
        assert claimed <= {p for p, b in workers.items() if b is not None}
        assert len(claimed) == 2
        # However old it looks, a running `hub api`'s board is held: no sweep removes it.
        age(path, STALE_AFTER_SECONDS + 60)
        assert sweep_stale_boards(path.parent) == []
        assert path.exists()
    finally:
        await asyncio.to_thread(api.stop)
    assert not path.exists()
