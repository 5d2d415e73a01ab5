"""`BatchQueue` on SQS: a standard queue whose redrive policy moves a message to the
dead-letter queue after 3 receives (the queue's configuration, not this code's)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from mailblast.adapters.aws._errors import TRANSLATED, error_code, translate
from mailblast.adapters.aws.session import AwsClients
from mailblast.domain.batching import MAX_QUEUE_MESSAGE_BYTES, BatchMessage
from mailblast.domain.errors import InvalidInputError, NotFoundError, PermanentError, TransientError
from mailblast.ports import ReceivedBatch
from mailblast.ports.codec import decode_batch, encode_batch

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import (
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

__all__ = ["SqsBatchQueue"]

log = structlog.get_logger("mailblast.adapters.aws")

_BATCH = 10  # SendMessageBatch takes at most 10 entries ...
_BATCH_BYTES = MAX_QUEUE_MESSAGE_BYTES  # ... of at most 256 KiB together
_MAX_DELAY = 900  # SQS message delays: 0 to 15 minutes
_MAX_VISIBILITY = 43_200  # visibility timeouts: 0 to 12 hours
_MAX_WAIT = 20  # long polling: at most 20 seconds
#: A receipt that no longer names an in-flight message.
_STALE_RECEIPT = frozenset(
    {"ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"}
)


def _groups(bodies: Sequence[str]) -> list[list[int]]:
    """Indexes of ``bodies`` packed into SendMessageBatch calls (10 and 256 KiB each)."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, body in enumerate(bodies):
        length = len(body.encode())
        if current and (len(current) == _BATCH or size + length > _BATCH_BYTES):
            groups.append(current)
            current, size = [], 0
        current.append(index)
        size += length
    if current:
        groups.append(current)
    return groups


class SqsBatchQueue:
    """Batch messages on an SQS queue and its dead-letter queue.

    ``send_attempts`` bounds how often entries SQS refused inside a successful
    SendMessageBatch are tried again (each call is also retried by botocore).
    """

    def __init__(
        self,
        clients: AwsClients,
        *,
        queue_url: str | None = None,
        dlq_url: str | None = None,
        send_attempts: int | None = None,
    ) -> None:
        self._clients = clients
        self.queue_url = clients.settings.require("queue_url", queue_url)
        self.dlq_url = clients.settings.require("dlq_url", dlq_url)
        self.send_attempts = max(1, send_attempts or clients.settings.max_attempts)

    # --- sending -----------------------------------------------------------------------

    async def send(self, messages: Sequence[BatchMessage], *, delay_seconds: int = 0) -> None:
        """Enqueue messages, visible after ``delay_seconds`` (capped at SQS's 900).

        Every message is encoded and its size checked before anything is sent (a
        `ValueError` for one over 256 KiB, as with the in-memory queue). Entries
        SQS refuses are retried, at most ``send_attempts`` times in all; raises
        `PermanentError` for entries SQS calls malformed, `TransientError` for entries
        still refused after the last attempt. Entries already accepted stay queued: a
        retried ``send`` may queue a message twice, which the claim makes harmless.
        """
        bodies = [encode_batch(message) for message in messages]
        delay = max(0, min(int(delay_seconds), _MAX_DELAY))
        client = await self._clients.sqs()
        for group in _groups(bodies):
            pending = {str(index): bodies[index] for index in group}
            refused: dict[str, str] = {}
            for attempt in range(self.send_attempts):
                if attempt:
                    await asyncio.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                entries: list[SendMessageBatchRequestEntryTypeDef] = [
                    {"Id": entry_id, "MessageBody": body, "DelaySeconds": delay}
                    for entry_id, body in pending.items()
                ]
                try:
                    response = await client.send_message_batch(
                        QueueUrl=self.queue_url, Entries=entries
                    )
                except TRANSLATED as exc:
                    raise translate(exc, action="SQS SendMessageBatch") from exc
                tried, pending = pending, {}
                for failure in response.get("Failed", []):
                    entry_id = failure["Id"]
                    reason = f"{failure.get('Code', '')}: {failure.get('Message', '')}"
                    if failure.get("SenderFault", False):
                        refused[entry_id] = reason
                    elif entry_id in tried:
                        pending[entry_id] = tried[entry_id]
                        log.warning("mailblast.queue.entry_refused", code=failure.get("Code"))
                if not pending:
                    break
            if refused:
                first = next(iter(refused.values()))
                msg = f"SQS refused {len(refused)} message(s) as malformed: {first}"
                raise PermanentError(msg)
            if pending:
                msg = (
                    f"SQS did not take {len(pending)} message(s) after "
                    f"{self.send_attempts} attempts"
                )
                raise TransientError(msg)

    # --- receiving ---------------------------------------------------------------------

    async def _receive(
        self, url: str, max_messages: int, wait_seconds: float
    ) -> list[ReceivedBatch]:
        client = await self._clients.sqs()
        # whole seconds only, never more than asked for ("up to")
        wait = max(0, min(_MAX_WAIT, math.floor(wait_seconds)))
        try:
            response = await client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=max(1, min(_BATCH, max_messages)),
                WaitTimeSeconds=wait,
                AttributeNames=["ApproximateReceiveCount"],
            )
        except TRANSLATED as exc:
            raise translate(exc, action="SQS ReceiveMessage") from exc
        received: list[ReceivedBatch] = []
        for message in response.get("Messages", []):
            batch = self._decode(message)
            if batch is not None:
                count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                received.append(ReceivedBatch(batch, message["ReceiptHandle"], count))
        return received

    @staticmethod
    def _decode(message: MessageTypeDef) -> BatchMessage | None:
        try:
            return decode_batch(message.get("Body", ""))
        except InvalidInputError as exc:
            # not ours or corrupt: left invisible, it reaches the dead-letter queue
            # after the redrive limit like any message that keeps failing
            log.error(
                "mailblast.queue.malformed_message",
                message_id=message.get("MessageId"),
                errors=exc.errors,
            )
            return None

    async def receive(
        self, *, max_messages: int = 10, wait_seconds: float = 0
    ) -> list[ReceivedBatch]:
        """Take up to ``max_messages`` (at most 10), long-polling up to ``wait_seconds``
        (at most 20). A body that is not a batch message is skipped (and logged)."""
        return await self._receive(self.queue_url, max_messages, wait_seconds)

    async def _delete(self, url: str, received: ReceivedBatch) -> None:
        client = await self._clients.sqs()
        try:
            await client.delete_message(QueueUrl=url, ReceiptHandle=received.receipt)
        except TRANSLATED as exc:
            if error_code(exc) in _STALE_RECEIPT:
                return  # already gone, as with a stale receipt in the in-memory queue
            raise translate(exc, action="SQS DeleteMessage") from exc

    async def ack(self, received: ReceivedBatch) -> None:
        """Done with a message: delete it (a stale receipt is ignored)."""
        await self._delete(self.queue_url, received)

    async def retry_later(self, received: ReceivedBatch, *, delay_seconds: int) -> None:
        """Make the message visible again after ``delay_seconds`` (capped at 12 hours);
        the next receive counts toward the redrive limit. `NotFoundError` when the
        receipt is no longer valid."""
        client = await self._clients.sqs()
        try:
            await client.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=received.receipt,
                VisibilityTimeout=max(0, min(int(delay_seconds), _MAX_VISIBILITY)),
            )
        except TRANSLATED as exc:
            if error_code(exc) in _STALE_RECEIPT:
                msg = f"receipt {received.receipt[:16]}... is no longer valid"
                raise NotFoundError(msg) from exc
            raise translate(exc, action="SQS ChangeMessageVisibility") from exc

    async def receive_dead(self, *, max_messages: int = 10) -> list[ReceivedBatch]:
        """Take messages from the dead-letter queue (no waiting)."""
        return await self._receive(self.dlq_url, max_messages, 0)

    async def ack_dead(self, received: ReceivedBatch) -> None:
        """Done with a dead-lettered message: delete it."""
        await self._delete(self.dlq_url, received)
