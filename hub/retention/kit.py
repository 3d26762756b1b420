"""What retention and privacy need at run time, built once per process from settings."""

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

    @property
    def keys_dir(self) -> Path:
        """Where the master keys and the subject key live."""
        configured = self.settings.pii_keys_dir
        return Path(configured) if configured else Path(self.settings.secrets_dir) / "pii"

    @property
    def keys(self) -> KeyRing:
        """The key ring (created 0600 on first use)."""
        if self._keys is None:
            self._keys = KeyRing.load(self.keys_dir, current_id=self.settings.pii_master_key_id)
        return self._keys
