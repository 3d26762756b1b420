"""`release_image`: one image, every region known on it, measured on the pixels."""

import hashlib
import io

import msgspec
import pytest
from PIL import Image

from hub.media import KnownImage, Region
from hub.media.schemas import WHOLE_IMAGE
from hub.policy.release import Released, release_image, withheld_for_now
from hub.policy.schemas import MediaObligation
from tests.hub.media.builders import (
    FACE_BOX,
    PLATE_BOX,
    assert_blurred,
    assert_clear,
    assert_unchanged_outside,
    demo_frame,
)

# The blur classes of the default bundle's profiles (policies/data.json).
PROFILES = {
    "plates_in_clear": ["face"],
    "plates_hashed": ["face", "plate"],
    "anonymous": ["person", "face", "plate"],
}


def decision(*classes: str, allowed: bool = True, error: str | None = None) -> Released:
    """A release of one event for one recipient, as `release()` returns it."""
    return Released(
        decision_id=f"d-{'-'.join(classes)}-{allowed}",
        allowed=allowed,
        reason="test",
        record={} if allowed else None,
        manifest=[],
        media=[MediaObligation(op="blur", classes=list(classes))] if allowed else [],
        error=error,
    )


def image(*regions: Region, scanned: bool = True) -> KnownImage:
    """The demo frame as the hub knows it."""
    return KnownImage(
        sha256=hashlib.sha256(demo_frame()).hexdigest(),
        content_type="image/png",
        storage_path="x",
        scanned=scanned,
        regions=list(regions),
    )


# One face event and one plate event reference the frame: each reported only its own box.
FACE = Region(label="face", box=FACE_BOX, source="edge")
PLATE = Region(label="plate", box=PLATE_BOX, source="edge")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_profile_blurs_every_region_of_its_classes_whichever_event_asked(
    profile: str,
) -> None:
    frame = demo_frame()
    classes = PROFILES[profile]
    # Asked through the face event, then through the plate event: the same pixels leave.
    for asked in ("face", "plate"):
        shown = release_image([decision(*classes)], image=image(FACE, PLATE), data=frame)
        assert shown is not None, asked
        assert_blurred(frame, shown, FACE_BOX)
        if "plate" in classes:
            assert_blurred(frame, shown, PLATE_BOX)
        else:
            assert_clear(frame, shown, PLATE_BOX)
        assert_unchanged_outside(frame, shown, FACE_BOX, PLATE_BOX)


def test_the_hubs_scan_adds_what_the_edge_missed() -> None:
    frame = demo_frame()
    by_hub = Region(label="face", box=FACE_BOX, source="hub")
    shown = release_image([decision("face", "plate")], image=image(PLATE, by_hub), data=frame)
    assert shown is not None
    assert_blurred(frame, shown, FACE_BOX)
    assert_blurred(frame, shown, PLATE_BOX)


def test_obligations_of_every_allowing_release_are_united() -> None:
    frame = demo_frame()
    shown = release_image(
        [decision("face"), decision("plate"), decision(allowed=False)],
        image=image(FACE, PLATE),
        data=frame,
    )
    assert shown is not None
    assert_blurred(frame, shown, FACE_BOX)
    assert_blurred(frame, shown, PLATE_BOX)


def test_an_unscanned_image_is_withheld_from_a_recipient_that_blurs() -> None:
    frame = demo_frame()
    unscanned = image(FACE, PLATE, scanned=False)
    assert release_image([decision("face")], image=unscanned, data=frame) is None
    # A recipient whose policy blurs nothing gets its pixels as stored, scanned or not.
    shown = release_image([decision()], image=unscanned, data=frame)
    assert shown is not None
    assert_clear(frame, shown, WHOLE_IMAGE)


def test_a_crop_of_a_blurred_class_is_blurred_whole() -> None:
    frame = demo_frame()
    crop = Region(label="face", box=WHOLE_IMAGE, source="edge")
    shown = release_image([decision("face")], image=image(crop), data=frame)
    assert shown is not None
    assert_blurred(frame, shown, WHOLE_IMAGE)
    # A recipient that may see faces gets it in clear.
    clear = release_image([decision("plate")], image=image(crop), data=frame)
    assert clear is not None
    assert_clear(frame, clear, WHOLE_IMAGE)


@pytest.mark.parametrize(
    "decisions",
    [
        [],
        [decision(allowed=False)],
        [decision("face"), decision(allowed=False, error="policy unavailable")],
    ],
    ids=["no-release", "denied", "policy-error"],
)
def test_what_is_not_accounted_for_is_withheld(decisions: list[Released]) -> None:
    assert release_image(decisions, image=image(FACE), data=demo_frame()) is None


def test_a_missing_or_broken_file_is_withheld() -> None:
    assert release_image([decision("face")], image=image(FACE), data=None) is None
    broken = b"\x89PNG\r\n\x1a\nbroken"
    assert release_image([decision("face")], image=image(FACE), data=broken) is None


def test_only_a_missing_scan_or_a_policy_failure_is_worth_asking_again() -> None:
    pending = msgspec.structs.replace(image(FACE, scanned=False), pending=True)
    failed = image(FACE, scanned=False)  # scanned, but the scan failed: it will not mend
    waiting = withheld_for_now([decision("face")], image=pending)
    assert waiting is not None
    assert waiting.code == "media_not_scanned"
    broken = withheld_for_now([decision("face", error="no bundle")], image=image(FACE))
    assert broken is not None
    assert broken.code == "unavailable"
    assert withheld_for_now([decision("face")], image=failed) is None
    assert withheld_for_now([decision(allowed=False)], image=pending) is None


@pytest.mark.parametrize("blur", [[], ["face"]], ids=["blurs-nothing", "blurs-faces"])
def test_only_pixels_leave_never_the_files_metadata(blur: list[str]) -> None:
    exif = Image.Exif()
    exif[0x0132] = "2026:12:04 10:17:42"  # DateTime: exact, where policy generalises time
    exif[0x010F] = "maker-serial-0042"
    out = io.BytesIO()
    with Image.open(io.BytesIO(demo_frame())) as frame:
        frame.convert("RGB").save(out, format="JPEG", exif=exif.tobytes())
    jpeg = out.getvalue()
    assert b"maker-serial-0042" in jpeg
    stored = msgspec.structs.replace(image(FACE), content_type="image/jpeg")
    shown = release_image([decision(*blur)], image=stored, data=jpeg)
    assert shown is not None
    assert b"maker-serial-0042" not in shown
    assert b"2026:12:04" not in shown
    assert "exif" not in Image.open(io.BytesIO(shown)).info
