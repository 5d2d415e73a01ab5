"""``mailblast db upgrade``: bring a database's schema to this version of mailblast."""

from __future__ import annotations

from typing import TextIO

from mailblast.domain.errors import MailblastError

__all__ = ["run_db_upgrade"]


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def run_db_upgrade(dsn: str, *, out: TextIO) -> int:
    """Apply the missing migrations to ``dsn``; print what was applied and return 0, or
    print one line saying why not and return 2 (never a traceback)."""
    # imported here: the CLI must start (and answer --help) without asyncpg installed
    try:
        from mailblast.adapters.postgres.migrate import upgrade_dsn
    except ImportError as exc:
        print(
            f"error: PostgreSQL support is missing ({exc}); install mailblast[postgres]", file=out
        )
        return 2
    try:
        applied = await upgrade_dsn(dsn)
    except MailblastError as exc:
        print(f"error: {_one_line(str(exc))}", file=out)
        return 2
    except Exception as exc:  # a CLI answers with one line, never a traceback
        print(f"error: {type(exc).__name__}: {_one_line(str(exc))}", file=out)
        return 2
    if not applied:
        print("database schema is up to date", file=out)
    for migration in applied:
        print(f"applied {migration.label}", file=out)
    return 0
