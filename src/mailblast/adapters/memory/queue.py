"""An in-process queue with SQS semantics: visibility timeout, receive count, DLQ after 3."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from mailblast.domain.batching import BatchMessage
from mailblast.domain.errors import NotFoundError
from mailblast.ports import Clock, ReceivedBatch
from mailblast.ports.codec import decode_batch, encode_batch

__all__ = ["InMemoryBatchQueue"]


@attrs.define
class _Stored:
    id: int
    body: str
    visible_at: datetime
    receive_count: int = 0
    receipt: str | None = None


class InMemoryBatchQueue:
    """Messages are bytes (through the same codec as SQS) and come back after
    ``visibility_timeout`` unless acked; the receive after ``max_receives`` moves a
    message to the dead letters, as SQS's redrive policy does."""

    def __init__(
        self, clock: Clock, *, visibility_timeout: float = 30.0, max_receives: int = 3
    ) -> None:
        self._clock = clock
        self.visibility_timeout = visibility_timeout
        self.max_receives = max_receives
        self._live: dict[int, _Stored] = {}
        self._dead: dict[int, _Stored] = {}
        self._ids = itertools.count(1)
        self._receipts = itertools.count(1)
        self._arrived = asyncio.Event()

    # --- backdoor ----------------------------------------------------------------------

    def depth(self) -> tuple[int, int]:
        """(live messages, dead letters)."""
        return len(self._live), len(self._dead)

    # --- the port ----------------------------------------------------------------------

    async def send(self, messages: Sequence[BatchMessage], *, delay_seconds: int = 0) -> None:
        """Enqueue messages, visible after ``delay_seconds``."""
        visible = self._clock.now() + timedelta(seconds=delay_seconds)
        for message in messages:
            mid = next(self._ids)
            self._live[mid] = _Stored(mid, encode_batch(message), visible)
        self._arrived.set()

    def _take(self, pool: dict[int, _Stored], limit: int, *, redrive: bool) -> list[ReceivedBatch]:
        now = self._clock.now()
        out: list[ReceivedBatch] = []
        for stored in list(pool.values()):
            if len(out) >= limit:
                break
            if stored.visible_at > now:
                continue
            if redrive and stored.receive_count >= self.max_receives:
                del pool[stored.id]
                stored.receive_count = 0
                self._dead[stored.id] = stored
                continue
            stored.receive_count += 1
            stored.receipt = f"r{next(self._receipts)}-{stored.id}"
            stored.visible_at = now + timedelta(seconds=self.visibility_timeout)
            out.append(
                ReceivedBatch(decode_batch(stored.body), stored.receipt, stored.receive_count)
            )
        return out

    async def receive(
        self, *, max_messages: int = 10, wait_seconds: float = 0
    ) -> list[ReceivedBatch]:
        """Up to ``max_messages`` visible messages; waits up to ``wait_seconds`` for one."""
        got = self._take(self._live, max_messages, redrive=True)
        if got or wait_seconds <= 0:
            return got
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), timeout=min(wait_seconds, 0.05))
        return self._take(self._live, max_messages, redrive=True)

    def _find(self, pool: dict[int, _Stored], received: ReceivedBatch) -> _Stored:
        for stored in pool.values():
            if stored.receipt == received.receipt:
                return stored
        raise NotFoundError(f"receipt {received.receipt} is no longer valid")

    async def ack(self, received: ReceivedBatch) -> None:
        """Delete the message (a stale receipt is ignored, as SQS does for a deleted one)."""
        try:
            del self._live[self._find(self._live, received).id]
        except NotFoundError:
            return

    async def retry_later(self, received: ReceivedBatch, *, delay_seconds: int) -> None:
        """Make the message visible again after ``delay_seconds``."""
        stored = self._find(self._live, received)
        stored.visible_at = self._clock.now() + timedelta(seconds=delay_seconds)

    async def receive_dead(self, *, max_messages: int = 10) -> list[ReceivedBatch]:
        """Take dead-lettered messages."""
        return self._take(self._dead, max_messages, redrive=False)

    async def ack_dead(self, received: ReceivedBatch) -> None:
        """Delete a dead-lettered message."""
        try:
            del self._dead[self._find(self._dead, received).id]
        except NotFoundError:
            return
