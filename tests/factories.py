"""Builders of domain values for tests."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from mailblast.adapters.memory import (
    InMemoryBatchQueue,
    InMemoryBlobStore,
    InMemoryCampaignRepo,
    InMemoryClock,
    InMemoryMailer,
    InMemoryRecipientRepo,
    InMemoryWorkflowEngine,
)
from mailblast.domain.campaign import Campaign, MessageContent
from mailblast.domain.messages import BulkEmail, DeliveryReport
from mailblast.domain.recipient import NewRecipient
from mailblast.ports import SendQuota
from mailblast.services import Deps, ServiceSettings

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def new_campaign(
    *,
    now: datetime = T0,
    scheduled_at: datetime | None = None,
    subject: str = "Hello {{name}}",
    text: str = "Dear {{name}}, see you soon.",
) -> Campaign:
    """A freshly registered campaign (status importing)."""
    change = Campaign.register(
        campaign_id=uuid.uuid4(),
        import_id=uuid.uuid4(),
        name="Winter sale",
        from_address="news@example.com",
        content=MessageContent(subject=subject, text=text),
        scheduled_at=scheduled_at or now + timedelta(hours=1),
        s3_key="uploads/2026/12/01/list.csv",
        now=now,
    )
    return change.after


def people(n: int, *, start: int = 0, domain: str = "example.com") -> list[NewRecipient]:
    """``n`` distinct recipients with a ``name`` field."""
    return [
        NewRecipient(f"user{i}@{domain}", {"name": f"User {i}"}) for i in range(start, start + n)
    ]


class DyingMailer:
    """Sends through the shared record; after ``healthy`` calls each call sends and then
    never returns, as if the process died between SES accepting and the record."""

    def __init__(self, record: InMemoryMailer, *, healthy: int, dying: int) -> None:
        self.record = record
        self.healthy = healthy
        self.dying = dying
        self.calls = 0
        self.hung = 0
        self.all_hung = asyncio.Event()

    async def send_bulk(self, email: BulkEmail) -> list[DeliveryReport]:
        """Send; maybe hang forever afterwards."""
        reports = await self.record.send_bulk(email)
        self.calls += 1
        if self.calls > self.healthy:
            self.hung += 1
            if self.hung >= self.dying:
                self.all_hung.set()
            await asyncio.Event().wait()  # the process is gone
        return reports

    async def quota(self) -> SendQuota | None:
        """No quota."""
        return None


PORTS = ("campaigns", "recipients", "blobs", "mailer", "queue", "workflows", "clock")


def fake_deps(*, campaigns: Any = None, recipients: Any = None, **settings: Any) -> Deps:
    """Deps on fresh in-memory fakes (clock at `T0`); ``campaigns`` and ``recipients``
    replace the repositories, ``settings`` override `ServiceSettings` fields."""
    clock = InMemoryClock(T0)
    if campaigns is None:
        campaigns = InMemoryCampaignRepo()
        recipients = recipients or InMemoryRecipientRepo(campaigns=campaigns)
    return Deps(
        campaigns=campaigns,
        recipients=recipients if recipients is not None else InMemoryRecipientRepo(),
        blobs=InMemoryBlobStore(),
        mailer=InMemoryMailer(),
        queue=InMemoryBatchQueue(clock, visibility_timeout=300),
        workflows=InMemoryWorkflowEngine(),
        clock=clock,
        settings=ServiceSettings(**settings),
    )
