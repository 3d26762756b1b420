"""What retention and privacy need at run time, built once per process from settings."""

from functools import cache
from pathlib import Path

from hub.retention.capacity import CapacityGuard
from hub.retention.crypto import KeyRing
from hub.settings import Settings


class RetentionKit:
    """The PII key ring (loaded on first use, so processes that never touch PII create no
    key files) and the media disk-pressure guard."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.capacity = CapacityGuard(
            folder=Path(settings.media_dir), max_used_percent=settings.media_disk_max_used_percent
        )
        self._keys: KeyRing | None = None
        _PROCESS[:] = [self]

    @property
    def keys_dir(self) -> Path:
        """Where the master keys and the subject key live."""
        return _keys_dir(self.settings)

    @property
    def keys(self) -> KeyRing:
        """The key ring (created 0600 on first use)."""
        if self._keys is None:
            self._keys = KeyRing.load(self.keys_dir, current_id=self.settings.pii_master_key_id)
        return self._keys


# The kit this process built last: how code given no settings (a delivery attempt, an
# incident view) finds the key ring to re-hydrate payloads with.
_PROCESS: list[RetentionKit] = []


def _keys_dir(settings: Settings) -> Path:
    configured = settings.pii_keys_dir
    return Path(configured) if configured else Path(settings.secrets_dir) / "pii"


@cache
def _load(folder: Path, current_id: str) -> KeyRing:
    return KeyRing.load(folder, current_id=current_id)


def keys_for(settings: Settings) -> KeyRing:
    """The key ring of these settings (loaded once per folder and master key id)."""
    return _load(_keys_dir(settings), settings.pii_master_key_id)


def process_keys() -> KeyRing:
    """The key ring of the retention kit this process built (see `hub.runtime`)."""
    if not _PROCESS:
        raise RuntimeError("no retention kit was built in this process")
    return _PROCESS[-1].keys
