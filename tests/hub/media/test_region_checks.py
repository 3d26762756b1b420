"""The database refuses region rows whose image hash is not 64 lowercase hex digits (migration
0019 checks it without the regex engine, 0032 over the text's bytes; the accepted values must
be exactly the same)."""

import asyncpg
import pytest

from hub.runtime import Services

pytestmark = [pytest.mark.db]
HEX = "0123456789abcdef" * 4

INSERT = """INSERT INTO media_region (sha256, source, label, x, y, width, height)
            VALUES ($1, 'hub', 'face', 0, 0, 1, 1)"""


@pytest.mark.parametrize(
    "sha256",
    [
        *(HEX[:63], HEX + "0", HEX[:63] + "A", HEX[:63] + "g", HEX[:63] + "\n", ""),
        *(" " + HEX[1:], HEX[:63] + "\u00e9", HEX[:62] + "\u00e9"),
    ],
    # 64 characters in 65 bytes, and 63 in 64: a multibyte character fails by either count.
    ids=["short", "long", "upper", "not-hex", "newline", "empty", "space", "é-64", "é-63"],
)
async def test_a_hash_that_is_not_64_lowercase_hex_digits_is_refused(
    services: Services, sha256: str
) -> None:
    async with services.db.pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(INSERT, sha256)


async def test_a_lowercase_hex_hash_is_stored(services: Services) -> None:
    async with services.db.pool.acquire() as conn:
        await conn.execute(INSERT, HEX)
        assert await conn.fetchval("SELECT count(*) FROM media_region") == 1
