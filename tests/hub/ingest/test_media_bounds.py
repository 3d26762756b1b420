"""Media uploads are bounded by the pixels their header declares, not only by their bytes."""

import hashlib
import io
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from PIL import Image

from hub.settings import Settings
from tests.support import EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis]


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, format="PNG")
    return out.getvalue()


async def upload(client: AsyncTestClient, node: EdgeNode, data: bytes) -> tuple[int, dict]:
    sha = hashlib.sha256(data).hexdigest()
    path = f"/v1/edge/media/{sha}"
    headers = signed_headers(node.signer, path=path, body=data, content_type="image/png")
    response = await client.post(path, content=data, headers=headers)
    assert response.headers["content-type"].startswith("application/")
    return response.status_code, response.json()


async def test_a_small_file_declaring_49_m_pixels_is_refused_and_not_stored(
    client: AsyncTestClient, edge_node: EdgeNode, settings: Settings
) -> None:
    bomb = png(7000, 7000)
    assert len(bomb) < 200_000
    status, problem = await upload(client, edge_node, bomb)
    assert status == 413
    assert problem["type"] == "/problems/image_too_large"
    assert "7000 x 7000" in problem["detail"]
    sha = hashlib.sha256(bomb).hexdigest()
    assert not (Path(settings.media_dir) / sha[:2] / sha[2:4] / sha).exists()


async def test_a_camera_sized_image_is_stored(client: AsyncTestClient, edge_node: EdgeNode) -> None:
    status, answer = await upload(client, edge_node, png(1920, 1080))
    assert (status, answer["created"]) == (200, True)
