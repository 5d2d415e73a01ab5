"""SqsBatchQueue against moto's SQS over HTTP (batches, redrive, receipts), and the
partial-failure handling of SendMessageBatch with aiobotocore's AioStubber."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiobotocore.stub import AioStubber

from backends.aws import SQS_MAX_RECEIVES, boto3_client
from mailblast.adapters.aws import AwsClients, AwsSettings, SqsBatchQueue
from mailblast.adapters.aws.sqs import _groups
from mailblast.domain.batching import MAX_QUEUE_MESSAGE_BYTES, BatchMessage
from mailblast.domain.errors import NotFoundError, PermanentError, TransientError
from mailblast.ports.codec import encode_batch

CAMPAIGN = uuid.UUID("00000000-0000-4000-8000-000000000001")
IMPORT = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
integration = pytest.mark.integration


def message(*ids: int) -> BatchMessage:
    """A batch message naming these recipients."""
    return BatchMessage(campaign_id=CAMPAIGN, import_id=IMPORT, recipient_ids=ids)


async def receive_all(queue: SqsBatchQueue, want: int) -> list[Any]:
    """Receive until ``want`` messages arrived (bounded number of polls)."""
    got: list[Any] = []
    for _ in range(30):
        got += await queue.receive(max_messages=10)
        if len(got) >= want:
            break
    return got


def depth(settings: AwsSettings, url: str) -> int:
    """Messages in a queue, visible or not, as SQS counts them."""
    attributes = boto3_client(settings, "sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


# --- over HTTP against moto -----------------------------------------------------------------


@integration
async def test_25_messages_go_out_in_calls_of_10_and_all_arrive(
    batch_queue_sqs: SqsBatchQueue, aws_settings: AwsSettings
) -> None:
    """25 messages are packed 10/10/5 and every one arrives with its content."""
    sent = [message(i, i + 100) for i in range(25)]
    assert [len(g) for g in _groups([encode_batch(m) for m in sent])] == [10, 10, 5]
    await batch_queue_sqs.send(sent)
    assert depth(aws_settings, batch_queue_sqs.queue_url) == 25
    got = await receive_all(batch_queue_sqs, 25)
    assert sorted(r.message.recipient_ids for r in got) == sorted(m.recipient_ids for m in sent)


@integration
async def test_redrive_moves_the_message_to_the_dlq_after_three_receives(
    batch_queue_sqs: SqsBatchQueue, aws_settings: AwsSettings
) -> None:
    """Three receives without an ack: the fourth receive finds it in the DLQ, not the queue."""
    await batch_queue_sqs.send([message(1)])
    counts = []
    for _ in range(SQS_MAX_RECEIVES):
        (received,) = await batch_queue_sqs.receive()
        counts.append(received.receive_count)
        await batch_queue_sqs.retry_later(received, delay_seconds=0)
    assert counts == [1, 2, 3]
    assert await batch_queue_sqs.receive() == []
    assert depth(aws_settings, batch_queue_sqs.queue_url) == 0
    assert depth(aws_settings, batch_queue_sqs.dlq_url) == 1
    (dead,) = await batch_queue_sqs.receive_dead()
    assert dead.message == message(1)
    await batch_queue_sqs.ack_dead(dead)
    assert depth(aws_settings, batch_queue_sqs.dlq_url) == 0


@integration
async def test_stale_receipts_ack_quietly_and_cannot_be_retried(
    batch_queue_sqs: SqsBatchQueue,
) -> None:
    """Acking twice is fine; putting back a deleted message is NotFoundError."""
    await batch_queue_sqs.send([message(2)])
    (received,) = await batch_queue_sqs.receive()
    await batch_queue_sqs.ack(received)
    await batch_queue_sqs.ack(received)
    with pytest.raises(NotFoundError):
        await batch_queue_sqs.retry_later(received, delay_seconds=0)


@integration
async def test_a_foreign_body_is_skipped_not_fatal(
    batch_queue_sqs: SqsBatchQueue, aws_settings: AwsSettings
) -> None:
    """A body that is not a batch message is left to the redrive; the others come through."""
    sqs = boto3_client(aws_settings, "sqs")
    sqs.send_message(QueueUrl=batch_queue_sqs.queue_url, MessageBody="not json")
    sqs.send_message(
        QueueUrl=batch_queue_sqs.queue_url, MessageBody=json.dumps({"campaign_id": "x"})
    )
    await batch_queue_sqs.send([message(3)])
    got = await receive_all(batch_queue_sqs, 1)
    assert [r.message for r in got] == [message(3)]
    assert depth(aws_settings, batch_queue_sqs.queue_url) == 3


@integration
async def test_delay_is_capped_at_the_sqs_maximum(batch_queue_sqs: SqsBatchQueue) -> None:
    """A delay beyond 15 minutes is sent as 900 s instead of being refused by SQS."""
    await batch_queue_sqs.send([message(4)], delay_seconds=5_000)
    assert await batch_queue_sqs.receive() == []


# --- SendMessageBatch partial failures (stubbed) -------------------------------------------


@contextmanager
def stubbed(client: Any) -> Iterator[AioStubber]:
    """Stub ``client``; every queued response must be used."""
    with AioStubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def entries(*indexes: int) -> list[dict[str, Any]]:
    """The SendMessageBatch entries for messages ``message(i)`` at these positions."""
    return [
        {"Id": str(i), "MessageBody": encode_batch(message(i + 1)), "DelaySeconds": 0}
        for i in indexes
    ]


def ok(*indexes: int) -> list[dict[str, str]]:
    """Successful results for these entry ids."""
    return [{"Id": str(i), "MessageId": f"m{i}", "MD5OfMessageBody": "x" * 32} for i in indexes]


def failed(*indexes: int, sender_fault: bool = False) -> list[dict[str, Any]]:
    """Failed results for these entry ids."""
    code = "InvalidParameterValue" if sender_fault else "InternalError"
    return [{"Id": str(i), "SenderFault": sender_fault, "Code": code} for i in indexes]


@pytest.fixture
async def offline_queue(offline_aws_clients: AwsClients) -> tuple[SqsBatchQueue, Any]:
    """A queue adapter whose SQS client is ready to be stubbed."""
    return SqsBatchQueue(offline_aws_clients), await offline_aws_clients.sqs()


async def test_only_the_failed_entries_are_sent_again(offline_queue: Any) -> None:
    """Entries SQS failed on its side are retried alone, with their original ids."""
    queue, client = offline_queue
    url = queue.queue_url
    with stubbed(client) as stub:
        stub.add_response(
            "send_message_batch",
            {"Successful": ok(0, 1, 2, 4), "Failed": failed(3, 5)},
            {"QueueUrl": url, "Entries": entries(*range(6))},
        )
        stub.add_response(
            "send_message_batch",
            {"Successful": ok(3, 5), "Failed": []},
            {"QueueUrl": url, "Entries": entries(3, 5)},
        )
        await queue.send([message(i + 1) for i in range(6)])


async def test_entries_failing_every_attempt_raise_transient(offline_queue: Any) -> None:
    """After the last attempt the still-refused entries raise TransientError."""
    queue, client = offline_queue
    url = queue.queue_url
    with stubbed(client) as stub:
        stub.add_response(
            "send_message_batch",
            {"Successful": ok(0), "Failed": failed(1)},
            {"QueueUrl": url, "Entries": entries(0, 1)},
        )
        stub.add_response(
            "send_message_batch",
            {"Successful": [], "Failed": failed(1)},
            {"QueueUrl": url, "Entries": entries(1)},
        )
        with pytest.raises(TransientError, match="1 message"):
            await queue.send([message(1), message(2)])


async def test_malformed_entries_are_permanent_and_not_retried(offline_queue: Any) -> None:
    """A sender-fault entry is not sent again; the call ends in PermanentError."""
    queue, client = offline_queue
    with stubbed(client) as stub:
        stub.add_response(
            "send_message_batch",
            {"Successful": ok(0), "Failed": failed(1, sender_fault=True)},
            {"QueueUrl": queue.queue_url, "Entries": entries(0, 1)},
        )
        with pytest.raises(PermanentError, match="InvalidParameterValue"):
            await queue.send([message(1), message(2)])


def test_batches_are_also_bounded_by_total_size() -> None:
    """Entries are packed by count (10) and by total bytes (256 KiB) per call."""
    big = "x" * (MAX_QUEUE_MESSAGE_BYTES // 3)
    assert _groups([big] * 7) == [[0, 1, 2], [3, 4, 5], [6]]
    assert _groups(["y"] * 21) == [list(range(10)), list(range(10, 20)), [20]]
    assert _groups([]) == []
