"""PostgreSQL for the tests: a server, a fresh migrated database per session, clean tables
per test, and the repositories as contract-suite backends.

The server is found in this order: ``MAILBLAST_TEST_DSN``; a local server on
127.0.0.1:5432; a testcontainers PostgreSQL where Docker works. Without one the tests
are skipped, except with ``MAILBLAST_REQUIRE_INTEGRATION=1`` (CI), where it is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from mailblast.adapters.postgres import (
    PostgresCampaignRepo,
    PostgresPool,
    PostgresRecipientRepo,
    PostgresSettings,
    upgrade_dsn,
)

__all__ = [
    "campaign_repo_postgres",
    "pg_database",
    "pg_dsn",
    "pg_pool",
    "pg_server",
    "recipient_repo_postgres",
]

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
TABLES = ("notification_recipients", "notification_import_chunks", "notification_campaigns")


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


async def _reachable(dsn: str) -> str | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("MAILBLAST_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"PostgreSQL is required (MAILBLAST_REQUIRE_INTEGRATION=1): {reason}")
    pytest.skip(f"no PostgreSQL: {reason}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A DSN of a reachable PostgreSQL server (any database on it)."""
    given = os.environ.get("MAILBLAST_TEST_DSN")
    if given:
        problem = asyncio.run(_reachable(given))
        if problem:
            _unavailable(f"MAILBLAST_TEST_DSN is unreachable: {problem}")
        yield given
        return
    problem = asyncio.run(_reachable(LOCAL_DSN))
    if problem is None:
        yield LOCAL_DSN
        return
    with _container() as dsn:
        if dsn is None:
            _unavailable(f"none on 127.0.0.1:5432 ({problem}) and no Docker for testcontainers")
        yield str(dsn)


@contextlib.contextmanager
def _container() -> Iterator[str | None]:
    try:
        from testcontainers.postgres import PostgresContainer  # type: ignore[import-not-found]
    except ImportError:
        yield None
        return
    try:
        container = PostgresContainer("postgres:15", driver=None).start()
    except Exception:  # no Docker (or no image) means no container
        yield None
        return
    try:
        yield container.get_connection_url()
    finally:
        container.stop()


async def create_database(server_dsn: str, *, migrate: bool = True) -> str:
    """A new empty database ``mailblast_test_<random>`` (migrated unless told not to)."""
    name = f"mailblast_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(server_dsn, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = with_database(server_dsn, name)
    if migrate:
        await upgrade_dsn(dsn)
    return dsn


async def drop_database(server_dsn: str, dsn: str) -> None:
    """Drop a database made by `create_database`, closing whatever is still connected."""
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(server_dsn, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A fresh database with every migration applied, for this test session only."""
    try:
        dsn = asyncio.run(create_database(pg_server))
    except asyncpg.InsufficientPrivilegeError:
        # a given server where we may not create databases: use its database as it is
        asyncio.run(upgrade_dsn(pg_server))
        yield pg_server
        return
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(pg_server, dsn))


@pytest.fixture
async def pg_database(pg_server: str) -> AsyncIterator[str]:
    """A fresh empty database (no migration applied), dropped after the test."""
    dsn = await create_database(pg_server, migrate=False)
    try:
        yield dsn
    finally:
        await drop_database(pg_server, dsn)


async def truncate(dsn: str) -> None:
    """Empty every mailblast table and restart the recipient ids at 1."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")
    finally:
        await conn.close()


@pytest.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[PostgresPool]:
    """A pool on the session database, with every table emptied first."""
    await truncate(pg_dsn)
    pool = PostgresPool(PostgresSettings(pg_dsn, min_size=1, max_size=4, command_timeout=60))
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def campaign_repo_postgres(pg_pool: PostgresPool) -> PostgresCampaignRepo:
    """The PostgreSQL campaign repository on clean tables."""
    return PostgresCampaignRepo(pg_pool)


@pytest.fixture
def recipient_repo_postgres(pg_pool: PostgresPool) -> PostgresRecipientRepo:
    """The PostgreSQL recipient repository on clean tables."""
    return PostgresRecipientRepo(pg_pool)
