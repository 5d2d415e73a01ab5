"""`CampaignRepo` on PostgreSQL: one row per campaign, every change a compare-and-set."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from mailblast.adapters.postgres.pool import PostgresPool
from mailblast.domain.campaign import Campaign, CampaignStatus, MessageContent
from mailblast.domain.errors import CampaignNotFoundError, ConcurrentUpdateError

__all__ = ["PostgresCampaignRepo"]

_COLUMNS = (
    "id, name, from_address, subject, body_text, body_html, scheduled_at, status, s3_key, "
    "current_import_id, pending_import_id, total_count, sent_count, failed_count, "
    "bounced_count, import_execution_id, send_execution_id, last_error, version, "
    "created_at, updated_at"
)
_PLACEHOLDERS = ", ".join(f"${n}" for n in range(1, 22))

_INSERT = f"""
INSERT INTO notification_campaigns ({_COLUMNS}) VALUES ({_PLACEHOLDERS})
ON CONFLICT (id) DO NOTHING
"""

# The compare-and-set: the WHERE clause is the "compare", so the row lock taken by the
# UPDATE makes concurrent writers from the same version serialize and all but one match
# nothing. This statement is the whole import swap: it flips current_import_id.
_UPDATE = """
UPDATE notification_campaigns SET
    name = $2, from_address = $3, subject = $4, body_text = $5, body_html = $6,
    scheduled_at = $7, status = $8, s3_key = $9, current_import_id = $10,
    pending_import_id = $11, total_count = $12, sent_count = $13, failed_count = $14,
    bounced_count = $15, import_execution_id = $16, send_execution_id = $17,
    last_error = $18, version = $19, created_at = $20, updated_at = $21
WHERE id = $1 AND status = $22 AND version = $23
"""

_GET = f"SELECT {_COLUMNS} FROM notification_campaigns WHERE id = $1"

_LIST_FIRST = f"""
SELECT {_COLUMNS} FROM notification_campaigns
ORDER BY created_at DESC, id DESC
LIMIT $1
"""

_LIST_BEFORE = f"""
SELECT {_COLUMNS} FROM notification_campaigns
WHERE (created_at, id) < ($2, $3)
ORDER BY created_at DESC, id DESC
LIMIT $1
"""

_WITH_STATUS = f"""
SELECT {_COLUMNS} FROM notification_campaigns
WHERE status = ANY($1::text[])
ORDER BY created_at, id
"""


def _values(campaign: Campaign) -> tuple[Any, ...]:
    return (
        campaign.id,
        campaign.name,
        campaign.from_address,
        campaign.content.subject,
        campaign.content.text,
        campaign.content.html,
        campaign.scheduled_at,
        campaign.status.value,
        campaign.s3_key,
        campaign.current_import_id,
        campaign.pending_import_id,
        campaign.total_count,
        campaign.sent_count,
        campaign.failed_count,
        campaign.bounced_count,
        campaign.import_execution_id,
        campaign.send_execution_id,
        campaign.last_error,
        campaign.version,
        campaign.created_at,
        campaign.updated_at,
    )


def _campaign(row: asyncpg.Record) -> Campaign:
    return Campaign(
        id=row["id"],
        name=row["name"],
        from_address=row["from_address"],
        content=MessageContent(
            subject=row["subject"], text=row["body_text"], html=row["body_html"]
        ),
        scheduled_at=row["scheduled_at"],
        status=CampaignStatus(row["status"]),
        s3_key=row["s3_key"],
        current_import_id=row["current_import_id"],
        pending_import_id=row["pending_import_id"],
        total_count=row["total_count"],
        sent_count=row["sent_count"],
        failed_count=row["failed_count"],
        bounced_count=row["bounced_count"],
        import_execution_id=row["import_execution_id"],
        send_execution_id=row["send_execution_id"],
        last_error=row["last_error"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class PostgresCampaignRepo:
    """Campaigns in ``notification_campaigns``; `update` is a compare-and-set on status
    and version, so of two writers starting from the same copy exactly one wins."""

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    async def add(self, campaign: Campaign) -> None:
        """Store a new campaign; an id already stored is a `ConcurrentUpdateError`."""
        async with self._pool.connection() as conn:
            status = await conn.execute(_INSERT, *_values(campaign))
        if status.endswith(" 0"):
            raise ConcurrentUpdateError(
                entity="campaign", entity_id=campaign.id, expected_version=0
            )

    async def get(self, campaign_id: uuid.UUID) -> Campaign:
        """The campaign, or `CampaignNotFoundError`."""
        async with self._pool.connection() as conn:
            row = await conn.fetchrow(_GET, campaign_id)
        if row is None:
            raise CampaignNotFoundError(campaign_id)
        return _campaign(row)

    async def update(self, before: Campaign, after: Campaign) -> None:
        """Replace ``before`` by ``after`` only if the stored row still has ``before``'s
        status and version; otherwise `ConcurrentUpdateError` (or `CampaignNotFoundError`)."""
        if after.id != before.id:
            msg = f"cannot turn campaign {before.id} into campaign {after.id}"
            raise ValueError(msg)
        async with self._pool.connection() as conn:
            status = await conn.execute(
                _UPDATE, *_values(after), before.status.value, before.version
            )
            if status.endswith(" 1"):
                return
            exists = await conn.fetchval(
                "SELECT 1 FROM notification_campaigns WHERE id = $1", before.id
            )
        if exists is None:
            raise CampaignNotFoundError(before.id)
        raise ConcurrentUpdateError(
            entity="campaign", entity_id=before.id, expected_version=before.version
        )

    async def list_page(
        self, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[Campaign]:
        """Newest first; ``before`` is the (created_at, id) keyset cursor of the last row."""
        async with self._pool.connection() as conn:
            if before is None:
                rows = await conn.fetch(_LIST_FIRST, limit)
            else:
                rows = await conn.fetch(_LIST_BEFORE, limit, before[0], before[1])
        return [_campaign(row) for row in rows]

    async def with_status(self, statuses: Sequence[CampaignStatus]) -> list[Campaign]:
        """Campaigns currently in one of ``statuses``, oldest first."""
        async with self._pool.connection() as conn:
            rows = await conn.fetch(_WITH_STATUS, [s.value for s in statuses])
        return [_campaign(row) for row in rows]
