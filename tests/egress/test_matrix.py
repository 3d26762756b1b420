"""The egress matrix: every way out of hub/policy/egress.py for every recipient of the default
bundle, with a frame holding a face and a plate referenced by two events (one saw the face,
one the plate). Each cell looks at what reached the recipient: the raw bytes (plate text in
clear, hashed or absent; exact or generalised times; track ids), the JSON envelope (no field
outside the released record) and the pixels (face and plate regions blurred or untouched, as
the recipient's profile says)."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest

from hub.app import create_app
from hub.policy.egress import EGRESS
from hub.runtime import Services
from hub.settings import Settings
from tests.egress.frames import FACE, PLATE, PLATE_TEXT, measure
from tests.egress.world import (
    FACE_TRACK,
    OFFICER,
    OPERATOR,
    PLATE_TRACK,
    RUNNERS,
    UNLISTED,
    Seen,
    World,
)
from tests.hub.delivery.harness import Receivers
from tests.support import EdgeNode, ThreadedServer

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]


@dataclass(frozen=True, slots=True)
class Profile:
    """What the default bundle lets a recipient see."""

    receives: bool
    plate: Literal["clear", "hashed", "absent"] = "absent"
    blur: frozenset[str] = frozenset()
    time: Literal["exact", "hour", "none"] = "exact"
    tracks: bool = True


PROFILES = {
    "police-north": Profile(receives=True, plate="clear", blur=frozenset({"face"})),
    "transit-authority": Profile(receives=True, plate="hashed", blur=frozenset({"face", "plate"})),
    "city-analytics": Profile(
        receives=True, blur=frozenset({"face", "plate"}), time="hour", tracks=False
    ),
    UNLISTED: Profile(receives=False),
    OFFICER: Profile(receives=True, plate="hashed", blur=frozenset({"face", "plate"})),
    OPERATOR: Profile(receives=True, time="none", tracks=False),
}
AGENCY_PATHS = [e.name for e in EGRESS if e.recipient == "agency"]
OFFICER_PATHS = [e.name for e in EGRESS if e.recipient == "officer"]
IMAGE_PATHS = {e.name for e in EGRESS if "image" in e.releases}
# city-analytics may not fetch media at all (policy: clearance 2 for /v1/feeds/media).
REFUSED = {("feed-media", "city-analytics")}
# Envelope keys outside `record` that carry no event data of their own (an incident's
# linked event also says who linked it, when, the release verdict and its image ids).
ENVELOPE_KEYS = {"seq", "decision_id", "cursor", "type", "record"}
# Event fields an envelope may repeat, only as the released record has them.
COPIED = {"event_id", "captured_at"}
LINK_KEYS = {"linked_at", "linked_by", "allowed", "reason", "media"}

# Cells that fail only because parallel work of issue 14 has not landed yet.
PENDING: dict[tuple[str, str], str] = {}


def cells() -> Iterator[Any]:
    pairs = [(p, r) for p in AGENCY_PATHS for r in ("police-north", "transit-authority",
             "city-analytics", UNLISTED)]  # fmt: skip
    pairs += [(p, OFFICER) for p in OFFICER_PATHS] + [("ops-delivery", OPERATOR)]
    for path, recipient in pairs:
        reason = PENDING.get((path, recipient))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(path, recipient, id=f"{path}-{recipient}", marks=marks)


@pytest.fixture
def matrix_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Quick retries; this test's tokens file."""
    return msgspec.structs.replace(
        settings,
        api_tokens_file=str(tmp_path / "tokens.toml"),
        delivery_backoff_base_seconds=0.05,
        delivery_backoff_max_seconds=0.5,
    )


@pytest.fixture
def world(
    matrix_settings: Settings, services: Services, edge_node: EdgeNode, tmp_path: Path
) -> Iterator[World]:
    """The hub on loopback with demo receivers beside it."""
    receivers = Receivers(tmp_path)
    receivers.start()
    try:
        with ThreadedServer(create_app(matrix_settings)) as server:
            made = World(
                settings=matrix_settings,
                services=services,
                server=server,
                node=edge_node,
                tokens_file=Path(matrix_settings.api_tokens_file),
                receivers=receivers,
            )
            made.issue_tokens()
            yield made
    finally:
        receivers.stop()


def test_every_way_out_is_in_the_matrix() -> None:
    assert set(RUNNERS) == {e.name for e in EGRESS}


@pytest.mark.parametrize(("path", "recipient"), list(cells()))
async def test_what_reaches_the_recipient(world: World, path: str, recipient: str) -> None:
    seen = await RUNNERS[path](world, recipient)
    profile = PROFILES[recipient]

    if not profile.receives or (path, recipient) in REFUSED:
        assert_nothing_reached(world, seen)
        return
    assert seen.bodies or seen.images, f"nothing reached {recipient} through {path}"
    if path in IMAGE_PATHS:
        assert_pixels(world, seen, profile)
    if seen.bodies and path != "ops-delivery":
        assert_text(world, seen.raw, profile, records=path != "decision-lookup")
    if path == "ops-delivery":
        assert_metadata_only(world, seen)
    for item in seen.items:
        assert_envelope(item, allowed=ENVELOPE_KEYS | (LINK_KEYS if "incident" in path else set()))
    if path in AGENCY_PATHS:
        await assert_no_hub_wide_position(world, seen)


def assert_nothing_reached(world: World, seen: Seen) -> None:
    raw = seen.raw
    assert not seen.images
    assert PLATE_TEXT.encode() not in raw
    for event_id in world.event_ids:
        assert event_id.encode() not in raw


def assert_pixels(world: World, seen: Seen, profile: Profile) -> None:
    assert seen.images, f"no image reached the recipient (refused: {seen.refused})"
    for image in seen.images:
        for name, region in (("face", FACE), ("plate", PLATE)):
            found = measure(world.image, image, region)
            if name in profile.blur:
                assert found.blurred, f"{name} region not blurred: {found}"
            else:
                assert found.as_original, f"{name} region changed: {found}"


def assert_text(world: World, raw: bytes, profile: Profile, *, records: bool) -> None:
    exact = world.captured_at.strftime("%H:%M:%S").encode()
    hour = world.captured_at.strftime("%H:00:00").encode()
    if profile.plate == "clear" and records:
        assert PLATE_TEXT.encode() in raw
    else:
        assert PLATE_TEXT.encode() not in raw, "plate text in clear"
    if profile.time == "hour":
        assert exact not in raw, "exact capture time"
        assert hour in raw, "capture time missing"
    elif records:
        assert exact in raw, "capture time missing"
    for track in (FACE_TRACK, PLATE_TRACK):
        assert (track.encode() in raw) == (profile.tracks and records), f"track id {track}"


def assert_metadata_only(world: World, seen: Seen) -> None:
    exact = world.captured_at.strftime("%H:%M:%S").encode()
    for body in seen.bodies:
        for leak in (PLATE_TEXT.encode(), exact, FACE_TRACK.encode(), b'"record"'):
            assert leak not in body


async def assert_no_hub_wide_position(world: World, seen: Seen) -> None:
    """An agency is shown its own pseudonyms of feed positions, never the hub's, which would
    count the events it was not shown (ADR 0042)."""
    shown = {int(item["seq"]) for item in seen.items if "seq" in item}
    rows = await world.services.db.pool.fetch("SELECT seq FROM feed_entry")
    assert not shown & {r["seq"] for r in rows}, "a hub-wide feed position reached an agency"


def assert_envelope(item: dict[str, Any], *, allowed: set[str]) -> None:
    outside = set(item) - allowed - COPIED
    assert not outside, f"fields outside the released record: {outside}"
    record = item.get("record") or {}
    for key in COPIED & set(item):
        assert item[key] == record.get(key), f"{key} beside the record differs from it"
