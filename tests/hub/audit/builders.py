"""Builders of audit test data: entries appended in their own transactions, a sealer."""

from datetime import datetime
from pathlib import Path

from hub.audit import AuditEntry, CheckpointSigner, Sealer, append_entry
from hub.audit.witness import WitnessState
from hub.kit.clock import Clock, utcnow
from hub.runtime import Services


async def append_many(services: Services, n: int, *, tag: str = "t") -> list[int]:
    """Append n entries, each committed on its own; returns their seqs."""
    seqs = []
    for i in range(n):
        async with services.db.transaction() as conn:
            seqs.append(
                await append_entry(
                    conn,
                    AuditEntry(
                        actor="test",
                        action="thing.do",
                        target=f"{tag}:{i}",
                        detail={"i": i, "tags": ["a", "b"]},
                    ),
                )
            )
    return seqs


def sealer(
    services: Services, *, witness: str = "", clock: Clock = utcnow, batch: int = 5_000
) -> Sealer:
    """A sealer with the hub's checkpoint key, signing at most once an hour unless forced."""
    return Sealer(
        services.db,
        signer=CheckpointSigner.from_dir(services.settings.secrets_dir),
        checkpoint_seconds=3600,
        witness=witness,
        clock=clock,
        batch=batch,
    )


def fixed(at: datetime) -> Clock:
    """A clock that always says `at`."""
    return lambda: at


async def execute(services: Services, sql: str, *args: object) -> None:
    """One statement on a pooled connection (tampering with the log, as an attacker would)."""
    async with services.db.pool.acquire() as conn:
        await conn.execute(sql, *args)


async def rewrite_log(services: Services, seq: int) -> None:
    """What someone with write access to the database does to rewrite history: change entry
    `seq` and throw away the tree and the checkpoints, so that the next sealer run seals
    everything again and signs checkpoints of the rewritten log."""
    await execute(services, "UPDATE audit_log SET target = 'forged' WHERE seq = $1", seq)
    await execute(services, "UPDATE audit_log SET leaf_index = NULL, leaf_hash = NULL")
    await execute(services, "DELETE FROM audit_node")
    await execute(services, "DELETE FROM audit_checkpoint")
    await execute(services, "UPDATE audit_tree SET size = 0, frontier = '{}'")


def witness_state(services: Services, folder: Path) -> WitnessState:
    """A verifying witness's state in `folder`, trusting the hub's checkpoint key."""
    return WitnessState(path=folder / "witness.jsonl", log_key=sealer(services).key)
