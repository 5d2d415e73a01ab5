"""Recording benchmark: claim + record of batches of 50 over 8 concurrent connections.

    python bench/record_bench.py [--rows N] [--connections C] [--json]

What the sender does per SQS message, minus SES: `PostgresRecipientRepo.claim` of 50
recipients (one statement) and `record` of their results (one statement), with C
workers on C pooled connections pulling batches until all N recipients are recorded.
Beside it, in the same run and on an identical fresh import, the physical baseline: one
bare ``UPDATE ... FROM unnest(...)`` per batch of 50 (what DESIGN §11 measured at about
65,000 rows/s on eight connections), unconditional and without a claim.

The database server comes from ``MAILBLAST_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); a fresh database is created and
dropped. Each measurement starts on a freshly imported, vacuumed table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from mailblast.adapters.postgres import (
    PostgresPool,
    PostgresRecipientRepo,
    PostgresSettings,
    upgrade_dsn,
)
from mailblast.domain.batching import MAX_BATCH
from mailblast.domain.recipient import NewRecipient, RecipientStatus, SendOutcome

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
CAMPAIGN = uuid.UUID("00000000-0000-4000-8000-00000000be11")

BARE_UPDATE = """
UPDATE notification_recipients AS r SET
    status = u.status, message_id = u.message_id, updated_at = $2
FROM unnest($1::bigint[], $3::text[], $4::text[]) AS u(id, status, message_id)
WHERE r.id = u.id
"""


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


async def fresh_import(pool: PostgresPool, rows: int) -> tuple[uuid.UUID, list[list[int]]]:
    """A new import of ``rows`` recipients, vacuumed; returns its id and batches of ids."""
    repo = PostgresRecipientRepo(pool)
    import_id = uuid.uuid4()
    for chunk_no, start in enumerate(range(0, rows, 10_000)):
        chunk = [
            NewRecipient(f"user{i}@example.com", {"name": f"User {i}", "plan": "gold"})
            for i in range(start, min(rows, start + 10_000))
        ]
        await repo.insert_chunk(CAMPAIGN, import_id, chunk_no, chunk)
    async with pool.connection() as conn:
        await conn.execute("VACUUM (ANALYZE) notification_recipients")
        ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM notification_recipients WHERE import_id = $1 ORDER BY id",
                import_id,
            )
        ]
    return import_id, [ids[i : i + MAX_BATCH] for i in range(0, len(ids), MAX_BATCH)]


async def drive(
    batches: list[list[int]], connections: int, work: Callable[[list[int]], Awaitable[int]]
) -> tuple[float, int]:
    """Run ``work`` over every batch with ``connections`` workers; (seconds, rows done)."""
    queue = list(reversed(batches))
    done = 0

    async def worker() -> None:
        nonlocal done
        while queue:
            rows = await work(queue.pop())
            done += rows

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - start, done


async def run(server: str, rows: int, connections: int) -> dict[str, object]:
    """Both measurements in one fresh database."""
    name = f"mailblast_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(server, name)
    pool = PostgresPool(PostgresSettings(dsn, min_size=connections, max_size=connections))
    try:
        await upgrade_dsn(dsn)
        repo = PostgresRecipientRepo(pool)
        now = datetime.now(UTC)

        import_id, batches = await fresh_import(pool, rows)

        async def bare(ids: list[int]) -> int:
            async with pool.connection() as conn:
                status = await conn.execute(
                    BARE_UPDATE, ids, now, ["sent"] * len(ids), [f"m-{i}" for i in ids]
                )
            return int(status.rsplit(" ", 1)[-1])

        baseline_s, baseline_rows = await drive(batches, connections, bare)
        await repo.delete_import(CAMPAIGN, import_id)

        import_id, batches = await fresh_import(pool, rows)

        async def claim_and_record(ids: list[int]) -> int:
            token = uuid.uuid4().hex
            claim = await repo.claim(
                CAMPAIGN, import_id, ids, token=token, now=now, lease_seconds=120
            )
            outcomes = [
                SendOutcome(recipient_id=r.id, status=RecipientStatus.SENT, message_id=f"m-{r.id}")
                for r in claim.claimed
            ]
            return await repo.record(CAMPAIGN, outcomes, token=token, now=now)

        record_s, recorded = await drive(batches, connections, claim_and_record)
        counts = await repo.count_by_status(CAMPAIGN, import_id)
        if recorded != rows or counts[RecipientStatus.SENT] != rows:
            msg = f"recorded {recorded} of {rows}: {dict(counts)}"
            raise RuntimeError(msg)
    finally:
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "rows": rows,
        "connections": connections,
        "batch": MAX_BATCH,
        "record_per_s": round(recorded / record_s),
        "record_s": round(record_s, 3),
        "baseline_per_s": round(baseline_rows / baseline_s),
        "baseline_s": round(baseline_s, 3),
        "ratio_to_baseline": round(record_s / baseline_s, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="recipients (default 200000)")
    parser.add_argument("--connections", type=int, default=8, help="workers (default 8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    server = os.environ.get("MAILBLAST_DSN", DEFAULT_DSN)
    result = asyncio.run(run(server, args.rows, args.connections))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"recipients        {result['rows']:,} in batches of {result['batch']}")
        print(f"connections       {result['connections']}")
        print(f"claim + record    {result['record_per_s']:,} recipients/s ({result['record_s']} s)")
        print(f"bare unnest       {result['baseline_per_s']:,} rows/s ({result['baseline_s']} s)")
        print(f"ratio             {result['ratio_to_baseline']}x the baseline's time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
