"""What only a real PostgreSQL shows: concurrent claims and records, chunk retries,
running without a statement cache, and asyncpg errors translated for the services."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from types import MappingProxyType

import asyncpg
import pytest

from factories import T0, people
from mailblast.adapters.postgres import (
    PostgresPool,
    PostgresRecipientRepo,
    PostgresSettings,
    translate_error,
)
from mailblast.domain.errors import PermanentError, TransientError
from mailblast.domain.recipient import OUTCOME_UNKNOWN, NewRecipient, RecipientStatus, SendOutcome

pytestmark = pytest.mark.integration

C = uuid.UUID("00000000-0000-4000-8000-000000000001")
I1 = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
P, S, F = RecipientStatus.PENDING, RecipientStatus.SENT, RecipientStatus.FAILED


def sent(i: int) -> SendOutcome:
    """A sent outcome for recipient ``i``."""
    return SendOutcome(recipient_id=i, status=S, message_id=f"m-{i}")


async def imported(repo: PostgresRecipientRepo, n: int) -> list[int]:
    """Insert ``n`` recipients into import I1; returns their ids."""
    await repo.insert_chunk(C, I1, 0, people(n))
    return [r.id for r in await repo.list_page(C, I1, limit=n)]


@pytest.fixture
def repo(pg_pool: PostgresPool) -> PostgresRecipientRepo:
    """The recipient repository on clean tables."""
    return PostgresRecipientRepo(pg_pool)


# --- claims and records under concurrency ------------------------------------------------


async def test_concurrent_claims_hold_each_recipient_exactly_once(
    repo: PostgresRecipientRepo,
) -> None:
    """Overlapping claims on four connections split the recipients without overlap."""
    ids = await imported(repo, 200)
    windows = [ids[0:120], ids[40:160], ids[80:200], ids[::-1]]
    results = await asyncio.gather(
        *(
            repo.claim(C, I1, window, token=f"t{n}", now=T0, lease_seconds=60)
            for n, window in enumerate(windows)
        )
    )
    claimed = [r.id for result in results for r in result.claimed]
    assert sorted(claimed) == ids
    for n, result in enumerate(results):
        assert all(r.claim == f"t{n}" and r.status is P for r in result.claimed)


async def test_record_and_stop_racing_give_each_recipient_one_outcome(
    repo: PostgresRecipientRepo,
) -> None:
    """A batch recording results while the campaign is stopped: every row gets exactly
    one of the two outcomes, and the two writers' counts add up."""
    ids = await imported(repo, 300)
    await repo.claim(C, I1, ids, token="a", now=T0, lease_seconds=60)
    recorded, stopped = await asyncio.gather(
        repo.record(C, [sent(i) for i in ids], token="a", now=T0),
        repo.fail_pending(C, I1, reason="campaign stopped: test", now=T0),
    )
    assert recorded + stopped == len(ids)
    counts = await repo.count_by_status(C, I1)
    assert (counts[S], counts[F], counts[P]) == (recorded, stopped, 0)


async def test_a_late_record_cannot_undo_an_outcome_unknown(repo: PostgresRecipientRepo) -> None:
    """An attempt that outlived its lease finds its recipients settled and records nothing."""
    ids = await imported(repo, 3)
    await repo.claim(C, I1, ids, token="slow", now=T0, lease_seconds=60)
    later = await repo.claim(
        C, I1, ids, token="next", now=T0 + timedelta(seconds=90), lease_seconds=60
    )
    assert (later.claimed, later.abandoned) == ([], 3)
    assert await repo.record(C, [sent(i) for i in ids], token="slow", now=T0) == 0
    rows = await repo.list_page(C, I1, limit=10)
    assert {(r.status, r.error, r.message_id) for r in rows} == {(F, OUTCOME_UNKNOWN, None)}


async def test_claim_returns_complete_recipients_in_the_callers_order(
    repo: PostgresRecipientRepo,
) -> None:
    """Claimed rows carry address, merge fields, token and time, in the order asked."""
    rows = [
        NewRecipient(f"u{i}@example.jp", {"名前": f"山田 {i}", "会社": "株式会社, 例"})
        for i in range(5)
    ]
    await repo.insert_chunk(C, I1, 0, rows)
    ids = [r.id for r in await repo.list_page(C, I1, limit=10)]
    asked = [ids[3], ids[0], ids[4]]
    claim = await repo.claim(C, I1, asked, token="t", now=T0, lease_seconds=60)
    assert [r.id for r in claim.claimed] == asked
    first = claim.claimed[0]
    assert (first.email, dict(first.attributes)) == (rows[3].email, dict(rows[3].attributes))
    assert (first.claim, first.claimed_at, first.updated_at) == ("t", T0, T0)


# --- chunk inserts -------------------------------------------------------------------------


async def test_the_same_chunk_inserted_twice_at_once_keeps_one_copy(
    repo: PostgresRecipientRepo,
) -> None:
    """A retried chunk running beside the original still leaves exactly one copy."""
    await asyncio.gather(
        repo.insert_chunk(C, I1, 0, people(500)),
        repo.insert_chunk(C, I1, 0, people(500)),
        repo.insert_chunk(C, I1, 1, people(10, start=500)),
    )
    counts = await repo.count_by_status(C, I1)
    assert counts[P] == 510
    emails = [r.email for r in await repo.list_page(C, I1, limit=1000)]
    assert sorted(emails) == sorted(p.email for p in people(510))


async def test_merge_fields_of_any_shape_read_back_equal(repo: PostgresRecipientRepo) -> None:
    """Fields with quotes, braces, newlines, other column orders or none at all survive."""
    rows = [
        NewRecipient("a@example.com", {"na{me}": 'say "hi"', "note": "line\nbreak\\"}),
        NewRecipient("b@example.com", {"note": "{}", "na{me}": "{0}"}),
        NewRecipient("c@example.com", {}),
        NewRecipient("d@example.com", MappingProxyType({"x": "é😀\t"})),
        NewRecipient("e@example.com", {"na{me}": "y", "note": "z"}),
    ]
    await repo.insert_chunk(C, I1, 0, rows)
    got = await repo.list_page(C, I1, limit=10)
    assert [dict(r.attributes) for r in got] == [dict(r.attributes) for r in rows]


async def test_a_chunk_the_database_refuses_leaves_nothing_behind(
    repo: PostgresRecipientRepo,
) -> None:
    """A row PostgreSQL cannot store fails the chunk as a PermanentError, atomically."""
    rows = [*people(3), NewRecipient("nul\x00@example.com", {})]
    with pytest.raises(PermanentError):
        await repo.insert_chunk(C, I1, 0, rows)
    assert (await repo.count_by_status(C, I1))[P] == 0
    assert await repo.insert_chunk(C, I1, 0, people(3)) == 3
    assert (await repo.count_by_status(C, I1))[P] == 3


# --- connection settings -------------------------------------------------------------------


@pytest.fixture
async def proxy_pool(pg_dsn: str, pg_pool: PostgresPool) -> AsyncIterator[PostgresPool]:
    """A one-connection pool without a statement cache, as behind RDS Proxy/PgBouncer
    (on the tables pg_pool just emptied)."""
    pool = PostgresPool(PostgresSettings(pg_dsn, min_size=1, max_size=1, statement_cache_size=0))
    try:
        yield pool
    finally:
        await pool.close()


async def test_without_a_statement_cache_nothing_stays_prepared(proxy_pool: PostgresPool) -> None:
    """statement_cache_size=0 runs a whole send cycle and leaves no named statement
    on the server session (which would pin or break a pooled proxy connection)."""
    repo = PostgresRecipientRepo(proxy_pool)
    ids = await imported(repo, 60)
    for _ in range(2):  # twice: a cache would prepare on reuse
        claim = await repo.claim(C, I1, ids[:50], token="t", now=T0, lease_seconds=60)
        await repo.record(C, [sent(r.id) for r in claim.claimed], token="t", now=T0)
    assert (await repo.count_by_status(C, I1))[S] == 50
    async with proxy_pool.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pg_prepared_statements") == 0


async def test_a_connection_goes_back_to_the_pool_without_a_reset_query(pg_dsn: str) -> None:
    """Releasing a connection sends nothing: no RESET ALL or advisory-lock function (which
    RDS Proxy pins a connection for), and no extra round trip per use."""
    app = f"mailblast-test-{secrets.token_hex(4)}"
    pool = PostgresPool(PostgresSettings(pg_dsn, min_size=1, max_size=1, application_name=app))
    try:
        await PostgresRecipientRepo(pool).count_by_status(uuid.uuid4(), I1)
        observer = await asyncpg.connect(pg_dsn)
        try:
            last = await observer.fetchval(
                "SELECT query FROM pg_stat_activity WHERE application_name = $1", app
            )
        finally:
            await observer.close()
    finally:
        await pool.close()
    assert "count(*) FILTER" in last
    assert "RESET" not in last


def test_no_connection_before_first_use_and_a_closed_pool_reopens_on_a_new_loop(
    pg_dsn: str,
) -> None:
    """Constructing connects to nothing; after `close`, the next use (here on another
    event loop, as a second asyncio.run) opens a new pool."""
    app = f"mailblast-test-{secrets.token_hex(4)}"
    pool = PostgresPool(PostgresSettings(pg_dsn, application_name=app))
    repo = PostgresRecipientRepo(pool)
    campaign = uuid.uuid4()

    async def sessions() -> int:
        conn = await asyncpg.connect(pg_dsn)
        try:
            n = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app
            )
        finally:
            await conn.close()
        return int(n)

    async def use_once() -> tuple[int, int]:
        try:
            await repo.insert_chunk(campaign, I1, 0, people(2))
            return (await repo.count_by_status(campaign, I1))[P], await sessions()
        finally:
            await pool.close()

    assert asyncio.run(sessions()) == 0
    assert asyncio.run(use_once()) == (2, 1)
    assert asyncio.run(use_once()) == (2, 1)


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:secret@db.example:5432/x", "postgresql://u:***@db.example:5432/x"),
        (
            "postgresql://u:secret@[::1]/x?sslmode=require",
            "postgresql://u:***@[::1]/x?sslmode=require",
        ),
        (
            "postgresql://u@h/x?password=secret&sslmode=require",
            "postgresql://u@h/x?password=***&sslmode=require",
        ),
        ("postgresql://u@h/x", "postgresql://u@h/x"),
    ],
)
def test_settings_never_show_a_password(dsn: str, shown: str) -> None:
    """The settings' repr (what logs and errors print) hides the password."""
    assert repr(PostgresSettings(dsn)).startswith(f"PostgresSettings(dsn={shown!r}, ")
    assert "secret" not in repr(PostgresPool(PostgresSettings(dsn)))


# --- error translation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (asyncpg.exceptions.SerializationError("could not serialize"), TransientError),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), TransientError),
        (asyncpg.exceptions.TooManyConnectionsError("too many clients"), TransientError),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), TransientError),
        (asyncpg.exceptions.QueryCanceledError("statement timeout"), TransientError),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation"), TransientError),
        (asyncpg.exceptions.CannotConnectNowError("starting up"), TransientError),
        (asyncpg.InterfaceError("connection is closed"), TransientError),
        (TimeoutError(), TransientError),
        (ConnectionRefusedError(111, "refused"), TransientError),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), PermanentError),
        (asyncpg.exceptions.CheckViolationError("violates check"), PermanentError),
        (asyncpg.exceptions.UndefinedTableError("no such table"), PermanentError),
        (asyncpg.exceptions.InvalidPasswordError("bad password"), PermanentError),
        (asyncpg.InterfaceError("another operation is in progress"), PermanentError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_asyncpg_errors_become_transient_or_permanent(
    error: BaseException, kind: type[Exception]
) -> None:
    """Failures worth retrying are TransientError, the rest PermanentError."""
    translated = translate_error(error)
    assert type(translated) is kind


def test_other_exceptions_are_left_alone() -> None:
    """Bugs and domain errors are not disguised as database errors."""
    assert translate_error(ValueError("bug")) is None
    assert translate_error(TransientError("already ours")) is None


async def _blocked_claim(
    pg_dsn: str, pool: PostgresPool, app: str
) -> tuple[asyncio.Task[object], asyncpg.Connection, int]:
    """Start a claim that waits on a row lock held by another session; returns the task,
    the blocking session (in a transaction) and the waiting backend's pid."""
    repo = PostgresRecipientRepo(pool)
    ids = await imported(repo, 5)
    blocker = await asyncpg.connect(pg_dsn)
    await blocker.execute("BEGIN")
    await blocker.execute("SELECT 1 FROM notification_recipients WHERE id = $1 FOR UPDATE", ids[0])
    task: asyncio.Task[object] = asyncio.create_task(
        repo.claim(C, I1, ids, token="t", now=T0, lease_seconds=60)
    )
    for _ in range(400):
        pid = await blocker.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
            " AND wait_event_type = 'Lock'",
            app,
        )
        if pid is not None:
            return task, blocker, pid
        await asyncio.sleep(0.025)
    task.cancel()
    await blocker.close()
    pytest.fail("the claim never waited on the lock")


async def test_a_terminated_connection_is_a_transient_error(
    pg_dsn: str, pg_pool: PostgresPool
) -> None:
    """pg_terminate_backend during a statement surfaces as TransientError, and the pool
    serves the next call on a fresh connection."""
    app = f"mailblast-test-{secrets.token_hex(4)}"
    pool = PostgresPool(PostgresSettings(pg_dsn, min_size=1, max_size=1, application_name=app))
    try:
        task, blocker, pid = await _blocked_claim(pg_dsn, pool, app)
        try:
            await blocker.execute("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(TransientError) as caught:
                await task
            assert isinstance(
                caught.value.__cause__, asyncpg.PostgresError | asyncpg.InterfaceError
            )
        finally:
            await blocker.execute("ROLLBACK")
            await blocker.close()
        repo = PostgresRecipientRepo(pool)
        assert (await repo.count_by_status(C, I1))[P] == 5
    finally:
        await pool.close()


async def test_a_statement_over_the_command_timeout_is_a_transient_error(
    pg_dsn: str, pg_pool: PostgresPool
) -> None:
    """A statement stuck behind a lock past command_timeout is TransientError."""
    app = f"mailblast-test-{secrets.token_hex(4)}"
    settings = PostgresSettings(
        pg_dsn, min_size=1, max_size=1, command_timeout=0.5, application_name=app
    )
    pool = PostgresPool(settings)
    try:
        task, blocker, _pid = await _blocked_claim(pg_dsn, pool, app)
        try:
            with pytest.raises(TransientError):
                await task
        finally:
            await blocker.execute("ROLLBACK")
            await blocker.close()
    finally:
        await pool.close()


async def test_an_unreachable_server_is_a_transient_error() -> None:
    """A refused connection on first use is TransientError, not a raw OSError."""
    pool = PostgresPool(PostgresSettings("postgresql://postgres@127.0.0.1:1/x", connect_timeout=2))
    with pytest.raises(TransientError):
        await PostgresRecipientRepo(pool).count_by_status(C, I1)
    await pool.close()
