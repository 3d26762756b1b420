"""The PII vault: detection attributes encrypted under per-subject data keys.

Ingest seals the attributes of every stored detection here, in the transaction that stores the
event, and stores the payload without them (`strip_payload`): the payload keeps only a
reference (`pii_ref`: the node and the detection indexes sealed). Whatever shows or sends an
event re-hydrates it from the vault first (`hydrate`, one query for many records). Forgetting a
subject destroys its data key (crypto-shredding: every copy of the ciphertext, backups
included, becomes unreadable); its attributes then come back absent. Payloads stored before
the vault (clear attributes, no `pii_ref`) are scrubbed by a forget as well.
"""

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import msgspec
import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.contracts.detection_v1 import DetectionEvent
from hub.kit.db import bytes_column, joined_column, literal_column
from hub.retention.crypto import KeyRing

log = structlog.get_logger(__name__)

SHREDDED = "shredded"
# The event's canonical JSON (keys sorted), as ingest hashes it; one encoder, not one per call.
_CANONICAL = msgspec.json.Encoder(order="sorted")
_JSON = msgspec.json.Encoder()
# The top-level payload key naming what was moved to the vault: {"node_id", "detections"}.
PII_REF = "pii_ref"


@dataclass(frozen=True, slots=True)
class _Item:
    event_id: UUID
    detection: int
    subject: str
    plaintext: bytes


def subject_of_detection(
    keys: KeyRing, event: DetectionEvent, index: int, attributes: Mapping[str, object]
) -> str:
    """Who a detection's attributes are about: its plate, else its track, else itself."""
    plate = attributes.get("plate_text")
    if isinstance(plate, str) and plate.strip():
        return keys.plate_subject(plate)
    track = event.detections[index].track_id
    if track:
        return keys.subject_of(f"track:{event.camera_id}:{track}")
    return keys.subject_of(f"event:{event.event_id}:{index}")


def _items(keys: KeyRing, events: Iterable[DetectionEvent]) -> list[_Item]:
    found = []
    for event in events:
        for index, detection in enumerate(event.detections):
            attrs = detection.attributes
            if attrs:  # read only: neither the subject nor the encoding changes it
                found.append(
                    _Item(
                        event_id=event.event_id,
                        detection=index,
                        subject=subject_of_detection(keys, event, index, attrs),
                        plaintext=_JSON.encode(attrs),
                    )
                )
    return found


class CteBody(Protocol):
    """A neighbour's write for the vault's statement (ADR 0030), e.g. `hub.audit`'s
    `AuditAppend`: a CTE body reading `params` as parameters `first`.. ."""

    @property
    def params(self) -> tuple[object, ...]:
        """The body's parameters, numbered from `first` in `sql`."""
        ...

    def sql(self, *, first: int) -> str:
        """The CTE body; its text depends on `first` only (a prepared statement)."""
        ...


async def seal_events(
    conn: asyncpg.Connection,
    keys: KeyRing,
    *,
    events: Sequence[DetectionEvent],
    rows: Mapping[UUID, tuple[int, datetime]],
    also: CteBody | None = None,
) -> int:
    """Encrypt the attributes of freshly stored events into the vault; returns rows written.

    `rows` gives each event's stored row (id, captured_at), as the insert returned it.

    Usually one statement: every subject gets a fresh data key and its items are sealed under
    it; the statement creates the subjects that are new and stores the items of those only.
    Items of subjects that already had a key (a plate seen before) are sealed again under
    that key, read by a second statement, and stored by a third, as before (ADR 0024).

    `also` (ingest's audit entry) is written by that first statement as a CTE of its own, or
    alone when there is nothing to seal: one round trip fewer for the caller's transaction."""
    items = _items(keys, events)
    if not items:
        if also is not None:
            await conn.execute(_alone(also.sql(first=1)), *also.params)
        return 0
    subjects = sorted({i.subject for i in items})
    made = keys.new_data_keys(subjects)
    # The generation column is left out below: the statement reads the created key's back.
    fresh = {s: (1, key) for s, (key, _) in made.items()}
    columns = _attribute_params(_attribute_columns(keys, items, rows, fresh))
    answered = await conn.fetch(
        _CREATE_KEYS_AND_SEAL
        if also is None
        else _create_keys_and_seal_with(also.sql(first=_SEAL_PARAMS + 1)),
        joined_column(subjects),
        keys.current_id,
        *bytes_column([made[s][1] for s in subjects]),
        *(columns[:4] + columns[5:]),
        *(() if also is None else also.params),
    )
    created = {row["subject"] for row in answered}
    rest = [i for i in items if i.subject not in created]
    if rest:
        known = await _known_keys(conn, keys, sorted({i.subject for i in rest}))
        await conn.execute(
            _INSERT_ATTRIBUTES, *_attribute_params(_attribute_columns(keys, rest, rows, known))
        )
    return len(items)


def _attribute_columns(
    keys: KeyRing,
    items: Sequence[_Item],
    rows: Mapping[UUID, tuple[int, datetime]],
    data_keys: Mapping[str, tuple[int, bytes]],
) -> list[list[Any]]:
    """Seal each item under its subject's key: the columns of its `pii_attribute` row."""
    ciphers: dict[str, tuple[int, AESGCM]] = {}
    sealed_rows = []
    nonces = os.urandom(12 * len(items))  # one system call for the batch's random nonces
    for n, item in enumerate(items):
        pk, captured_at = rows[item.event_id]
        if item.subject not in ciphers:  # one cipher per subject, not per item
            generation, key = data_keys[item.subject]
            ciphers[item.subject] = (generation, AESGCM(key))
        generation, cipher = ciphers[item.subject]
        nonce = nonces[12 * n : 12 * n + 12]
        sealed = cipher.encrypt(nonce, item.plaintext, _aad(pk, captured_at, item.detection))
        sealed_rows.append(
            (pk, captured_at, item.detection, item.subject, generation, nonce, sealed)
        )
    # Rows turned into the statement's columns in one transposition, not a value at a time.
    return [list(column) for column in zip(*sealed_rows, strict=True)] or [[] for _ in range(7)]


def _attribute_params(columns: list[list[Any]]) -> tuple[object, ...]:
    """The `pii_attribute` columns as the statements' parameters: each one text or bytea
    (`literal_column`, `joined_column`, `bytes_column`) but the capture times, not arrays whose
    every element asyncpg checks against ABCs in Python (a subject is hex: no ";")."""
    pk, captured_at, detection, subject, generation, nonce, sealed = columns
    return (
        literal_column(pk),
        captured_at,  # as text, PostgreSQL would parse them instead
        literal_column(detection),
        joined_column(subject),
        literal_column(generation),
        *bytes_column(nonce),
        *bytes_column(sealed),
    )


# Creating the subjects' keys and storing their sealed items in one statement. The items join
# the keys this statement created (RETURNING), so an item sealed under a fresh key is stored
# only when that key is the subject's: a subject that exists already (or that a concurrent
# batch created first: DO NOTHING waits for it to commit) stores nothing here and is not in
# the answer. Its key is read by a statement of its own: reading it here too (a UNION over
# `subject = ANY($1)`) cost 5-6 ms a batch instead of 1 ms, as pooled connections kept a
# generic plan made while the table was small (a sequential scan). Sorted subjects take
# their row locks in one order, as concurrent batches need; DO NOTHING takes no lock on
# existing rows, so busy plates do not serialise ingest. The generation of a created key is
# the column's default, read back. `{also}` is where a neighbour's CTE goes (`seal_events`).
# The columns come as texts and bytea cut by position (`_attribute_params`).
_CREATE_KEYS_AND_SEAL_WITH = """
WITH created AS (
    INSERT INTO pii_subject_key (subject, master_key_id, wrapped_key)
    SELECT s.subject, $2::text, substring($3::bytea FROM s.key_at FOR s.key_length)
    FROM unnest(string_to_array($1::text, ';'), $4::text::int[], $5::text::int[])
         AS s(subject, key_at, key_length)
    ON CONFLICT (subject) DO NOTHING
    RETURNING subject, generation
), sealed AS (
    INSERT INTO pii_attribute
        (event_pk, captured_at, detection, subject, generation, nonce, ciphertext)
    SELECT a.event_pk, a.captured_at, a.detection, a.subject, c.generation,
           substring($10::bytea FROM a.nonce_at FOR a.nonce_length),
           substring($13::bytea FROM a.sealed_at FOR a.sealed_length)
    FROM unnest($6::text::bigint[], $7::timestamptz[], $8::text::int[],
                string_to_array($9::text, ';'), $11::text::int[], $12::text::int[],
                $14::text::int[], $15::text::int[])
         AS a(event_pk, captured_at, detection, subject, nonce_at, nonce_length, sealed_at,
              sealed_length)
    JOIN created c USING (subject)
){also}
SELECT subject FROM created
"""
_CREATE_KEYS_AND_SEAL = _CREATE_KEYS_AND_SEAL_WITH.format(also="")
_SEAL_PARAMS = 15  # $1..$15 of _CREATE_KEYS_AND_SEAL


@functools.lru_cache(maxsize=8)
def _create_keys_and_seal_with(body: str) -> str:
    """The sealing statement with a neighbour's CTE `body` (parameters after the vault's)."""
    return _CREATE_KEYS_AND_SEAL_WITH.format(also=f", also AS (\n    {body}\n)")


@functools.lru_cache(maxsize=8)
def _alone(body: str) -> str:
    """A neighbour's CTE `body` as a statement of its own."""
    return f"WITH also AS (\n    {body}\n)\nSELECT"


# The items of subjects that had a key already: sealed under that key.
_INSERT_ATTRIBUTES = """
INSERT INTO pii_attribute
    (event_pk, captured_at, detection, subject, generation, nonce, ciphertext)
SELECT a.event_pk, a.captured_at, a.detection, a.subject, a.generation,
       substring($6::bytea FROM a.nonce_at FOR a.nonce_length),
       substring($9::bytea FROM a.sealed_at FOR a.sealed_length)
FROM unnest($1::text::bigint[], $2::timestamptz[], $3::text::int[],
            string_to_array($4::text, ';'), $5::text::int[], $7::text::int[], $8::text::int[],
            $10::text::int[], $11::text::int[])
     AS a(event_pk, captured_at, detection, subject, generation, nonce_at, nonce_length,
          sealed_at, sealed_length)
"""


def _aad(pk: int, captured_at: datetime, detection: int) -> bytes:
    # Binds a ciphertext to its row: moved to another event, it no longer decrypts.
    return f"{pk}|{captured_at.isoformat()}|{detection}".encode()


async def _known_keys(
    conn: asyncpg.Connection, keys: KeyRing, subjects: list[str]
) -> dict[str, tuple[int, bytes]]:
    """Each existing subject's (generation, data key); renewed when it was shredded."""
    found: dict[str, tuple[int, bytes]] = {}
    for row in await conn.fetch(_SELECT_KEYS, subjects):
        if row["wrapped_key"] is None:  # forgotten before: new sightings get a new key
            found[row["subject"]] = await _renew_key(conn, keys, row["subject"])
            continue
        found[row["subject"]] = (
            row["generation"],
            keys.unwrap(
                bytes(row["wrapped_key"]), master_id=row["master_key_id"], subject=row["subject"]
            ),
        )
    return found


_SELECT_KEYS = """
SELECT subject, generation, master_key_id, wrapped_key FROM pii_subject_key
WHERE subject = ANY($1::text[])
"""


async def _renew_key(conn: asyncpg.Connection, keys: KeyRing, subject: str) -> tuple[int, bytes]:
    """A new key for a forgotten subject; the other's when a concurrent batch renewed it first.

    Only a key that is still shredded is replaced: two batches that both saw it forgotten
    would otherwise each install a key, and the first one's items would no longer open."""
    key, wrapped = keys.new_data_key(subject)
    generation = await conn.fetchval(
        """UPDATE pii_subject_key SET generation = generation + 1, master_key_id = $2,
                  wrapped_key = $3, shredded_at = NULL
           WHERE subject = $1 AND wrapped_key IS NULL RETURNING generation""",
        subject,
        keys.current_id,
        wrapped,
    )
    if generation is not None:
        return int(generation), key
    row = await conn.fetchrow(_SELECT_KEYS, [subject])
    if row["wrapped_key"] is None:  # forgotten again since: renew once more
        return await _renew_key(conn, keys, subject)
    return row["generation"], keys.unwrap(
        bytes(row["wrapped_key"]), master_id=row["master_key_id"], subject=subject
    )


# What `_Opener.open` reads of a vault row, as one record: pii_attribute `a` and its
# subject's key `k` (the positions are `Sealed`'s).
_SEALED = """ROW(a.detection, a.subject, a.generation, a.nonce, a.ciphertext, k.generation,
           k.master_key_id, k.wrapped_key)"""

# A vault row as `_Opener.open` reads it: (detection, subject, generation, nonce, ciphertext,
# the subject key's generation, its master key id, the wrapped key).
Sealed = tuple[int, str, int, bytes, bytes, int | None, str | None, bytes | None]


def sealed_of_event(event_pk: str, captured_at: str) -> str:
    """SQL of a column holding an event's vault rows (`Sealed` records, an array; NULL when
    it has none), for a query that reads events to read their attributes with them: one
    statement instead of a second one by the rows' ids. The arguments are the query's
    expressions for the event's row id and capture time. Embedded by every query of feed
    rows (hub/feeds/repository.py, ADR 0030)."""
    return f"""(SELECT array_agg({_SEALED})
        FROM pii_attribute a JOIN pii_subject_key k ON k.subject = a.subject
        WHERE a.event_pk = {event_pk} AND a.captured_at = {captured_at})"""  # noqa: S608


async def read_attributes(
    conn: asyncpg.Connection, keys: KeyRing, *, event_pk: int, captured_at: datetime
) -> dict[int, dict[str, object] | str]:
    """The decrypted attributes of an event by detection index; `"shredded"` when forgotten."""
    rows = await conn.fetch(
        f"""SELECT {_SEALED} AS sealed
            FROM pii_attribute a JOIN pii_subject_key k USING (subject)
            WHERE a.event_pk = $1 AND a.captured_at = $2 ORDER BY a.detection""",  # noqa: S608 (fixed SQL fragments)
        event_pk,
        captured_at,
    )
    opener = _Opener(keys)
    return {row["sealed"][0]: opener.open(row["sealed"], event_pk, captured_at) for row in rows}


class _Opener:
    """Opens vault rows, unwrapping each distinct data key once: a page of events repeats its
    subjects (a plate or a track seen again and again), and unwrapping is an AES-GCM
    decryption and a cipher of its own per row. Kept for one read only, so a key shredded
    meanwhile is never used from here (a shredded key's rows carry no wrapped key)."""

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys
        self._ciphers: dict[tuple[str, str, bytes], AESGCM] = {}

    def open(self, sealed: Sealed, event_pk: int, captured_at: datetime) -> dict[str, object] | str:
        """The row's attributes, or `SHREDDED` when its key is gone or does not open it."""
        detection, subject, generation, nonce, ciphertext, key_generation, master, wrapped = sealed
        if wrapped is None or master is None or key_generation != generation:
            return SHREDDED
        slot = (master, subject, bytes(wrapped))
        cipher = self._ciphers.get(slot)
        if cipher is None:
            key = self._keys.unwrap(slot[2], master_id=slot[0], subject=slot[1])
            cipher = self._ciphers[slot] = AESGCM(key)
        try:
            plain = cipher.decrypt(
                bytes(nonce), bytes(ciphertext), _aad(event_pk, captured_at, detection)
            )
        except InvalidTag:
            return SHREDDED
        value: dict[str, object] = msgspec.json.decode(plain)
        return value


@dataclass(frozen=True, slots=True)
class ForgetOutcome:
    """What forgetting a subject did."""

    subject: str
    known: bool
    vault_rows: int
    payloads_scrubbed: int


def strip_payload(event: DetectionEvent, payload: bytes, *, node_id: UUID) -> bytes:
    """An event's canonical JSON as stored: detection attributes removed (`{}`), a `pii_ref`
    naming them added; `payload` (its canonical JSON) as is when it has no attributes.

    Built from the decoded event, not by parsing `payload` again: the same bytes (keys
    sorted, and `pii_ref` sorts after every field of the event) without a JSON round trip."""
    sealed = [i for i, d in enumerate(event.detections) if d.attributes]
    if not sealed:
        return payload
    detections = [
        msgspec.structs.replace(d, attributes={}) if d.attributes else d for d in event.detections
    ]
    body = _CANONICAL.encode(msgspec.structs.replace(event, detections=detections))
    ref = _CANONICAL.encode({"detections": sealed, "node_id": str(node_id)})
    return body[:-1] + b',"' + PII_REF.encode() + b'":' + ref + b"}"


# Records found by the ids their payloads hold (each event looked up first).
_HYDRATE = f"""
SELECT r.n, e.id AS event_pk, e.captured_at, {_SEALED} AS sealed
FROM unnest($1::int[], string_to_array($2::text, ';')::uuid[],
            string_to_array($3::text, ';')::uuid[], string_to_array($4::text, ';')::timestamptz[])
     AS r(n, node_id, event_id, captured_at)
JOIN detection_event e
  ON e.node_id = r.node_id AND e.event_id = r.event_id AND e.captured_at = r.captured_at
JOIN pii_attribute a ON a.event_pk = e.id AND a.captured_at = e.captured_at
JOIN pii_subject_key k ON k.subject = a.subject
"""  # noqa: S608 (fixed SQL fragments)


async def hydrate(
    db: asyncpg.Connection | asyncpg.Pool,
    keys: KeyRing | Callable[[], KeyRing],
    records: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Put the vault's attributes back into decoded payloads (in place; returned too).

    One query for all records. A record without `pii_ref` is left as it is; a forgotten (or
    swept) detection keeps `attributes: {}`. `db` is a connection or a pool; `keys` may be a
    callable, called only when a record refers to the vault. A caller that reads the events
    itself reads their vault rows with them instead (`sealed_of_event`, `hydrate_sealed`).
    """
    refs = _refs(records)
    if not refs:
        return list(records)
    # The ids and times as the payloads hold them, joined: PostgreSQL parses them in C, where
    # a UUID and a datetime object per record cost a page ~0.3 ms in Python.
    rows = await db.fetch(
        _HYDRATE,
        [n for n, _, _ in refs],
        joined_column([str(ref["node_id"]) for _, ref, _ in refs]),
        joined_column([str(r["event_id"]) for _, _, r in refs]),
        joined_column([str(r["captured_at"]) for _, _, r in refs]),
    )
    _put_back(keys, records, rows)
    return list(records)


def hydrate_sealed(
    keys: KeyRing | Callable[[], KeyRing],
    records: Sequence[dict[str, Any]],
    sealed: Sequence[tuple[int, datetime, Sequence[Sealed]]],
) -> list[dict[str, Any]]:
    """`hydrate` from vault rows the caller read with the events (`sealed_of_event`):
    `sealed`, aligned with `records`, gives each record's row (id, captured_at) and its
    vault rows. No query; the same records `hydrate` makes."""
    refs = _refs(records)
    rows = [(n, *sealed[n][:2], entry) for n, _, _ in refs for entry in sealed[n][2]]
    _put_back(keys, records, rows)
    return list(records)


def _refs(records: Sequence[dict[str, Any]]) -> list[tuple[int, Any, dict[str, Any]]]:
    """The records that name vault rows, with their `pii_ref` taken out (it never leaves)."""
    return [
        (n, r.pop(PII_REF), r) for n, r in enumerate(records) if isinstance(r.get(PII_REF), dict)
    ]


def _put_back(
    keys: KeyRing | Callable[[], KeyRing],
    records: Sequence[dict[str, Any]],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Open each vault row (record index, event row id, captured_at, `Sealed`) into its
    record's detection; a row no key here opens is logged and left out (fail closed)."""
    opener: _Opener | None = None
    for n, event_pk, captured_at, sealed in rows:
        if opener is None:  # the key ring is loaded only when some row needs it
            opener = _Opener(keys if isinstance(keys, KeyRing) else keys())
        try:
            opened = opener.open(sealed, event_pk, captured_at)
        except (InvalidTag, KeyError):  # a data key no master key here opens: fail closed
            log.warning("pii_unreadable", subject=sealed[1])
            continue
        detection = sealed[0]
        detections = records[n].get("detections") or []
        if isinstance(opened, dict) and detection < len(detections):
            detections[detection]["attributes"] = opened


async def forget_subject(conn: asyncpg.Connection, *, subject: str) -> ForgetOutcome:
    """Destroy the subject's data key; scrub clear attributes from payloads stored before the
    vault (payloads stored since hold none)."""
    key_gone = await conn.execute(
        """UPDATE pii_subject_key SET wrapped_key = NULL, master_key_id = NULL,
                  shredded_at = now() WHERE subject = $1""",
        subject,
    )
    refs = await conn.fetch(
        "SELECT event_pk, captured_at, detection FROM pii_attribute WHERE subject = $1", subject
    )
    scrubbed = 0
    for ref in refs:
        status = await conn.execute(
            """UPDATE detection_event
               SET payload = jsonb_set(payload, ARRAY['detections', $3::text, 'attributes'],
                                       '{}'::jsonb)
               WHERE id = $1 AND captured_at = $2
                 AND payload #> ARRAY['detections', $3::text, 'attributes'] <> '{}'::jsonb""",
            ref["event_pk"],
            ref["captured_at"],
            str(ref["detection"]),
        )
        scrubbed += int(status.split()[-1])
    return ForgetOutcome(
        subject=subject,
        known=key_gone.endswith(" 1"),
        vault_rows=len(refs),
        payloads_scrubbed=scrubbed,
    )


async def rotate_master(conn: asyncpg.Connection, keys: KeyRing, *, batch: int = 1000) -> int:
    """Re-wrap every data key not under the current master key; returns how many."""
    done = 0
    while True:
        rows = await conn.fetch(
            """SELECT subject, master_key_id, wrapped_key FROM pii_subject_key
               WHERE wrapped_key IS NOT NULL AND master_key_id <> $1 LIMIT $2 FOR UPDATE""",
            keys.current_id,
            batch,
        )
        if not rows:
            return done
        rewrapped = [
            (
                r["subject"],
                keys.current_id,
                keys.wrap(
                    keys.unwrap(
                        bytes(r["wrapped_key"]), master_id=r["master_key_id"], subject=r["subject"]
                    ),
                    subject=r["subject"],
                ),
            )
            for r in rows
        ]
        await conn.executemany(
            "UPDATE pii_subject_key SET master_key_id = $2, wrapped_key = $3 WHERE subject = $1",
            rewrapped,
        )
        done += len(rows)
