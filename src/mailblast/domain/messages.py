"""What the mailer is asked to send and what it reports back (SES v2 SendBulkEmail shape)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from mailblast.domain.campaign import MessageContent
from mailblast.domain.recipient import _mask

__all__ = ["BulkEmail", "DeliveryReport", "Destination"]


@attrs.frozen(kw_only=True)
class Destination:
    """One entry of a bulk send: the address and what is personal to it."""

    recipient_id: int
    email: str = attrs.field(repr=_mask)
    replacements: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    tags: Mapping[str, str] = attrs.field(factory=dict)
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class BulkEmail:
    """One call's worth: the shared template and up to 50 destinations."""

    from_address: str
    content: MessageContent
    destinations: Sequence[Destination]


@attrs.frozen(kw_only=True)
class DeliveryReport:
    """SES's answer for one destination: a SendBulkEmail status, MessageId and error."""

    recipient_id: int
    status: str
    message_id: str | None = None
    error: str | None = None
