"""A mailer that sends nothing: it records every message and can be told to misbehave."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import attrs

from mailblast.domain.errors import ThrottledError, TransientError
from mailblast.domain.messages import BulkEmail, DeliveryReport
from mailblast.domain.recipient import _mask
from mailblast.domain.render import render
from mailblast.ports import SendQuota

__all__ = ["InMemoryMailer", "SentMessage"]


@attrs.frozen
class SentMessage:
    """One rendered message as a recipient would get it."""

    recipient_id: int
    message_id: str
    from_address: str
    to: str = attrs.field(repr=_mask)
    subject: str = attrs.field(repr=False)
    text: str = attrs.field(repr=False)
    html: str | None = attrs.field(repr=False)
    headers: dict[str, str] = attrs.field(factory=dict, repr=False)


class InMemoryMailer:
    """Records what it sent. Tell it to throttle the next calls, to answer a given SES
    status for an address, or to die after sending (the outcome-unknown case)."""

    def __init__(
        self,
        *,
        quota: SendQuota | None = None,
        delay: float = 0.0,
        keep_messages: bool = True,
    ) -> None:
        self.sent: list[SentMessage] = []
        self.sends_per_address: Counter[str] = Counter()
        self.calls = 0
        self.recipients_sent = 0
        self._quota = quota
        self._delay = delay
        self._keep = keep_messages
        self._throttle_calls = 0
        self._crash_calls = 0
        self._statuses: dict[str, str] = {}
        self._ids = itertools.count(1)

    # --- misbehaviour ------------------------------------------------------------------

    def throttle_next(self, calls: int = 1) -> None:
        """Refuse the next ``calls`` calls as a whole ("Maximum sending rate exceeded")."""
        self._throttle_calls += calls

    def crash_after_next(self, calls: int = 1) -> None:
        """Send the next ``calls`` calls, then raise as if the process died before the
        caller could see the result."""
        self._crash_calls += calls

    def answer(self, email: str, status: str) -> None:
        """Answer ``status`` (an SES per-destination status) for this address from now on."""
        self._statuses[email.casefold()] = status

    # --- the port ----------------------------------------------------------------------

    async def send_bulk(self, email: BulkEmail) -> list[DeliveryReport]:
        """Render and record every destination SES would accept."""
        if not 0 < len(email.destinations) <= 50:
            msg = f"SendBulkEmail takes 1 to 50 destinations, not {len(email.destinations)}"
            raise ValueError(msg)
        self.calls += 1
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._throttle_calls:
            self._throttle_calls -= 1
            raise ThrottledError("Maximum sending rate exceeded.")
        reports = []
        for dest in email.destinations:
            status = self._statuses.get(dest.email.casefold(), "SUCCESS")
            if status != "SUCCESS":
                reports.append(
                    DeliveryReport(
                        recipient_id=dest.recipient_id,
                        status=status,
                        error=f"{status.lower().replace('_', ' ')} (in-memory mailer)",
                    )
                )
                continue
            message_id = f"mem-{next(self._ids):010d}"
            self.sends_per_address[dest.email.casefold()] += 1
            self.recipients_sent += 1
            if self._keep:
                data = dict(dest.replacements)
                self.sent.append(
                    SentMessage(
                        recipient_id=dest.recipient_id,
                        message_id=message_id,
                        from_address=email.from_address,
                        to=dest.email,
                        subject=render(email.content.subject, data),
                        text=render(email.content.text, data),
                        html=render(email.content.html, data) if email.content.html else None,
                        headers=dict(dest.headers),
                    )
                )
            reports.append(
                DeliveryReport(
                    recipient_id=dest.recipient_id, status="SUCCESS", message_id=message_id
                )
            )
        if self._crash_calls:
            self._crash_calls -= 1
            raise TransientError("connection lost after the request was sent")
        return reports

    async def quota(self) -> SendQuota | None:
        """The configured quota, if any."""
        return self._quota

    def duplicates(self) -> dict[str, int]:
        """Addresses sent more than once (should always be empty)."""
        return {addr: n for addr, n in self.sends_per_address.items() if n > 1}
