"""A recipient of a campaign: its statuses and their transition table."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

import attrs

from mailblast.domain.errors import InvalidTransitionError

__all__ = [
    "OUTCOME_UNKNOWN",
    "RECIPIENT_TRANSITIONS",
    "Recipient",
    "RecipientEvent",
    "RecipientStatus",
    "next_recipient_status",
]

#: The reason stored when a send may or may not have happened: never resent.
OUTCOME_UNKNOWN = "outcome_unknown"


class RecipientStatus(enum.StrEnum):
    """Where a recipient is; values are stored in the database."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"

    @property
    def label(self) -> str:
        """The original Japanese label shown to staff."""
        return _RECIPIENT_LABELS[self]

    @property
    def is_terminal(self) -> bool:
        """True once sending is over for this recipient."""
        return self is not RecipientStatus.PENDING


_RECIPIENT_LABELS: Mapping[RecipientStatus, str] = {
    RecipientStatus.PENDING: "未送信",
    RecipientStatus.SENT: "送信済",
    RecipientStatus.FAILED: "送信失敗",
    RecipientStatus.BOUNCED: "バウンス",
}


class RecipientEvent(enum.StrEnum):
    """What can happen to a recipient."""

    IMPORTED = "import"
    ACCEPTED = "record_sent"
    REJECTED = "record_failed"
    BOUNCED = "record_bounce"


#: DESIGN §1: (current status or None before import, event) -> next status.
RECIPIENT_TRANSITIONS: Mapping[tuple[RecipientStatus | None, RecipientEvent], RecipientStatus] = {
    (None, RecipientEvent.IMPORTED): RecipientStatus.PENDING,
    (RecipientStatus.PENDING, RecipientEvent.ACCEPTED): RecipientStatus.SENT,
    (RecipientStatus.PENDING, RecipientEvent.REJECTED): RecipientStatus.FAILED,
    (RecipientStatus.SENT, RecipientEvent.BOUNCED): RecipientStatus.BOUNCED,
}


def next_recipient_status(
    current: RecipientStatus | None, event: RecipientEvent
) -> RecipientStatus:
    """Apply the transition table; raise `InvalidTransitionError` for anything it lacks."""
    try:
        return RECIPIENT_TRANSITIONS[(current, event)]
    except KeyError:
        raise InvalidTransitionError(
            entity="recipient", current=str(current or "new"), event=event.value
        ) from None


def _mask(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


@attrs.frozen(kw_only=True)
class Recipient:
    """One address of one import of one campaign.

    ``claim`` is the token of the send attempt that holds it while SES is called (since
    ``claimed_at``): a pending recipient whose claim outlived its lease belongs to an
    attempt that died, perhaps after SES accepted it, so it is never sent again.
    """

    id: int
    campaign_id: uuid.UUID
    import_id: uuid.UUID
    email: str = attrs.field(repr=_mask)
    attributes: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    status: RecipientStatus = RecipientStatus.PENDING
    message_id: str | None = None
    error: str | None = None
    claim: str | None = None
    claimed_at: datetime | None = None
    updated_at: datetime | None = None


class NewRecipient(NamedTuple):
    """A validated row on its way into an import: the address and its merge fields.

    A named tuple rather than an attrs class: an import builds one per row (200,000 at a
    time), and a tuple is built several times faster; it is as immutable.
    """

    email: str
    attributes: Mapping[str, str] = MappingProxyType({})

    def __repr__(self) -> str:
        return f"NewRecipient(email={_mask(self.email)!r}, attributes=...)"


@attrs.frozen(kw_only=True)
class SendOutcome:
    """The recorded result of one send attempt for one recipient (sent or failed)."""

    recipient_id: int
    status: RecipientStatus
    message_id: str | None = None
    error: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.status not in (RecipientStatus.SENT, RecipientStatus.FAILED):
            msg = f"a send outcome is sent or failed, not {self.status}"
            raise ValueError(msg)


@attrs.frozen
class ClaimResult:
    """What a claim found: recipients now held by this attempt, and abandoned ones.

    ``abandoned`` counts pending recipients still held by an earlier attempt whose
    outcome is unknown; the claim marked them failed with `OUTCOME_UNKNOWN`.
    """

    claimed: list[Recipient]
    abandoned: int


__all__ += ["ClaimResult", "NewRecipient", "SendOutcome"]


@attrs.frozen(kw_only=True)
class Tally:
    """A campaign's counts from the recipients table. A bounced recipient was sent first,
    so ``sent`` includes ``bounced``."""

    sent: int = 0
    failed: int = 0
    bounced: int = 0
    pending: int = 0

    @classmethod
    def of(cls, counts: Mapping[RecipientStatus, int]) -> Tally:
        """From `RecipientRepo.count_by_status`."""
        bounced = counts.get(RecipientStatus.BOUNCED, 0)
        return cls(
            sent=counts.get(RecipientStatus.SENT, 0) + bounced,
            failed=counts.get(RecipientStatus.FAILED, 0),
            bounced=bounced,
            pending=counts.get(RecipientStatus.PENDING, 0),
        )


__all__ += ["Tally"]
