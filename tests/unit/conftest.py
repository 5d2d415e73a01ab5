"""A whole mailblast on in-memory fakes, for the use-case tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

from factories import PORTS, fake_deps
from mailblast.adapters.memory import (
    InMemoryBatchQueue,
    InMemoryBlobStore,
    InMemoryCampaignRepo,
    InMemoryClock,
    InMemoryMailer,
    InMemoryRecipientRepo,
    InMemoryWorkflowEngine,
)
from mailblast.domain.campaign import Campaign
from mailblast.services import Deps, sending
from mailblast.services.campaigns import NewCampaign, register


@attrs.define
class World:
    """The fakes and the deps that wire them, plus helpers to drive a campaign."""

    deps: Deps
    campaigns: InMemoryCampaignRepo
    recipients: InMemoryRecipientRepo
    blobs: InMemoryBlobStore
    mailer: InMemoryMailer
    queue: InMemoryBatchQueue
    workflows: InMemoryWorkflowEngine
    clock: InMemoryClock

    async def upload(self, text: str | bytes, *, encoding: str = "utf-8") -> str:
        """Put a CSV where a presigned upload would have put it."""
        upload = await self.blobs.presign_upload()
        data = text.encode(encoding) if isinstance(text, str) else text
        await self.blobs.put(upload.s3_key, data)
        return upload.s3_key

    async def register(
        self,
        csv_text: str | bytes,
        *,
        subject: str = "Hello {{name}}",
        text: str = "Dear {{name}}",
        scheduled_at: datetime | None = None,
    ) -> Campaign:
        """Upload a CSV and register a campaign with it."""
        key = await self.upload(csv_text)
        return await register(
            self.deps,
            NewCampaign(
                name="Winter sale",
                from_address="news@example.com",
                subject=subject,
                text=text,
                scheduled_at=scheduled_at or self.clock.now() + timedelta(hours=1),
                s3_key=key,
            ),
        )

    async def drain(self, *, rounds: int = 1000) -> None:
        """Deliver queued batches until the queue is empty (like the sender Lambda)."""
        for _ in range(rounds):
            got = await self.queue.receive(max_messages=10)
            if not got:
                await self.clock.sleep(1000)  # let delayed retries become visible
                got = await self.queue.receive(max_messages=10)
                if not got:
                    return
            for received in got:
                await sending.send_batch(self.deps, received.message)
                await self.queue.ack(received)

    async def get(self, campaign_id: uuid.UUID) -> Campaign:
        """The stored campaign."""
        return await self.campaigns.get(campaign_id)


def make_world(**settings: Any) -> World:
    """A fresh world; ``settings`` override ServiceSettings fields."""
    deps = fake_deps(**settings)
    return World(deps, *(getattr(deps, port) for port in PORTS))


@pytest.fixture
def world() -> World:
    """A fresh mailblast on fakes."""
    return make_world(chunk_rows=7, page_size=100)
