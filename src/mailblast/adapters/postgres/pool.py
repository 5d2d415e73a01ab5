"""A lazily created asyncpg pool, and the translation of asyncpg errors for the services.

Nothing connects at import time or in a constructor: the pool is created on first use,
on the event loop that is running then (a Lambda container keeps one loop for its
life, so one pool serves every warm invocation).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import attrs

from mailblast.domain.errors import MailblastError, PermanentError, TransientError

__all__ = ["PooledConnection", "PostgresPool", "PostgresSettings", "redact_dsn", "translate_error"]

#: What `PostgresPool.connection` hands out.
PooledConnection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"


def redact_dsn(dsn: str) -> str:
    """The DSN with its password (in the authority or a ``password=`` parameter)
    replaced, fit for logs and error messages."""
    parts = urlsplit(dsn)
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"  # an IPv6 address
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if "password=" in parts.query:
        query = [
            (key, "***" if key == "password" else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*/"))
    return urlunsplit(parts)


def _not_negative(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        msg = f"{attribute.name} must not be negative, not {value}"
        raise ValueError(msg)


@attrs.frozen
class PostgresSettings:
    """How to reach PostgreSQL.

    ``statement_cache_size=0`` is required behind RDS Proxy or PgBouncer in transaction
    mode: named prepared statements would pin (or break on) a pooled server connection.
    ``command_timeout`` bounds every statement (seconds, None for no limit);
    ``connect_timeout`` bounds opening a connection.
    """

    dsn: str = attrs.field(repr=lambda dsn: repr(redact_dsn(dsn)))
    min_size: int = attrs.field(default=1, kw_only=True, validator=_not_negative)
    max_size: int = attrs.field(default=10, kw_only=True, validator=_not_negative)
    statement_cache_size: int = attrs.field(default=100, kw_only=True, validator=_not_negative)
    command_timeout: float | None = attrs.field(default=30.0, kw_only=True)
    connect_timeout: float = attrs.field(default=10.0, kw_only=True)
    application_name: str = attrs.field(default="mailblast", kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.max_size < 1 or self.min_size > self.max_size:
            msg = (
                f"need min_size <= max_size and max_size >= 1, not {self.min_size}..{self.max_size}"
            )
            raise ValueError(msg)

    async def connect(self) -> asyncpg.Connection:
        """One connection outside any pool, with these settings (for one-off work)."""
        return await asyncpg.connect(
            self.dsn,
            statement_cache_size=self.statement_cache_size,
            command_timeout=self.command_timeout,
            timeout=self.connect_timeout,
            server_settings={"application_name": self.application_name},
        )


# SQLSTATE classes worth retrying: 08 connection exception, 40 transaction rollback
# (serialization failure, deadlock), 53 insufficient resources (too many connections),
# 57 operator intervention (admin shutdown, statement timeout, cannot connect now).
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57"})
_TRANSIENT_STATES = frozenset(
    {
        "55P03",  # lock_not_available (lock_timeout)
        "25P03",  # idle_in_transaction_session_timeout: the session is gone, a retry works
        "0A000",  # a cached plan went stale after a migration; asyncpg re-prepares on retry
    }
)


def _is_transient(exc: BaseException) -> bool | None:
    """True/False for failures of the database or the way to it, None for anything else."""
    if isinstance(exc, MailblastError):
        return None
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES
    if isinstance(exc, asyncpg.exceptions.OutdatedSchemaCacheError):
        return True  # asyncpg dropped the stale statement; the next attempt re-prepares
    if isinstance(exc, asyncpg.InterfaceError):
        # a lost connection is worth retrying; other interface errors (an operation
        # already in progress, a closed pool) are bugs and would fail again
        return "connection is closed" in str(exc) or "connection was closed" in str(exc)
    if isinstance(exc, (TimeoutError, OSError)):
        return True  # command_timeout, connect timeout, refused or reset connections
    return None


def translate_error(exc: BaseException) -> MailblastError | None:
    """The mailblast error for an asyncpg (or socket) failure, or None for anything else.

    Transient: the connection was lost or refused, a timeout, a serialization failure or
    deadlock, too many connections, a server shutting down. Permanent: everything else
    the server refused (constraint violations, bad SQL, authentication).
    """
    transient = _is_transient(exc)
    if transient is None:
        return None
    kind = TransientError if transient else PermanentError
    return kind(f"PostgreSQL: {type(exc).__name__}: {exc}")


async def _no_session_reset(conn: object) -> None:
    """Return a connection to the pool as it is (an open transaction is still rolled back).

    asyncpg's default reset sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN
    *; RESET ALL`` on every release: one more round trip per use (about 10% of the
    recording rate), and statements RDS Proxy pins a connection for. The adapters never
    leave session state behind (no SET, LISTEN, session advisory lock or cursor outside
    a transaction), so there is nothing to reset.
    """


class PostgresPool:
    """An asyncpg pool created on first use, on the running loop; `close` when done."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"PostgresPool({self.settings!r})"

    async def get(self) -> asyncpg.Pool:
        """The pool, created now if this is the first use on this event loop."""
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._lock is None or self._loop is not loop:
            # a pool (and a lock) belongs to one loop: a new loop starts over
            self._forget()
            self._loop = loop
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._pool is None:
                settings = self.settings
                try:
                    self._pool = await asyncpg.create_pool(
                        settings.dsn,
                        min_size=settings.min_size,
                        max_size=settings.max_size,
                        statement_cache_size=settings.statement_cache_size,
                        command_timeout=settings.command_timeout,
                        timeout=settings.connect_timeout,
                        # visible in pg_stat_activity: operators can tell our sessions apart
                        server_settings={"application_name": settings.application_name},
                        reset=_no_session_reset,
                    )
                except Exception as exc:
                    error = translate_error(exc)
                    if error is None:
                        raise
                    raise error from exc
            return self._pool

    def _forget(self) -> None:
        old, self._pool = self._pool, None
        if old is not None:
            # created on another (probably closed) loop: it cannot be closed gracefully,
            # and its sockets may already be gone with that loop
            with contextlib.suppress(RuntimeError, OSError):
                old.terminate()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PooledConnection]:
        """A pooled connection; asyncpg errors leave as `TransientError`/`PermanentError`.

        It goes back to the pool without a session reset: leave no session state on it
        (no SET, LISTEN or session-level advisory lock; SET LOCAL inside a transaction
        is fine).
        """
        pool = await self.get()
        try:
            async with pool.acquire() as conn:
                yield conn
        except Exception as exc:
            error = translate_error(exc)
            if error is None:
                raise
            raise error from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PooledConnection]:
        """A pooled connection inside a transaction (committed unless the block raises)."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def close(self) -> None:
        """Close every connection; the next use creates a new pool."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self._loop is asyncio.get_running_loop():
            await pool.close()
        else:
            with contextlib.suppress(RuntimeError, OSError):
                pool.terminate()
