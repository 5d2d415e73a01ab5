"""Versioned schema migrations: ``migrations/NNNN_name.sql`` applied in order, once.

`upgrade` runs every migration the database lacks inside one transaction holding an
advisory lock, so two upgrades started together apply each file once and a failing file
leaves the schema as it was. Applied files are recorded (with a checksum) in
``schema_migrations``. A database whose newest migration is newer than the code's is
refused: old code must not write to a schema it does not know.

Migrations run in a transaction, so a file must not use ``CREATE INDEX CONCURRENTLY``
or anything else PostgreSQL refuses inside one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from importlib import resources
from importlib.abc import Traversable

import asyncpg
import attrs

from mailblast.adapters.postgres.pool import redact_dsn, translate_error
from mailblast.domain.errors import PermanentError

__all__ = [
    "Migration",
    "MigrationError",
    "available_migrations",
    "load_migrations",
    "schema_version",
    "upgrade",
    "upgrade_dsn",
]

#: Key of the transaction-level advisory lock that serializes upgrades ("mailblst").
MIGRATION_LOCK_KEY = 0x6D61696C626C7374

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(PermanentError):
    """The schema cannot be brought to this code's version (the reason is for a person)."""


@attrs.frozen
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str = attrs.field(repr=False)

    @property
    def label(self) -> str:
        """The file name without ``.sql``, e.g. ``0001_initial``."""
        return f"{self.version:04d}_{self.name}"

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text: an applied file must never change."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Traversable) -> list[Migration]:
    """Read ``NNNN_name.sql`` files from ``directory``, in version order.

    Versions must run 1, 2, 3... without gaps or repeats; other files are ignored.
    """
    found: list[Migration] = []
    for entry in directory.iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        found.append(
            Migration(
                version=int(match["version"]),
                name=match["name"],
                sql=entry.read_text(encoding="utf-8"),
            )
        )
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            msg = (
                f"migrations must be numbered 0001, 0002, ... with no gap; found {migration.label}"
            )
            raise MigrationError(msg)
    return found


def available_migrations() -> list[Migration]:
    """The migrations shipped with this version of mailblast."""
    return load_migrations(resources.files("mailblast.adapters.postgres").joinpath("migrations"))


async def schema_version(conn: asyncpg.Connection) -> int:
    """The newest applied migration's version; 0 for a database never migrated."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    return int(version or 0)


def _check_applied(applied: Sequence[asyncpg.Record], known: Sequence[Migration]) -> None:
    by_version = {m.version: m for m in known}
    newest_known = known[-1].version if known else 0
    for row in applied:
        version = row["version"]
        label = f"{version:04d}_{row['name']}"
        if version > newest_known:
            msg = (
                f"the database schema is at migration {label}, newer than this mailblast "
                f"knows (newest: {newest_known:04d}); run a mailblast at least as new as the "
                "one that migrated it"
            )
            raise MigrationError(msg)
        migration = by_version.get(version)
        if migration is None:
            msg = f"the database records migration {label}, which this mailblast does not ship"
            raise MigrationError(msg)
        if row["checksum"] != migration.checksum:
            msg = (
                f"migration {label} was changed after it was applied to this database; "
                "restore the original file and add a new migration instead"
            )
            raise MigrationError(msg)


async def upgrade(
    conn: asyncpg.Connection, *, migrations: Sequence[Migration] | None = None
) -> list[Migration]:
    """Apply the migrations the database lacks, in order, in one transaction; returns
    those applied (none when it is up to date). `MigrationError` if it is newer."""
    known = sorted(
        available_migrations() if migrations is None else migrations, key=lambda m: m.version
    )
    async with conn.transaction():
        # held until commit: a second upgrade waits here, then finds nothing to do
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_CREATE_LEDGER)
        applied = await conn.fetch(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        )
        _check_applied(applied, known)
        done = {row["version"] for row in applied}
        todo = [m for m in known if m.version not in done]
        for migration in todo:
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                msg = f"migration {migration.label} failed: {type(exc).__name__}: {exc}"
                raise MigrationError(msg) from exc
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    return todo


async def upgrade_dsn(
    dsn: str, *, connect_timeout: float = 10.0, migrations: Sequence[Migration] | None = None
) -> list[Migration]:
    """Connect to ``dsn`` and `upgrade` it. Errors are `MigrationError`, or
    `TransientError`/`PermanentError` for connection and server failures."""
    try:
        conn = await asyncpg.connect(
            dsn,
            timeout=connect_timeout,
            # a one-off session; behind RDS Proxy or PgBouncer named statements would pin
            statement_cache_size=0,
            server_settings={"application_name": "mailblast-migrate"},
        )
    except Exception as exc:
        # bad DSNs, refused connections and authentication all name the (redacted) target
        error = translate_error(exc)
        kind = MigrationError if error is None else type(error)
        raise kind(f"cannot connect to {redact_dsn(dsn)}: {type(exc).__name__}: {exc}") from exc
    try:
        return await upgrade(conn, migrations=migrations)
    except MigrationError:
        raise
    except Exception as exc:
        error = translate_error(exc)
        if error is None:
            raise
        raise error from exc
    finally:
        await conn.close()
