"""`RecipientRepo` on PostgreSQL: COPY for imports, one statement per batch for sending.

Every recipient row belongs to one (campaign, import). The campaign points at its
current import, so an import swap never touches this table; an old import is deleted
afterwards, outside the swap. Claims and results are single ``UPDATE`` statements over
arrays of ids whose WHERE clause carries the condition (still pending, still held by
this token), so a concurrent or repeated attempt finds nothing left to change.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from json.encoder import encode_basestring

import asyncpg

from mailblast.adapters.postgres.pool import PooledConnection, PostgresPool
from mailblast.domain.batching import PageRange
from mailblast.domain.errors import StaleImportError
from mailblast.domain.recipient import (
    OUTCOME_UNKNOWN,
    ClaimResult,
    NewRecipient,
    Recipient,
    RecipientStatus,
    SendOutcome,
)

__all__ = ["PostgresRecipientRepo"]

_TABLE = "notification_recipients"
_COPY_COLUMNS = ("campaign_id", "import_id", "chunk_no", "email", "attributes")
_COLUMNS = (
    "id, campaign_id, import_id, email, attributes, status, message_id, error, "
    "claim_token, claimed_at, updated_at"
)

# Taking the ledger row's lock first serializes two inserts of the same chunk (a retried
# step running beside the original); ``attempts`` says whether rows may already exist.
_LEDGER = """
INSERT INTO notification_import_chunks (campaign_id, import_id, chunk_no, row_count)
VALUES ($1, $2, $3, $4)
ON CONFLICT (campaign_id, import_id, chunk_no) DO UPDATE
    SET row_count = EXCLUDED.row_count,
        attempts = notification_import_chunks.attempts + 1,
        inserted_at = now()
RETURNING attempts
"""

# Only a retried chunk runs this. It reads the import's range of the status index and
# filters on chunk_no: an index on chunk_no would cost every COPY to save a rare retry.
_DELETE_CHUNK = """
DELETE FROM notification_recipients
WHERE campaign_id = $1 AND import_id = $2 AND chunk_no = $3
"""

_DELETE_IMPORT = "DELETE FROM notification_recipients WHERE campaign_id = $1 AND import_id = $2"
_DELETE_LEDGER = "DELETE FROM notification_import_chunks WHERE campaign_id = $1 AND import_id = $2"

# One pass without a sort: GROUP BY status made the planner sort every row of the
# import by status (spilling to disk at 200,000 rows) when its estimate was off.
_COUNTS = f"""
SELECT {", ".join(f"count(*) FILTER (WHERE status = '{s.value}')" for s in RecipientStatus)}
FROM notification_recipients
WHERE campaign_id = $1 AND import_id = $2
"""

# One pass over the pending part of the (campaign, import, status, id) index.
_PAGE_STARTS = """
SELECT coalesce(array_agg(id ORDER BY id) FILTER (WHERE rn % $3 = 0), '{}') AS starts,
       max(id) AS last_id
FROM (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn
    FROM notification_recipients
    WHERE campaign_id = $1 AND import_id = $2 AND status = 'pending'
) AS pending
"""

_PENDING_IDS = """
SELECT id FROM notification_recipients
WHERE campaign_id = $1 AND import_id = $2 AND status = 'pending'
  AND id BETWEEN $3 AND $4 AND claim_token IS NULL
ORDER BY id
"""

# One statement, one pass over the ids: free pending rows are taken by this token, rows
# held by another attempt past the lease are failed as outcome_unknown (that attempt
# may have reached SES), rows held by a live attempt do not match. A concurrent claim of
# the same rows waits on the row locks and then re-checks this WHERE clause against the
# winner's version, so it finds them held and leaves them.
_CLAIM = f"""
UPDATE notification_recipients AS r SET
    claim_token = CASE WHEN r.claim_token IS NULL THEN $4 ELSE r.claim_token END,
    claimed_at = CASE WHEN r.claim_token IS NULL THEN $5 ELSE r.claimed_at END,
    status = CASE WHEN r.claim_token IS NULL THEN 'pending' ELSE 'failed' END,
    error = CASE WHEN r.claim_token IS NULL THEN r.error ELSE '{OUTCOME_UNKNOWN}' END,
    updated_at = $5
WHERE r.id = ANY($3::bigint[])
  AND r.campaign_id = $1 AND r.import_id = $2 AND r.status = 'pending'
  AND (r.claim_token IS NULL OR (r.claim_token <> $4 AND r.claimed_at <= $6))
RETURNING {", ".join(f"r.{c.strip()}" for c in _COLUMNS.split(","))}
"""

_RECORD = """
UPDATE notification_recipients AS r SET
    status = u.status, message_id = u.message_id, error = u.error, updated_at = $3
FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[]) AS u(id, status, message_id, error)
WHERE r.id = u.id AND r.campaign_id = $1 AND r.status = 'pending' AND r.claim_token = $2
"""

_RELEASE = """
UPDATE notification_recipients SET claim_token = NULL, claimed_at = NULL
WHERE id = ANY($2::bigint[]) AND campaign_id = $1 AND status = 'pending' AND claim_token = $3
"""

# A chunk may only land while its import is the one the campaign waits for: the share
# lock makes finalize (an UPDATE of this row) wait for an insert in flight, and an insert
# that comes after finalize (a Map iteration retried while the first try still ran) finds
# the campaign moved on. No row: recipients stored without a campaign (library use).
_GUARD = """
SELECT status = 'importing' AND pending_import_id = $2 FROM notification_campaigns
WHERE id = $1 FOR SHARE
"""

_FAIL_LISTED = f"""
UPDATE notification_recipients SET status = 'failed', updated_at = $4,
    error = CASE WHEN claim_token IS NULL THEN $3 ELSE '{OUTCOME_UNKNOWN}' END
WHERE id = ANY($5::bigint[]) AND campaign_id = $1 AND import_id = $2 AND status = 'pending'
"""

_FAIL_ALL = f"""
UPDATE notification_recipients SET status = 'failed', updated_at = $4,
    error = CASE WHEN claim_token IS NULL THEN $3 ELSE '{OUTCOME_UNKNOWN}' END
WHERE campaign_id = $1 AND import_id = $2 AND status = 'pending'
"""

_FAIL_ABANDONED = f"""
UPDATE notification_recipients SET status = 'failed', error = '{OUTCOME_UNKNOWN}', updated_at = $4
WHERE campaign_id = $1 AND import_id = $2 AND status = 'pending' AND claimed_at < $3
"""

_LIST_STATUS = f"""
SELECT {_COLUMNS} FROM notification_recipients
WHERE campaign_id = $1 AND import_id = $2 AND status = $5 AND id > $3
ORDER BY id
LIMIT $4
"""


def _list_all() -> str:
    # The index is ordered by (status, id) within an import: merging one ordered range
    # per status reads at most ``limit`` entries of each instead of sorting the import.
    parts = [
        f"(SELECT {_COLUMNS} FROM notification_recipients"
        f" WHERE campaign_id = $1 AND import_id = $2 AND status = '{status.value}' AND id > $3"
        " ORDER BY id LIMIT $4)"
        for status in RecipientStatus
    ]
    return f"SELECT * FROM ({' UNION ALL '.join(parts)}) AS page ORDER BY id LIMIT $4"


_LIST_ALL = _list_all()


class _AttributesEncoder:
    """JSON text of merge fields, for the jsonb column.

    Every row of one CSV has the same columns in the same order, so the keys are encoded
    once into a template and each row only encodes its values: a third less time than
    `json.dumps` for the largest Python step of a chunk insert. Anything else (other
    keys, values that are not strings) takes the general path.
    """

    def __init__(self) -> None:
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        self._keys: tuple[str, ...] | None = None
        self._template = ""

    def __call__(self, attributes: Mapping[str, str]) -> str:
        keys = tuple(attributes)
        if keys != self._keys:
            if not all(type(k) is str and type(v) is str for k, v in attributes.items()):
                return self._dumps(dict(attributes))
            self._keys = keys
            # str.format template: the encoded keys are literal text (braces doubled)
            fields = (encode_basestring(k).replace("{", "{{").replace("}", "}}") for k in keys)
            self._template = "{{" + ",".join(f"{key}:{{}}" for key in fields) + "}}"
        try:
            return self._template.format(*map(encode_basestring, attributes.values()))
        except TypeError:  # a value that is not a string
            return self._dumps(dict(attributes))


_PIECE = 64 * 1024


async def _prefixed(data: bytes, prefix: bytes) -> AsyncIterator[bytes]:
    """The chunk's lines with ``prefix`` in front of each, in pieces of about 64 KiB: one
    bytes.replace per piece (every line ends in a line break, and JSON and addresses never
    hold a raw one), and no second copy of the whole chunk (large short-lived buffers
    fragment the heap: a 1,000,000-row import grew by 100 MB that way)."""
    view = memoryview(data)
    start = 0
    while start < len(data):
        end = data.find(b"\n", min(start + _PIECE, len(data) - 1)) + 1 or len(data)
        piece = bytes(view[start : end - 1])
        yield prefix + piece.replace(b"\n", b"\n" + prefix) + b"\n"
        start = end


def _affected(status: str) -> int:
    # asyncpg returns the command tag, e.g. "UPDATE 12" or "DELETE 0"
    return int(status.rsplit(" ", 1)[-1])


_STATUS = {status.value: status for status in RecipientStatus}
_loads = json.JSONDecoder().decode


def _recipient(row: asyncpg.Record) -> Recipient:
    # by position (the order of _COLUMNS): a claim decodes 50 of these per batch
    rid, campaign_id, import_id, email, attributes, status, message_id, error, claim, at, up = row
    return Recipient(
        id=rid,
        campaign_id=campaign_id,
        import_id=import_id,
        email=email,
        attributes=_loads(attributes),
        status=_STATUS[status],
        message_id=message_id,
        error=error,
        claim=claim,
        claimed_at=at,
        updated_at=up,
    )


class PostgresRecipientRepo:
    """Recipients in ``notification_recipients``; bulk statements only."""

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    async def insert_chunk(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        chunk_no: int,
        rows: Sequence[NewRecipient],
    ) -> int:
        """Insert one chunk as ``pending`` with COPY; inserting the same chunk again
        replaces it (in the same transaction, so readers never see both or neither)."""
        encode = _AttributesEncoder()
        # a generator, not a list: asyncpg encodes and sends it in batches, so the server
        # parses one batch while Python encodes the next, and no second copy of the
        # chunk is held in memory
        records = (
            (campaign_id, import_id, chunk_no, row.email, encode(row.attributes)) for row in rows
        )
        async with self._chunk(campaign_id, import_id, chunk_no, len(rows)) as conn:
            if rows:
                await conn.copy_records_to_table(_TABLE, records=records, columns=_COPY_COLUMNS)
        return len(rows)

    async def insert_encoded_chunk(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, chunk_no: int, data: bytes
    ) -> int:
        """COPY a chunk as the split step wrote it (CSV), with no per-row work here: the
        constant columns are put in front of every line by one bytes.replace."""
        count = data.count(b"\n")
        prefix = f"{campaign_id},{import_id},{chunk_no},".encode()
        async with self._chunk(campaign_id, import_id, chunk_no, count) as conn:
            if count:
                await conn.copy_to_table(
                    _TABLE, source=_prefixed(data, prefix), columns=_COPY_COLUMNS, format="csv"
                )
        return count

    @contextlib.asynccontextmanager
    async def _chunk(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, chunk_no: int, count: int
    ) -> AsyncIterator[PooledConnection]:
        # one transaction: the campaign guard, the ledger, the old copy gone, the new one in
        async with self._pool.transaction() as conn:
            current = await conn.fetchval(_GUARD, campaign_id, import_id)
            if current is False:
                raise StaleImportError(
                    campaign_id=campaign_id, import_id=import_id, expected="another import"
                )
            attempts = await conn.fetchval(_LEDGER, campaign_id, import_id, chunk_no, count)
            if attempts != 1:
                await conn.execute(_DELETE_CHUNK, campaign_id, import_id, chunk_no)
            yield conn

    async def delete_import(self, campaign_id: uuid.UUID, import_id: uuid.UUID) -> int:
        """Remove every recipient of one import; returns how many."""
        async with self._pool.transaction() as conn:
            status = await conn.execute(_DELETE_IMPORT, campaign_id, import_id)
            await conn.execute(_DELETE_LEDGER, campaign_id, import_id)
        return _affected(status)

    async def count_by_status(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID
    ) -> Mapping[RecipientStatus, int]:
        """How many recipients of the import are in each status (every status present)."""
        async with self._pool.connection() as conn:
            row = await conn.fetchrow(_COUNTS, campaign_id, import_id)
        assert row is not None  # an aggregate without GROUP BY always returns one row
        return {status: int(row[n]) for n, status in enumerate(RecipientStatus)}

    async def prepare_send(self, campaign_id: uuid.UUID, import_id: uuid.UUID) -> None:
        """Refresh the planner's statistics: right after a large COPY (and with autovacuum
        late or off) it would pick the composite index for the per-batch claims and records,
        about 300 times slower at 200,000 rows than the primary key."""
        async with self._pool.connection() as conn:
            await conn.execute("ANALYZE notification_recipients")

    async def pending_page_starts(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, *, page_size: int
    ) -> tuple[list[int], int | None]:
        """Ids opening each page of ``page_size`` pending recipients, and the last pending id."""
        if page_size < 1:
            msg = f"page_size must be positive, not {page_size}"
            raise ValueError(msg)
        async with self._pool.connection() as conn:
            row = await conn.fetchrow(_PAGE_STARTS, campaign_id, import_id, page_size)
        assert row is not None  # an aggregate without GROUP BY always returns one row
        return list(row["starts"]), row["last_id"]

    async def pending_ids(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, page: PageRange
    ) -> list[int]:
        """Ids of unclaimed pending recipients in the page, ascending."""
        async with self._pool.connection() as conn:
            rows = await conn.fetch(
                _PENDING_IDS, campaign_id, import_id, page.first_id, page.last_id
            )
        return [row["id"] for row in rows]

    async def claim(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        recipient_ids: Sequence[int],
        *,
        token: str,
        now: datetime,
        lease_seconds: float,
    ) -> ClaimResult:
        """Hold the free pending recipients with ``token``, fail those held past their
        lease by another attempt (`OUTCOME_UNKNOWN`), leave live claims alone: one statement."""
        if not recipient_ids:
            return ClaimResult([], 0)
        expired = now - timedelta(seconds=lease_seconds)
        async with self._pool.connection() as conn:
            rows = await conn.fetch(
                _CLAIM, campaign_id, import_id, list(recipient_ids), token, now, expired
            )
        claimed: list[Recipient] = []
        abandoned = 0
        for row in rows:
            if row["status"] == RecipientStatus.PENDING.value:
                claimed.append(_recipient(row))
            else:
                abandoned += 1
        # the caller's order (UPDATE ... RETURNING follows the physical order)
        position = {rid: n for n, rid in reversed(list(enumerate(recipient_ids)))}
        claimed.sort(key=lambda r: position[r.id])
        return ClaimResult(claimed, abandoned)

    async def record(
        self, campaign_id: uuid.UUID, outcomes: Sequence[SendOutcome], *, token: str, now: datetime
    ) -> int:
        """Store outcomes for recipients still pending and held by ``token``; returns how many."""
        # the first outcome for a recipient wins, as if they were recorded one by one
        first: dict[int, SendOutcome] = {}
        for outcome in outcomes:
            first.setdefault(outcome.recipient_id, outcome)
        if not first:
            return 0
        chosen = first.values()
        async with self._pool.connection() as conn:
            status = await conn.execute(
                _RECORD,
                campaign_id,
                token,
                now,
                [o.recipient_id for o in chosen],
                [o.status.value for o in chosen],
                [o.message_id for o in chosen],
                [o.error for o in chosen],
            )
        return _affected(status)

    async def release(
        self, campaign_id: uuid.UUID, recipient_ids: Sequence[int], *, token: str
    ) -> int:
        """Let go of recipients held by ``token`` that were certainly not sent."""
        if not recipient_ids:
            return 0
        async with self._pool.connection() as conn:
            status = await conn.execute(_RELEASE, campaign_id, list(recipient_ids), token)
        return _affected(status)

    async def fail_pending(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        reason: str,
        now: datetime,
        recipient_ids: Sequence[int] | None = None,
    ) -> int:
        """Mark pending recipients (of the list, or all of the import) failed."""
        async with self._pool.connection() as conn:
            if recipient_ids is None:
                status = await conn.execute(_FAIL_ALL, campaign_id, import_id, reason, now)
            else:
                status = await conn.execute(
                    _FAIL_LISTED, campaign_id, import_id, reason, now, list(recipient_ids)
                )
        return _affected(status)

    async def fail_abandoned(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        claimed_before: datetime,
        now: datetime,
    ) -> int:
        """Mark pending recipients claimed before ``claimed_before`` failed
        (`OUTCOME_UNKNOWN`); returns how many."""
        async with self._pool.connection() as conn:
            status = await conn.execute(
                _FAIL_ABANDONED, campaign_id, import_id, claimed_before, now
            )
        return _affected(status)

    async def list_page(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        limit: int,
        status: RecipientStatus | None = None,
        after_id: int | None = None,
    ) -> list[Recipient]:
        """Recipients in id order after ``after_id`` (keyset pagination)."""
        after = 0 if after_id is None else after_id  # identity ids start at 1
        async with self._pool.connection() as conn:
            if status is None:
                rows = await conn.fetch(_LIST_ALL, campaign_id, import_id, after, limit)
            else:
                rows = await conn.fetch(
                    _LIST_STATUS, campaign_id, import_id, after, limit, status.value
                )
        return [_recipient(row) for row in rows]
