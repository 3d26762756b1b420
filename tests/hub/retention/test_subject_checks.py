"""The database refuses PII subjects that are not 64 lowercase hex digits (migration 0019
checks it without the regex engine; the accepted values must be exactly the same)."""

import asyncpg
import pytest

from hub.runtime import Services

pytestmark = [pytest.mark.db]
HEX = "fedcba9876543210" * 4

INSERT = """INSERT INTO pii_subject_key (subject, master_key_id, wrapped_key)
            VALUES ($1, 'm1', '\\x00'::bytea)"""


@pytest.mark.parametrize(
    "subject",
    [HEX[:63], HEX + "f", "F" + HEX[1:], "x" + HEX[1:], HEX[:63] + "\n", ""],
    ids=["short", "long", "upper", "not-hex", "newline", "empty"],
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
