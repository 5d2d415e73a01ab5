"""Contract of BatchQueue: at-least-once delivery, acks, retries, dead letters after 3."""

from __future__ import annotations

import uuid
from typing import Any

from mailblast.domain.batching import BatchMessage

C = uuid.UUID("00000000-0000-4000-8000-000000000001")
IMP = uuid.UUID("00000000-0000-4000-8000-0000000000a1")


def message(*ids: int, retries: int = 0) -> BatchMessage:
    """A batch message of the given recipient ids."""
    return BatchMessage(campaign_id=C, import_id=IMP, recipient_ids=ids, retries=retries)


async def drain(queue: Any, *, dead: bool = False, want: int = 1) -> list[Any]:
    """Receive until ``want`` messages arrived or the queue stays empty a while."""
    got: list[Any] = []
    for _ in range(20):
        if dead:
            got += await queue.receive_dead(max_messages=10)
        else:
            got += await queue.receive(max_messages=10, wait_seconds=0.2)
        if len(got) >= want:
            break
    return got


async def test_messages_round_trip_and_ack_removes_them(batch_queue: Any) -> None:
    """Every sent message is received once with its content; acked ones do not return."""
    sent = [message(i, i + 1000) for i in range(1, 26)]
    await batch_queue.send(sent)
    got = await drain(batch_queue, want=25)
    assert sorted(r.message.recipient_ids for r in got) == sorted(m.recipient_ids for m in sent)
    assert all(r.receive_count == 1 for r in got)
    for received in got:
        await batch_queue.ack(received)
    assert await batch_queue.receive(max_messages=10, wait_seconds=0.2) == []


async def test_retry_later_makes_it_visible_again_with_a_higher_count(batch_queue: Any) -> None:
    """A message put back is received again, and counts the receive."""
    await batch_queue.send([message(7, retries=2)])
    (first,) = await drain(batch_queue)
    await batch_queue.retry_later(first, delay_seconds=0)
    (second,) = await drain(batch_queue)
    assert second.message == first.message == message(7, retries=2)
    assert second.receive_count == 2


async def test_a_message_received_three_times_goes_to_the_dead_letters(batch_queue: Any) -> None:
    """After three receives without an ack the message is dead-lettered, not redelivered."""
    await batch_queue.send([message(9)])
    for _ in range(3):
        (received,) = await drain(batch_queue)
        await batch_queue.retry_later(received, delay_seconds=0)
    assert await drain(batch_queue, want=1) == []
    (dead,) = await drain(batch_queue, dead=True)
    assert dead.message == message(9)
    await batch_queue.ack_dead(dead)
    assert await batch_queue.receive_dead(max_messages=10) == []


async def test_delayed_messages_are_not_visible_at_once(batch_queue: Any) -> None:
    """A message sent with a delay is not received immediately."""
    await batch_queue.send([message(3)], delay_seconds=60)
    assert await batch_queue.receive(max_messages=10, wait_seconds=0) == []
