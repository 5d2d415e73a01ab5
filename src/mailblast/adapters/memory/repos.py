"""In-memory repositories with the same compare-and-set and bulk semantics as PostgreSQL."""

from __future__ import annotations

import bisect
import itertools
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from mailblast.domain.batching import PageRange
from mailblast.domain.campaign import Campaign, CampaignStatus
from mailblast.domain.chunks import decode_chunk
from mailblast.domain.errors import (
    CampaignNotFoundError,
    ConcurrentUpdateError,
    StaleImportError,
)
from mailblast.domain.recipient import (
    OUTCOME_UNKNOWN,
    ClaimResult,
    NewRecipient,
    Recipient,
    RecipientStatus,
    SendOutcome,
)

__all__ = ["InMemoryCampaignRepo", "InMemoryRecipientRepo"]


class InMemoryCampaignRepo:
    """Campaigns in a dict; `update` is a compare-and-set on status and version."""

    def __init__(self) -> None:
        self._rows: dict[uuid.UUID, Campaign] = {}

    async def add(self, campaign: Campaign) -> None:
        """Store a new campaign."""
        if campaign.id in self._rows:
            raise ConcurrentUpdateError(
                entity="campaign", entity_id=campaign.id, expected_version=0
            )
        self._rows[campaign.id] = campaign

    async def get(self, campaign_id: uuid.UUID) -> Campaign:
        """The campaign, or `CampaignNotFoundError`."""
        try:
            return self._rows[campaign_id]
        except KeyError:
            raise CampaignNotFoundError(campaign_id) from None

    async def update(self, before: Campaign, after: Campaign) -> None:
        """Compare-and-set on (status, version)."""
        stored = self._rows.get(before.id)
        if stored is None:
            raise CampaignNotFoundError(before.id)
        if stored.version != before.version or stored.status is not before.status:
            raise ConcurrentUpdateError(
                entity="campaign", entity_id=before.id, expected_version=before.version
            )
        self._rows[before.id] = after

    async def list_page(
        self, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[Campaign]:
        """Newest first, keyset on (created_at, id)."""
        rows = sorted(self._rows.values(), key=lambda c: (c.created_at, c.id), reverse=True)
        if before is not None:
            rows = [c for c in rows if (c.created_at, c.id) < before]
        return rows[:limit]

    async def with_status(self, statuses: Sequence[CampaignStatus]) -> list[Campaign]:
        """Campaigns in one of ``statuses``, oldest first."""
        wanted = set(statuses)
        return sorted(
            (c for c in self._rows.values() if c.status in wanted), key=lambda c: c.created_at
        )


@attrs.define
class _Import:
    ids: list[int] = attrs.Factory(list)  # ascending, as ids only grow
    chunks: dict[int, list[int]] = attrs.Factory(dict)
    counts: Counter[RecipientStatus] = attrs.Factory(Counter)
    # pending recipients an attempt holds: what fail_abandoned looks at, without a scan
    held: set[int] = attrs.Factory(set)


class InMemoryRecipientRepo:
    """Recipients by id with per-import indexes and running status counts."""

    def __init__(self, *, campaigns: InMemoryCampaignRepo | None = None) -> None:
        # given the campaigns, a chunk of an import the campaign no longer waits for is
        # refused atomically with the insert, as the PostgreSQL store does
        self._campaigns = campaigns
        self._rows: dict[int, Recipient] = {}
        self._imports: dict[tuple[uuid.UUID, uuid.UUID], _Import] = {}
        self._ids = itertools.count(1)

    # --- backdoor for tests ------------------------------------------------------------

    def all(self, campaign_id: uuid.UUID, import_id: uuid.UUID) -> list[Recipient]:
        """Every recipient of an import, by id."""
        imp = self._imports.get((campaign_id, import_id))
        return [self._rows[i] for i in imp.ids] if imp else []

    # --- helpers -----------------------------------------------------------------------

    def _import(self, campaign_id: uuid.UUID, import_id: uuid.UUID) -> _Import:
        return self._imports.setdefault((campaign_id, import_id), _Import())

    def _set(self, old: Recipient, new: Recipient) -> None:
        self._rows[old.id] = new
        imp = self._imports[(old.campaign_id, old.import_id)]
        if old.status is not new.status:
            imp.counts[old.status] -= 1
            imp.counts[new.status] += 1
        if new.status is RecipientStatus.PENDING and new.claim is not None:
            imp.held.add(new.id)
        else:
            imp.held.discard(new.id)

    def _owned(self, campaign_id: uuid.UUID, ids: Sequence[int]) -> list[Recipient]:
        # each id once, as `id = ANY(...)` touches each row once
        rows = (self._rows.get(i) for i in dict.fromkeys(ids))
        return [r for r in rows if r is not None and r.campaign_id == campaign_id]

    # --- the port ----------------------------------------------------------------------

    async def insert_chunk(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        chunk_no: int,
        rows: Sequence[NewRecipient],
    ) -> int:
        """Insert one chunk as pending; a chunk inserted again replaces the first copy."""
        campaign = self._campaigns._rows.get(campaign_id) if self._campaigns else None
        if campaign is not None and not campaign.is_current_import(import_id):
            raise StaleImportError(
                campaign_id=campaign_id, import_id=import_id, expected=campaign.pending_import_id
            )
        imp = self._import(campaign_id, import_id)
        old = imp.chunks.pop(chunk_no, [])
        if old:
            gone = set(old)
            imp.ids = [i for i in imp.ids if i not in gone]
            imp.held -= gone
            for i in old:
                imp.counts[self._rows.pop(i).status] -= 1
        ids = []
        for row in rows:
            rid = next(self._ids)
            self._rows[rid] = Recipient(
                id=rid,
                campaign_id=campaign_id,
                import_id=import_id,
                email=row.email,
                attributes=dict(row.attributes),
            )
            ids.append(rid)
        imp.ids.extend(ids)
        imp.chunks[chunk_no] = ids
        imp.counts[RecipientStatus.PENDING] += len(ids)
        return len(ids)

    async def insert_encoded_chunk(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, chunk_no: int, data: bytes
    ) -> int:
        """Decode the chunk and insert it."""
        return await self.insert_chunk(campaign_id, import_id, chunk_no, decode_chunk(data))

    async def delete_import(self, campaign_id: uuid.UUID, import_id: uuid.UUID) -> int:
        """Remove every recipient of one import."""
        imp = self._imports.pop((campaign_id, import_id), None)
        if imp is None:
            return 0
        for i in imp.ids:
            del self._rows[i]
        return len(imp.ids)

    async def count_by_status(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID
    ) -> Mapping[RecipientStatus, int]:
        """Counts for every status, zero included."""
        counts = self._imports.get((campaign_id, import_id), _Import()).counts
        return {status: counts[status] for status in RecipientStatus}

    async def prepare_send(self, campaign_id: uuid.UUID, import_id: uuid.UUID) -> None:
        """Nothing to prepare in memory."""

    async def pending_page_starts(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, *, page_size: int
    ) -> tuple[list[int], int | None]:
        """Every ``page_size``-th pending id, and the last pending id."""
        pending = [
            i
            for i in self._imports.get((campaign_id, import_id), _Import()).ids
            if self._rows[i].status is RecipientStatus.PENDING
        ]
        return pending[::page_size], (pending[-1] if pending else None)

    async def pending_ids(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, page: PageRange
    ) -> list[int]:
        """Unclaimed pending ids within the page."""
        ids = self._imports.get((campaign_id, import_id), _Import()).ids
        lo = bisect.bisect_left(ids, page.first_id)
        hi = bisect.bisect_right(ids, page.last_id)
        out = []
        for i in ids[lo:hi]:
            row = self._rows[i]
            if row.status is RecipientStatus.PENDING and row.claim is None:
                out.append(i)
        return out

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
        """Fail the abandoned claims, hold the free pending recipients."""
        claimed: list[Recipient] = []
        abandoned = 0
        expired = now - timedelta(seconds=lease_seconds)
        for row in self._owned(campaign_id, recipient_ids):
            if row.import_id != import_id or row.status is not RecipientStatus.PENDING:
                continue
            if row.claim is None:
                new = attrs.evolve(row, claim=token, claimed_at=now, updated_at=now)
                claimed.append(new)
            elif row.claim != token and row.claimed_at is not None and row.claimed_at <= expired:
                new = attrs.evolve(
                    row, status=RecipientStatus.FAILED, error=OUTCOME_UNKNOWN, updated_at=now
                )
                abandoned += 1
            else:
                continue
            self._set(row, new)
        return ClaimResult(claimed, abandoned)

    async def record(
        self, campaign_id: uuid.UUID, outcomes: Sequence[SendOutcome], *, token: str, now: datetime
    ) -> int:
        """Store outcomes of recipients still pending and held by ``token``."""
        done = 0
        for outcome in outcomes:
            row = self._rows.get(outcome.recipient_id)
            if (
                row is None
                or row.campaign_id != campaign_id
                or row.status is not RecipientStatus.PENDING
                or row.claim != token
            ):
                continue
            self._set(
                row,
                attrs.evolve(
                    row,
                    status=outcome.status,
                    message_id=outcome.message_id,
                    error=outcome.error,
                    updated_at=now,
                ),
            )
            done += 1
        return done

    async def release(
        self, campaign_id: uuid.UUID, recipient_ids: Sequence[int], *, token: str
    ) -> int:
        """Drop ``token``'s hold on pending recipients."""
        done = 0
        for row in self._owned(campaign_id, recipient_ids):
            if row.status is RecipientStatus.PENDING and row.claim == token:
                self._set(row, attrs.evolve(row, claim=None, claimed_at=None))
                done += 1
        return done

    async def fail_pending(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        reason: str,
        now: datetime,
        recipient_ids: Sequence[int] | None = None,
    ) -> int:
        """Mark pending recipients failed with ``reason``."""
        if recipient_ids is None:
            recipient_ids = self._imports.get((campaign_id, import_id), _Import()).ids
        done = 0
        for row in self._owned(campaign_id, recipient_ids):
            if row.import_id == import_id and row.status is RecipientStatus.PENDING:
                # a claimed one may be in SES's hands right now: say so, do not guess
                error = reason if row.claim is None else OUTCOME_UNKNOWN
                self._set(
                    row,
                    attrs.evolve(row, status=RecipientStatus.FAILED, error=error, updated_at=now),
                )
                done += 1
        return done

    async def fail_abandoned(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        claimed_before: datetime,
        now: datetime,
    ) -> int:
        """Fail pending recipients whose claim is older than ``claimed_before``."""
        done = 0
        for i in sorted(self._imports.get((campaign_id, import_id), _Import()).held):
            row = self._rows[i]
            if row.claimed_at is not None and row.claimed_at < claimed_before:
                self._set(
                    row,
                    attrs.evolve(
                        row, status=RecipientStatus.FAILED, error=OUTCOME_UNKNOWN, updated_at=now
                    ),
                )
                done += 1
        return done

    async def list_page(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        limit: int,
        status: RecipientStatus | None = None,
        after_id: int | None = None,
    ) -> list[Recipient]:
        """Keyset page in id order."""
        ids = self._imports.get((campaign_id, import_id), _Import()).ids
        start = bisect.bisect_right(ids, after_id) if after_id is not None else 0
        out: list[Recipient] = []
        for i in ids[start:]:
            row = self._rows[i]
            if status is None or row.status is status:
                out.append(row)
                if len(out) >= limit:
                    break
        return out
