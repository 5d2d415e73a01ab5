"""Builders of domain values for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from mailblast.domain.campaign import Campaign, MessageContent
from mailblast.domain.recipient import NewRecipient

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
