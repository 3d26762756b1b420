"""`hub migrate --check`: pending SQL judged against real table sizes."""

from pathlib import Path

import asyncpg
import pytest

from hub.observability.migration_check import check_pending
from hub.settings import Settings
from tests.support import run_hub

pytestmark = [pytest.mark.db]

MODULE = """ID = "2999-01-01T00:00:0{n}:000000"

async def forwards():
    return sql_migration(migration_id=ID, description="x", sql_file="{n}.sql")
"""


@pytest.fixture
async def big_table(settings: Settings) -> asyncpg.Connection:
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute(
        "CREATE TABLE obs_big AS SELECT g AS id, 'x' AS note FROM generate_series(1, 500) g"
    )
    await conn.execute("ANALYZE obs_big")
    yield conn
    await conn.execute("DROP TABLE obs_big")
    await conn.close()


def write(folder: Path, n: int, sql: str) -> None:
    (folder / f"m_{n}.py").write_text(MODULE.format(n=n), encoding="utf-8")
    (folder / f"{n}.sql").write_text(sql, encoding="utf-8")


async def test_risky_pending_sql_on_a_big_table_is_refused(
    big_table: asyncpg.Connection, tmp_path: Path
) -> None:
    write(tmp_path, 1, "CREATE INDEX obs_big_note ON obs_big (note);")
    write(tmp_path, 2, "ALTER TABLE obs_big ADD COLUMN t uuid DEFAULT gen_random_uuid();")
    report = await check_pending(big_table, versions_dir=tmp_path, sql_dir=tmp_path, big_rows=100)
    assert report.pending == ["m_1", "m_2"]
    assert [(f.migration, f.rule, f.table) for f in report.findings] == [
        ("m_1", "create_index_without_concurrently", "obs_big"),
        ("m_2", "add_column_volatile_default", "obs_big"),
    ]
    assert report.findings[0].rows >= 400
    assert not report.ok
    # Above the threshold nothing is big.
    relaxed = await check_pending(
        big_table, versions_dir=tmp_path, sql_dir=tmp_path, big_rows=10_000
    )
    assert relaxed.ok


async def test_cli_passes_when_nothing_is_pending(settings: Settings) -> None:
    done = await run_hub("migrate", "--check", env={"HUB_DATABASE_URL": settings.database_url})
    assert done.returncode == 0, done.stderr
    assert "0 pending migration(s)" in done.stdout
