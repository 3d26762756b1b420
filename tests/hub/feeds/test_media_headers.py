"""Released media cannot be sniffed into a page: proven image type, nosniff, sandbox CSP
(before: the stored content type was echoed without `X-Content-Type-Options`)."""

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from hub.media import scan_image
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.feeds.builders import NORTH_CAMERA, bearer, event, striped_png, upload, upload_media
from tests.hub.media.builders import scan_kit
from tests.support import EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]


async def test_feed_media_goes_out_nosniff_under_its_proven_type(
    feed_client: AsyncTestClient[Any],
    services: Services,
    edge_node: EdgeNode,
    tokens: dict[str, str],
    settings: Settings,
) -> None:
    data, sha = striped_png()
    await upload_media(feed_client, edge_node, data, sha)
    await upload(
        feed_client,
        edge_node,
        event(NORTH_CAMERA, media=[{"sha256": sha, "content_type": "image/png"}]),
    )
    await scan_image(services.db, scan_kit(settings.media_dir), sha256=sha)
    shown = await feed_client.get(f"/v1/feeds/media/{sha}", headers=bearer(tokens["police"]))
    assert shown.status_code == 200, shown.text
    assert shown.headers["content-type"] == "image/png"
    assert shown.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in shown.headers["content-security-policy"]
    assert shown.content.startswith(b"\x89PNG\r\n\x1a\n")
