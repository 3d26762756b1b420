"""Answering with a stored image so that no browser ever runs it as something else.

An image is sent only as the type its first bytes prove (JPEG or PNG), with
`X-Content-Type-Options: nosniff` and a sandboxing Content-Security-Policy; anything else
goes out as an `application/octet-stream` attachment. A PNG header followed by HTML is then
an image that fails to draw, never a page on the hub's origin.
"""

from litestar import Response

MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def proven_type(data: bytes, declared: str) -> str | None:
    """`declared` when it is JPEG or PNG and the bytes begin like one, else None."""
    kind = declared.split(";", 1)[0].strip().lower()
    magic = MAGIC.get(kind)
    return kind if magic is not None and data.startswith(magic) else None


def image_response(data: bytes, declared: str, *, headers: dict[str, str]) -> Response[bytes]:
    """The image under its proven type (or as an opaque download), with the safe headers."""
    kind = proven_type(data, declared)
    extra = {} if kind else {"Content-Disposition": 'attachment; filename="media.bin"'}
    return Response(
        data,
        media_type=kind or "application/octet-stream",
        headers={**headers, **SAFE_HEADERS, **extra},
    )
