"""The database refuses PII subjects that are not 64 lowercase hex digits (migration 0019
checks it without the regex engine, 0032 over the text's bytes; the accepted values must be
exactly the same)."""

import asyncpg
import pytest

from hub.runtime import Services

pytestmark = [pytest.mark.db]
HEX = "fedcba9876543210" * 4

INSERT = """INSERT INTO pii_subject_key (subject, master_key_id, wrapped_key)
            VALUES ($1, 'm1', '\\x00'::bytea)"""


@pytest.mark.parametrize(
    "subject",
    [
        *(HEX[:63], HEX + "f", "F" + HEX[1:], "x" + HEX[1:], HEX[:63] + "\n", ""),
        *(HEX[:63] + "\u00e9", HEX[:62] + "\u00e9"),
    ],
    # 64 characters in 65 bytes, and 63 in 64: a multibyte character fails by either count.
    ids=["short", "long", "upper", "not-hex", "newline", "empty", "é-64", "é-63"],
)
async def test_a_subject_that_is_not_64_lowercase_hex_digits_is_refused(
    services: Services, subject: str
) -> None:
    async with services.db.pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(INSERT, subject)


async def test_a_lowercase_hex_subject_is_stored(services: Services) -> None:
    async with services.db.pool.acquire() as conn:
        await conn.execute(INSERT, HEX)
        assert await conn.fetchval("SELECT count(*) FROM pii_subject_key") == 1
