"""How settings shape bundle uploads: which keys are trusted, whether signing is required.

Signing is always required in production, whatever `policy_signing_required` says (a flag
left at `false` by mistake must not open the door); development and test environments may
turn it off, e.g. `HUB_POLICY_SIGNING_REQUIRED=false` for `hub up` with unsigned bundles.
"""

from pathlib import Path

import structlog

from hub.policy.bundles.archive import ArchiveLimits
from hub.policy.bundles.errors import SigningKeysError
from hub.policy.bundles.keys import KeysFileError, read_verify_keys
from hub.policy.bundles.service import UploadRules
from hub.settings import Settings

log = structlog.get_logger("hub.policy.bundles")


def signing_required(settings: Settings) -> bool:
    """Whether unsigned bundles are refused in this environment."""
    if settings.environment == "production" and not settings.policy_signing_required:
        log.warning("policy_signing_required=false is ignored in production")
        return True
    return settings.policy_signing_required


def upload_rules(settings: Settings) -> UploadRules:
    """The rules an upload is checked against now (the keys file is read on every call,
    so a rotated key takes effect without a restart)."""
    try:
        keys = read_verify_keys(Path(settings.policy_verify_keys_file))
    except KeysFileError as exc:
        raise SigningKeysError(str(exc)) from None
    return UploadRules(
        keys=keys,
        signing_required=signing_required(settings),
        limits=ArchiveLimits.for_archive(settings.max_bundle_bytes),
    )
