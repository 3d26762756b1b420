"""A verifying witness of the hub's audit checkpoints (`hub audit witness`), run by someone
the hub does not control.

It keeps the checkpoints it accepted, one JSON line each (the format of a file witness, so
`hub audit verify --checkpoint` reads its state file), and accepts a new one only when it is
signed by the log's checkpoint key and a consistency proof shows that it extends the newest
one it holds: the protocol of C2SP tlog-witness's add-checkpoint (409 with the witness's size
when the hub's idea of it is stale, 422 for a proof that fails), carried in JSON. A checkpoint
that fails the proof is kept apart in `<state>.refused` with the proof and the checkpoint it
was checked against: two checkpoints signed by one key that no proof joins are the evidence
that the log was rewritten. It reads nothing of the hub but what it is sent.
"""

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
from litestar import Litestar, get, post
from litestar.params import JSONBody

from hub.audit.checkpoints import checkpoint_problem
from hub.audit.errors import InconsistentError, StaleSizeError, WitnessRefusedError
from hub.audit.merkle import verify_consistency
from hub.audit.schemas import Checkpoint, CheckpointKey, WitnessAnswer, WitnessRequest
from hub.kit.errors import BadRequestError, ForbiddenError
from hub.kit.problems import EXCEPTION_HANDLERS

ADD_PATH = "/add-checkpoint"
# A request is a checkpoint and at most 128 hashes: a few kilobytes.
MAX_BODY_BYTES = 32 * 1024
# Enough of the state file's end to hold its last line (a checkpoint is under 1 KB).
TAIL_BYTES = 16 * 1024


def judge(latest: Checkpoint | None, request: WitnessRequest, *, log_key: CheckpointKey) -> None:
    """Raise why `request` must be refused by a witness holding `latest`; None to accept."""
    checkpoint = request.checkpoint
    if checkpoint.key_id != log_key.key_id:
        raise ForbiddenError(f"checkpoint signed by key {checkpoint.key_id}, not the log's")
    problem = checkpoint_problem(checkpoint, public_pem=log_key.public_key)
    if problem is not None:
        raise ForbiddenError(problem)
    held = 0 if latest is None else latest.tree_size
    if request.old_size > checkpoint.tree_size:
        raise BadRequestError("old_size lies past the checkpoint's size")
    if request.old_size != held:
        raise StaleSizeError(
            f"the witness holds {held} entries, not {request.old_size}",
            extra={"witness_size": held},
        )
    if latest is None:
        return  # the first checkpoint: nothing to extend
    if not verify_consistency(
        first=latest.tree_size,
        second=checkpoint.tree_size,
        first_root=bytes.fromhex(latest.root_hash),
        second_root=bytes.fromhex(checkpoint.root_hash),
        path=[bytes.fromhex(h) for h in request.consistency],
    ):
        raise InconsistentError(
            f"no consistency from the {latest.tree_size} entries witnessed at "
            f"{latest.signed_at.isoformat()} to these {checkpoint.tree_size}"
        )


@dataclass(slots=True)
class WitnessState:
    """The witness's files: accepted checkpoints (`path`) and refused ones (`path.refused`)."""

    path: Path
    log_key: CheckpointKey

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint held: the file's last line, read from its end (the file
        grows by a line a checkpoint, half a million a year at the default interval)."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as state:
            state.seek(max(0, state.seek(0, os.SEEK_END) - TAIL_BYTES))
            lines = [line for line in state.read().splitlines() if line.strip()]
        return msgspec.json.decode(lines[-1], type=Checkpoint) if lines else None

    def add(self, request: WitnessRequest) -> int:
        """Judge and keep `request`'s checkpoint; the size now held (or the refusal)."""
        latest = self.latest()
        try:
            judge(latest, request, log_key=self.log_key)
        except InconsistentError:
            evidence = {"request": request, "witnessed": latest}
            _append(self.path.with_name(self.path.name + ".refused"), evidence)
            raise
        _append(self.path, request.checkpoint)
        return request.checkpoint.tree_size


def _append(path: Path, record: object) -> None:
    """One JSON line, flushed to disk before the answer is sent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        out.write(msgspec.json.encode(record) + b"\n")
        out.flush()
        os.fsync(out.fileno())


def create_witness_app(state: WitnessState) -> Litestar:
    """The witness's HTTP API: POST `ADD_PATH`, GET `/checkpoint` (the newest it holds)."""
    lock = asyncio.Lock()  # one judgement at a time: each reads what the last one wrote

    @post(ADD_PATH, status_code=200)
    async def add(data: JSONBody[WitnessRequest]) -> WitnessAnswer:
        async with lock:
            size = await asyncio.to_thread(state.add, data)
        return WitnessAnswer(tree_size=size)

    @get("/checkpoint")
    async def newest() -> Checkpoint | None:
        return await asyncio.to_thread(state.latest)

    return Litestar(
        route_handlers=[add, newest],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=None,
        logging_config=None,
    )


async def offer(client: httpx.AsyncClient, url: str, request: WitnessRequest) -> int | None:
    """Hand one checkpoint to a verifying witness at `url`: None when it accepted, the size it
    holds when it says `request.old_size` is stale (prove again from there).
    `WitnessRefusedError` when it refuses the checkpoint itself; httpx.HTTPError when it
    cannot be reached or fails (try again later)."""
    answer = await client.post(
        url, content=msgspec.json.encode(request), headers={"content-type": "application/json"}
    )
    if answer.status_code == 409:
        size = _problem(answer).get("witness_size")
        if isinstance(size, int):
            return size
    if answer.status_code in (400, 403, 422):
        problem = _problem(answer)
        raise WitnessRefusedError(
            f"{answer.status_code} {problem.get('type', '')}: {problem.get('detail', '')}"[:300]
        )
    answer.raise_for_status()
    return None


def _problem(answer: httpx.Response) -> dict[str, object]:
    try:
        body = msgspec.json.decode(answer.content)
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}
