"""Queue consumers of the local runtime: what the sender and dead-letter Lambdas do on AWS.

N workers take one message at a time from the `BatchQueue` and call the same
`sending.send_batch` the sender Lambda calls, then ack it; one more consumer drains the
dead-letter queue through `sending.handle_dead_letter`. A failing message is logged and
left on the queue: it comes back after the visibility timeout and, after three receives,
lands in the dead letters, exactly as with SQS. A worker never dies of a bad message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import attrs
import structlog

from mailblast.ports import ReceivedBatch
from mailblast.services import sending
from mailblast.services.deps import Deps

__all__ = ["QueueWorkers", "WorkerStats"]

log = structlog.get_logger("mailblast.local")


@attrs.define
class WorkerStats:
    """What the workers did since they started (recipients, not messages, unless named)."""

    messages: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    unknown: int = 0
    errors: int = 0
    dead_letters: int = 0
    dead_lettered_recipients: int = 0
    #: when (on the clock) the last message was handled and acked
    last_batch_at: datetime | None = None


class QueueWorkers:
    """``concurrency`` consumers of the batch queue plus one of its dead letters.

    ``receive_wait_seconds`` is the long poll of one receive; when a receive comes back
    empty a worker sleeps ``idle_seconds`` on the clock (delayed retries become visible
    by the clock, not by an arrival). Use `start` / `close`, or ``async with``.
    """

    def __init__(
        self,
        deps: Deps,
        *,
        concurrency: int = 8,
        receive_wait_seconds: float = 0.05,
        idle_seconds: float = 0.05,
        dead_letter_idle_seconds: float = 1.0,
        error_backoff_seconds: float = 1.0,
    ) -> None:
        if concurrency < 1:
            msg = f"concurrency must be at least 1, not {concurrency}"
            raise ValueError(msg)
        self.deps = deps
        self.concurrency = concurrency
        self.stats = WorkerStats()
        self._wait = receive_wait_seconds
        self._idle = idle_seconds
        self._dead_idle = dead_letter_idle_seconds
        self._backoff = error_backoff_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[Any]] = set()  # consumers with a message in hand
        self._closing = False

    @property
    def running(self) -> bool:
        """True between `start` and `close`."""
        return bool(self._tasks) and not self._closing

    async def start(self) -> None:
        """Start the consumers on the running loop (a second call does nothing)."""
        if self._tasks:
            return
        self._closing = False
        self._tasks = [
            asyncio.create_task(self._consume(n), name=f"mailblast-worker-{n}")
            for n in range(self.concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._consume_dead(), name="mailblast-dlq"))

    async def close(self, *, grace_seconds: float = 10.0) -> None:
        """Stop taking messages: idle consumers stop at once, a consumer in the middle
        of a batch may finish it for up to ``grace_seconds`` (real time), then whatever
        is left is cancelled."""
        if not self._tasks:
            return
        self._closing = True
        tasks, self._tasks = self._tasks, []
        busy = [task for task in tasks if task in self._busy]
        for task in tasks:
            if task not in self._busy:
                task.cancel()
        if busy and grace_seconds > 0:
            await asyncio.wait(busy, timeout=grace_seconds)
        for task in busy:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> QueueWorkers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the consumers -----------------------------------------------------------------

    async def _consume(self, number: int) -> None:
        queue, clock = self.deps.queue, self.deps.clock
        while not self._closing:
            try:
                # one message at a time: a message waiting behind the rate limiter in a
                # worker's hand would otherwise outlive its visibility timeout
                got = await queue.receive(max_messages=1, wait_seconds=self._wait)
            except Exception:
                log.exception("mailblast.worker.receive_failed", worker=number)
                await clock.sleep(self._backoff)
                continue
            if not got:
                await clock.sleep(self._idle)
                continue
            with self._working():
                for received in got:
                    await self._handle(received)
            # with in-memory ports nothing above suspends: let the workflows, the other
            # workers and the progress display have the loop between batches
            await asyncio.sleep(0)

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is not None:
            self._busy.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._busy.discard(task)

    async def _handle(self, received: ReceivedBatch) -> None:
        structlog.contextvars.clear_contextvars()
        try:
            result = await sending.send_batch(self.deps, received.message)
            await self.deps.queue.ack(received)
        except Exception:
            # left on the queue: SQS semantics retry it, then dead-letter it
            self.stats.errors += 1
            log.exception(
                "mailblast.worker.batch_crashed",
                campaign_id=str(received.message.campaign_id),
                receive_count=received.receive_count,
            )
            return
        finally:
            structlog.contextvars.clear_contextvars()
        stats = self.stats
        stats.last_batch_at = self.deps.clock.now()
        stats.messages += 1
        stats.sent += result.sent
        stats.failed += result.failed
        stats.retried += result.retried
        stats.skipped += result.skipped
        stats.unknown += result.unknown

    async def _consume_dead(self) -> None:
        queue, clock = self.deps.queue, self.deps.clock
        while not self._closing:
            try:
                got = await queue.receive_dead(max_messages=10)
            except Exception:
                log.exception("mailblast.worker.receive_dead_failed")
                await clock.sleep(self._backoff)
                continue
            if not got:
                await clock.sleep(self._dead_idle)
                continue
            with self._working():
                await self._handle_dead(got)

    async def _handle_dead(self, got: list[ReceivedBatch]) -> None:
        for received in got:
            structlog.contextvars.clear_contextvars()
            try:
                failed = await sending.handle_dead_letter(self.deps, received.message)
                await self.deps.queue.ack_dead(received)
            except Exception:
                self.stats.errors += 1
                log.exception("mailblast.worker.dead_letter_crashed")
                continue
            finally:
                structlog.contextvars.clear_contextvars()
            self.stats.dead_letters += 1
            self.stats.dead_lettered_recipients += failed
