"""Batch planning: keyset page ranges over recipient ids and queue messages of <= 50.

Step Functions state is capped at 256 KB, so workflows pass page ranges (cursors), never
recipient lists; a queue message names at most 50 recipient ids, the most SES
``SendBulkEmail`` accepts in one call.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import attrs

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_BATCH",
    "MAX_QUEUE_MESSAGE_BYTES",
    "BatchMessage",
    "PageRange",
    "batches",
    "pages_from_starts",
]

#: SES SendBulkEmail takes at most 50 destinations per call.
MAX_BATCH = 50
#: One page is read by one Map iteration; 40 pages cover 200,000 recipients.
DEFAULT_PAGE_SIZE = 5_000
#: SQS's limit on one message body.
MAX_QUEUE_MESSAGE_BYTES = 256 * 1024


@attrs.frozen
class PageRange:
    """Recipients with ``first_id <= id <= last_id`` (inclusive keyset range)."""

    first_id: int
    last_id: int

    def __attrs_post_init__(self) -> None:
        if self.first_id > self.last_id:
            msg = f"empty page range {self.first_id}..{self.last_id}"
            raise ValueError(msg)


def pages_from_starts(starts: Sequence[int], last_id: int) -> list[PageRange]:
    """Turn the ids that open each page (ascending) and the largest id into ranges."""
    pages: list[PageRange] = []
    for index, first in enumerate(starts):
        end = starts[index + 1] - 1 if index + 1 < len(starts) else last_id
        pages.append(PageRange(first, end))
    return pages


@attrs.frozen(kw_only=True)
class BatchMessage:
    """One queue message: up to 50 recipients of one import of one campaign.

    ``retries`` counts how often the batch was put back because of throttling, so a
    long throttle backs off further without ever counting as a failed delivery.
    """

    campaign_id: uuid.UUID
    import_id: uuid.UUID
    recipient_ids: tuple[int, ...]
    retries: int = 0

    def __attrs_post_init__(self) -> None:
        if not 0 < len(self.recipient_ids) <= MAX_BATCH:
            msg = f"a batch holds 1 to {MAX_BATCH} recipients, not {len(self.recipient_ids)}"
            raise ValueError(msg)
        if len(set(self.recipient_ids)) != len(self.recipient_ids):
            msg = "a batch names each recipient once"
            raise ValueError(msg)

    def retry_with(self, recipient_ids: Sequence[int]) -> BatchMessage:
        """The same batch narrowed to ``recipient_ids``, one retry further."""
        return attrs.evolve(self, recipient_ids=tuple(recipient_ids), retries=self.retries + 1)


def batches(
    campaign_id: uuid.UUID, import_id: uuid.UUID, recipient_ids: Sequence[int]
) -> Iterator[BatchMessage]:
    """Split recipient ids into queue messages of at most `MAX_BATCH`."""
    for start in range(0, len(recipient_ids), MAX_BATCH):
        yield BatchMessage(
            campaign_id=campaign_id,
            import_id=import_id,
            recipient_ids=tuple(recipient_ids[start : start + MAX_BATCH]),
        )


def retry_delay_seconds(retries: int, *, base: float = 2.0, cap: float = 900.0) -> int:
    """Back-off before a throttled batch is tried again (SQS delays are at most 900 s)."""
    return int(min(cap, base * (2 ** min(retries, 16))))


def poll_wait_seconds(
    pending: int, previous_pending: int, previous_wait: float, *, base: float, cap: float = 900.0
) -> float:
    """How long the send workflow waits before counting again: ``base`` while recipients
    move, doubling (up to ``cap``) while nothing does, as when a daily quota is spent. A
    Step Functions execution holds at most 25,000 history events, about 10 per turn."""
    if pending != previous_pending or previous_wait <= 0:
        return base
    return min(cap, max(base, previous_wait * 2))


__all__ += ["poll_wait_seconds", "retry_delay_seconds"]
