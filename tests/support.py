"""Helpers shared by tests: a signed edge node and signed request headers."""

from pathlib import Path

import msgspec

from edge.signing import RequestSigner
from hub.identity import NodeRead

BASE_URL = "http://testserver.local"


class EdgeNode(msgspec.Struct, frozen=True):
    """A registered node and a signer holding its private key."""

    node: NodeRead
    signer: RequestSigner


def signed_headers(signer: RequestSigner, *, path: str, body: bytes,
                   content_type: str = "application/json", **sign_kwargs: object) -> dict[str, str]:
    """Headers for a request signed the way the edge signs it."""
    headers = signer.sign(method="POST", url=f"{BASE_URL}{path}", body=body, **sign_kwargs)  # type: ignore[arg-type]
    return {**headers, "Content-Type": content_type}


def repo_root() -> Path:
    """The repository root."""
    return Path(__file__).resolve().parent.parent
