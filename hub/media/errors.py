"""Errors of the media domain."""

from hub.kit.errors import UnavailableError


class MediaNotScannedError(UnavailableError):
    """The image would be released to this recipient once the hub has scanned it; until then
    it is withheld (503 with Retry-After, so clients ask again instead of giving up)."""

    code = "media_not_scanned"
