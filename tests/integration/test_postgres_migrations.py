"""Schema migrations on a real PostgreSQL: from empty, re-run, concurrent, refused."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import asyncpg
import pytest

from mailblast.adapters.postgres.migrate import (
    Migration,
    MigrationError,
    available_migrations,
    load_migrations,
    schema_version,
    upgrade_dsn,
)
from mailblast.entrypoints.db import run_db_upgrade

pytestmark = pytest.mark.integration

SHIPPED = [m.label for m in available_migrations()]


async def tables(dsn: str) -> set[str]:
    """Names of the tables in the public schema."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows}


async def version_of(dsn: str) -> int:
    """The schema version recorded in the database."""
    conn = await asyncpg.connect(dsn)
    try:
        return await schema_version(conn)
    finally:
        await conn.close()


async def test_upgrade_from_empty_applies_every_migration_once(pg_database: str) -> None:
    """An empty database gets every shipped migration, recorded, and the tables exist."""
    applied = await upgrade_dsn(pg_database)
    assert [m.label for m in applied] == SHIPPED
    assert await version_of(pg_database) == len(SHIPPED)
    assert {
        "schema_migrations",
        "notification_campaigns",
        "notification_recipients",
        "notification_import_chunks",
    } <= await tables(pg_database)


async def test_upgrade_twice_applies_nothing_the_second_time(pg_database: str) -> None:
    """Re-running the upgrade is a no-op."""
    await upgrade_dsn(pg_database)
    assert await upgrade_dsn(pg_database) == []
    assert await version_of(pg_database) == len(SHIPPED)


async def test_concurrent_upgrades_apply_each_migration_once(pg_database: str) -> None:
    """Two upgrades started together serialize on the advisory lock; neither fails."""
    first, second = await asyncio.gather(upgrade_dsn(pg_database), upgrade_dsn(pg_database))
    assert sorted([m.label for m in first + second]) == SHIPPED


async def test_a_database_newer_than_the_code_is_refused(pg_database: str) -> None:
    """A schema migrated by a newer mailblast is refused with a clear error, untouched."""
    await upgrade_dsn(pg_database)
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, 'future', 'x')",
            len(SHIPPED) + 1,
        )
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="newer than this mailblast knows"):
        await upgrade_dsn(pg_database)
    out = io.StringIO()
    assert await run_db_upgrade(pg_database, out=out) == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "newer" in lines[0]


async def test_an_applied_migration_that_changed_is_refused(pg_database: str) -> None:
    """Editing a migration after it was applied is an error, not a silent drift."""
    await upgrade_dsn(pg_database)
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited\n") for m in available_migrations()]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await upgrade_dsn(pg_database, migrations=edited)


async def test_a_failing_migration_leaves_the_schema_as_it_was(pg_database: str) -> None:
    """All pending migrations run in one transaction: a broken one rolls back the others."""
    broken = [
        *available_migrations(),
        Migration(len(SHIPPED) + 1, "broken", "ALTER TABLE no_such_table ADD COLUMN x int;"),
    ]
    with pytest.raises(MigrationError, match="broken failed"):
        await upgrade_dsn(pg_database, migrations=broken)
    assert await version_of(pg_database) == 0
    assert "notification_recipients" not in await tables(pg_database)


async def test_db_upgrade_command_prints_what_it_applied(pg_database: str) -> None:
    """The command lists applied migrations and exits 0, then says up to date."""
    out = io.StringIO()
    assert await run_db_upgrade(pg_database, out=out) == 0
    assert out.getvalue().splitlines() == [f"applied {label}" for label in SHIPPED]
    again = io.StringIO()
    assert await run_db_upgrade(pg_database, out=again) == 0
    assert again.getvalue() == "database schema is up to date\n"


async def test_db_upgrade_command_reports_an_unreachable_server_in_one_line() -> None:
    """A server that refuses connections gives exit 2 and one line, no traceback."""
    out = io.StringIO()
    code = await run_db_upgrade("postgresql://postgres:secret@127.0.0.1:1/nowhere", out=out)
    assert code == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot connect to postgresql://postgres:***@127.0.0.1:1/")
    assert "secret" not in lines[0]


def test_migration_files_must_be_numbered_without_gaps(tmp_path: Path) -> None:
    """A gap in the numbering is refused before anything touches a database."""
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "0003_third.sql").write_text("SELECT 3;")
    (tmp_path / "README.md").write_text("not a migration")
    with pytest.raises(MigrationError, match="0003_third"):
        load_migrations(tmp_path)
