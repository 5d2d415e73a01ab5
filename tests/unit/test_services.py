"""The use cases on fakes: registration, edits, the import swap, sending exactly once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import attrs
import pytest

from conftest import World, make_world
from mailblast.domain.campaign import CampaignStatus
from mailblast.domain.errors import (
    CampaignNotFoundError,
    InvalidInputError,
    InvalidTransitionError,
    StaleImportError,
)
from mailblast.domain.recipient import OUTCOME_UNKNOWN, RecipientStatus
from mailblast.ports import ExecutionStatus
from mailblast.services import importing, sending
from mailblast.services.campaigns import CampaignEdit, edit
from mailblast.services.flows import run_import, run_send

S = CampaignStatus


def csv_of(n: int, *, start: int = 0, domain: str = "example.com") -> str:
    """A CSV of ``n`` distinct recipients with a name column."""
    rows = [f"user{i}@{domain},User {i}" for i in range(start, start + n)]
    return "email,name\n" + "\n".join(rows) + "\n"


async def imported(world: World, csv_text: str, **kw: object) -> uuid.UUID:
    """Register and run the import; returns the campaign id."""
    campaign = await world.register(csv_text, **kw)  # type: ignore[arg-type]
    assert campaign.pending_import_id is not None
    await run_import(world.deps, campaign.id, campaign.pending_import_id)
    return campaign.id


async def sent_campaign(world: World, campaign_id: uuid.UUID) -> None:
    """Run the send workflow the campaign points at, delivering batches as they come."""
    campaign = await world.get(campaign_id)
    assert campaign.send_execution_id is not None
    await sending.begin(world.deps, campaign_id, campaign.send_execution_id)
    for page in await sending.plan_pages(world.deps, campaign_id):
        await sending.enqueue_page(world.deps, campaign_id, page)
    await world.drain()
    await run_send(world.deps, campaign_id, campaign.send_execution_id, poll_seconds=1)


# --- registration and import -------------------------------------------------------------


async def test_register_answers_at_once_with_an_importing_campaign(world: World) -> None:
    """Registration stores the campaign in importing and starts exactly one import."""
    campaign = await world.register(csv_of(3))
    assert campaign.status is S.IMPORTING
    assert (await world.get(campaign.id)) == campaign
    (execution,) = world.workflows.running("import")
    assert execution.import_id == campaign.pending_import_id
    assert execution.id == campaign.import_execution_id


async def test_register_refuses_a_key_that_was_never_uploaded(world: World) -> None:
    """An s3_key nobody uploaded is a 400-style error on that field, and nothing is stored."""
    from mailblast.services.campaigns import NewCampaign, register

    with pytest.raises(InvalidInputError) as caught:
        await register(
            world.deps,
            NewCampaign(
                name="x",
                from_address="a@example.com",
                subject="s",
                text="t",
                scheduled_at=world.clock.now(),
                s3_key="uploads/nothing.csv",
            ),
        )
    assert "s3_key" in caught.value.errors
    assert await world.campaigns.list_page(limit=10) == []


async def test_import_swaps_in_the_recipients_and_schedules_the_send(world: World) -> None:
    """A good CSV ends scheduled with total_count set and the send workflow waiting."""
    campaign_id = await imported(world, csv_of(30) + "not-an-address,Bad\nuser1@EXAMPLE.com,Dup\n")
    campaign = await world.get(campaign_id)
    assert campaign.status is S.SCHEDULED
    assert campaign.total_count == 30
    assert campaign.current_import_id is not None
    (send,) = world.workflows.running("send")
    assert send.id == campaign.send_execution_id
    assert send.scheduled_at == campaign.scheduled_at
    report = await importing.read_report(world.deps, campaign_id, campaign.current_import_id)
    lines = report.decode("utf-8-sig").splitlines()
    assert lines[0] == "line,email,reason"
    assert len(lines) == 3
    assert "duplicate" in lines[2]
    # the chunks were split at 7 rows: 30 rows, 5 chunks, every row once
    rows = world.recipients.all(campaign_id, campaign.current_import_id)
    assert sorted(r.email for r in rows) == sorted(f"user{i}@example.com" for i in range(30))
    assert {r.attributes["name"] for r in rows} == {f"User {i}" for i in range(30)}


@pytest.mark.parametrize(
    ("csv_text", "words"),
    [
        ("", "empty"),
        ("name,phone\nA,1\n", "email"),
        ("email,name\nnot-an-address,x\n", "rejected"),
    ],
)
async def test_a_bad_file_fails_the_import_with_a_reason(
    world: World, csv_text: str, words: str
) -> None:
    """File-level problems end in import_failed with a reason a person understands."""
    campaign_id = await imported(world, csv_text)
    campaign = await world.get(campaign_id)
    assert campaign.status is S.IMPORT_FAILED
    assert campaign.last_error is not None
    assert words in campaign.last_error.lower()
    assert world.workflows.running("send") == []


async def test_a_placeholder_without_a_column_fails_the_import(world: World) -> None:
    """The message may only use CSV columns; the missing names are listed."""
    campaign_id = await imported(world, csv_of(3), text="Hi {{name}}, your code is {{coupon}}")
    campaign = await world.get(campaign_id)
    assert campaign.status is S.IMPORT_FAILED
    assert "{{coupon}}" in (campaign.last_error or "")
    assert world.blobs.objects.keys() == {campaign.s3_key}


async def test_a_failed_replacement_keeps_the_current_recipients(world: World) -> None:
    """Edit B with a broken CSV fails, and the previous import is intact."""
    campaign_id = await imported(world, csv_of(5))
    first = await world.get(campaign_id)
    key = await world.upload("nothing useful\n")
    replaced = await edit(world.deps, campaign_id, CampaignEdit(s3_key=key))
    assert replaced.status is S.IMPORTING
    assert replaced.pending_import_id is not None
    await run_import(world.deps, campaign_id, replaced.pending_import_id)
    after = await world.get(campaign_id)
    assert after.status is S.IMPORT_FAILED
    assert after.current_import_id == first.current_import_id
    assert len(world.recipients.all(campaign_id, first.current_import_id)) == 5  # type: ignore[arg-type]
    assert world.recipients.all(campaign_id, replaced.pending_import_id) == []


async def test_edit_b_while_scheduled_replaces_recipients_and_stops_the_old_send(
    world: World,
) -> None:
    """The old send execution is stopped and, if it wakes anyway, sends nothing."""
    campaign_id = await imported(world, csv_of(5))
    first = await world.get(campaign_id)
    old_execution = first.send_execution_id
    assert old_execution is not None
    key = await world.upload(csv_of(4, start=100))
    replaced = await edit(world.deps, campaign_id, CampaignEdit(s3_key=key))
    assert world.workflows.executions[old_execution].status is ExecutionStatus.ABORTED
    assert replaced.pending_import_id is not None
    await run_import(world.deps, campaign_id, replaced.pending_import_id)
    # the stale execution escaped its stop and wakes up: nothing happens
    stale = await run_send(world.deps, campaign_id, old_execution, poll_seconds=1)
    assert stale.status is S.SCHEDULED
    assert world.mailer.calls == 0
    campaign = await world.get(campaign_id)
    assert campaign.total_count == 4
    assert world.recipients.all(campaign_id, first.current_import_id) == []  # type: ignore[arg-type]
    await sent_campaign(world, campaign_id)
    assert sorted(m.to for m in world.mailer.sent) == [
        f"user{i}@example.com" for i in range(100, 104)
    ]


async def test_a_late_import_changes_nothing(world: World) -> None:
    """An import that finishes after a newer one started is refused and cleans up."""
    campaign_id = await imported(world, csv_of(3))
    key = await world.upload(csv_of(2, start=10))
    second = await edit(world.deps, campaign_id, CampaignEdit(s3_key=key))
    old_import = second.current_import_id
    assert old_import is not None
    with pytest.raises(StaleImportError):
        await importing.finalize(world.deps, campaign_id, uuid.uuid4())
    with pytest.raises(StaleImportError):
        await importing.split(world.deps, campaign_id, old_import)
    assert await world.get(campaign_id) == second


async def test_edits_refused_while_sending_name_the_status(world: World) -> None:
    """Edit A or B while sending is refused with the current status."""
    campaign_id = await imported(world, csv_of(3))
    campaign = await world.get(campaign_id)
    await sending.begin(world.deps, campaign_id, campaign.send_execution_id or "")
    key = await world.upload(csv_of(2))
    for request in (CampaignEdit(name="x"), CampaignEdit(s3_key=key)):
        with pytest.raises(InvalidTransitionError, match="sending"):
            await edit(world.deps, campaign_id, request)


async def test_edit_a_reschedules_and_the_old_wait_is_stale(world: World) -> None:
    """A new time stops the old wait and starts a new one; the old one cannot begin."""
    campaign_id = await imported(world, csv_of(3))
    campaign = await world.get(campaign_id)
    old = campaign.send_execution_id
    later = campaign.scheduled_at + timedelta(days=1)
    edited = await edit(world.deps, campaign_id, CampaignEdit(scheduled_at=later))
    assert edited.scheduled_at == later
    assert world.workflows.executions[old or ""].status is ExecutionStatus.ABORTED
    (running,) = world.workflows.running("send")
    assert running.id == edited.send_execution_id
    assert running.scheduled_at == later
    assert (
        await run_send(world.deps, campaign_id, old or "", poll_seconds=1)
    ).status is S.SCHEDULED


async def test_unknown_campaign_is_not_found(world: World) -> None:
    """Editing a campaign that does not exist says so."""
    with pytest.raises(CampaignNotFoundError):
        await edit(world.deps, uuid.uuid4(), CampaignEdit(name="x"))


# --- sending ------------------------------------------------------------------------------


async def test_a_campaign_is_sent_to_everyone_once(world: World) -> None:
    """Every recipient gets one rendered message; counts on the campaign match the table."""
    campaign_id = await imported(world, csv_of(95))
    await sent_campaign(world, campaign_id)
    campaign = await world.get(campaign_id)
    assert campaign.status is S.COMPLETED
    assert (campaign.sent_count, campaign.failed_count) == (95, 0)
    assert world.mailer.duplicates() == {}
    assert len(world.mailer.sent) == 95
    message = next(m for m in world.mailer.sent if m.to == "user7@example.com")
    assert (message.subject, message.text) == ("Hello User 7", "Dear User 7")
    assert world.mailer.calls == 2  # 95 recipients: a call of 50 and a call of 45
    rows = world.recipients.all(campaign_id, campaign.current_import_id)  # type: ignore[arg-type]
    assert all(r.status is RecipientStatus.SENT and r.message_id for r in rows)


async def test_throttling_is_retried_and_never_a_failure(world: World) -> None:
    """Whole-call throttling puts the batch back; everyone is still sent exactly once."""
    campaign_id = await imported(world, csv_of(60))
    world.mailer.throttle_next(3)
    await sent_campaign(world, campaign_id)
    campaign = await world.get(campaign_id)
    assert (campaign.status, campaign.sent_count, campaign.failed_count) == (S.COMPLETED, 60, 0)
    assert world.mailer.duplicates() == {}


async def test_per_recipient_results_are_recorded_one_by_one(world: World) -> None:
    """A rejected address fails alone; an ACCOUNT_THROTTLED one is retried and sent."""
    campaign_id = await imported(world, csv_of(10))
    world.mailer.answer("user3@example.com", "MESSAGE_REJECTED")
    world.mailer.answer("user4@example.com", "ACCOUNT_THROTTLED")
    campaign = await world.get(campaign_id)
    await sending.begin(world.deps, campaign_id, campaign.send_execution_id or "")
    for page in await sending.plan_pages(world.deps, campaign_id):
        await sending.enqueue_page(world.deps, campaign_id, page)
    received = (await world.queue.receive())[0]
    result = await sending.send_batch(world.deps, received.message)
    assert (result.sent, result.failed, result.retried) == (8, 1, 1)
    world.mailer.answer("user4@example.com", "SUCCESS")
    await world.queue.ack(received)
    await world.drain()
    done = await sending.finalize(world.deps, campaign_id)
    assert (done.status, done.sent_count, done.failed_count) == (S.COMPLETED, 9, 1)
    rows = {r.email: r for r in world.recipients.all(campaign_id, done.current_import_id)}  # type: ignore[arg-type]
    assert (rows["user3@example.com"].error or "").startswith("MESSAGE_REJECTED: ")
    assert rows["user4@example.com"].status is RecipientStatus.SENT


async def test_an_account_problem_stops_the_campaign(world: World) -> None:
    """ACCOUNT_SUSPENDED stops the campaign: send_failed, nobody left pending, counts add up."""
    campaign_id = await imported(world, csv_of(120))
    world.mailer.answer("user0@example.com", "ACCOUNT_SUSPENDED")
    await sent_campaign(world, campaign_id)
    campaign = await world.get(campaign_id)
    assert campaign.status is S.SEND_FAILED
    assert "ACCOUNT_SUSPENDED" in (campaign.last_error or "")
    counts = await world.recipients.count_by_status(campaign_id, campaign.current_import_id)  # type: ignore[arg-type]
    assert counts[RecipientStatus.PENDING] == 0
    assert (campaign.sent_count, campaign.failed_count) == (
        counts[RecipientStatus.SENT],
        counts[RecipientStatus.FAILED],
    )
    assert campaign.sent_count + campaign.failed_count == 120


async def test_an_unknown_outcome_is_failed_never_resent(world: World) -> None:
    """If the mailer call dies after sending, its recipients fail as outcome_unknown."""
    campaign_id = await imported(world, csv_of(60))
    world.mailer.crash_after_next(1)
    await sent_campaign(world, campaign_id)
    campaign = await world.get(campaign_id)
    assert campaign.status is S.COMPLETED
    assert world.mailer.duplicates() == {}
    rows = world.recipients.all(campaign_id, campaign.current_import_id)  # type: ignore[arg-type]
    unknown = [r for r in rows if r.error == OUTCOME_UNKNOWN]
    assert len(unknown) == 50
    assert campaign.failed_count == 50
    assert campaign.sent_count == 10


async def test_a_redelivered_message_after_a_crash_sends_nobody_twice(world: World) -> None:
    """A sender that died between SES and recording: the redelivery fails its recipients
    as outcome_unknown and sends nothing again."""
    campaign_id = await imported(world, csv_of(30))
    campaign = await world.get(campaign_id)
    await sending.begin(world.deps, campaign_id, campaign.send_execution_id or "")
    for page in await sending.plan_pages(world.deps, campaign_id):
        await sending.enqueue_page(world.deps, campaign_id, page)
    (received,) = await world.queue.receive()
    # the "process" claims and sends, then dies before recording
    await world.recipients.claim(
        campaign_id,
        received.message.import_id,
        received.message.recipient_ids,
        token="dead-lambda",
        now=world.clock.now(),
        lease_seconds=120,
    )
    calls = world.mailer.calls
    await world.clock.sleep(301)  # visibility timeout passes, SQS redelivers
    (again,) = await world.queue.receive()
    assert again.receive_count == 2
    result = await sending.send_batch(world.deps, again.message)
    assert result.unknown == 30
    assert world.mailer.calls == calls
    done = await sending.finalize(world.deps, campaign_id)
    assert (done.status, done.failed_count, done.sent_count) == (S.COMPLETED, 30, 0)


async def test_a_dead_lettered_batch_fails_its_pending_recipients(world: World) -> None:
    """The DLQ handler marks the batch's still-pending recipients failed."""
    campaign_id = await imported(world, csv_of(5))
    campaign = await world.get(campaign_id)
    await sending.begin(world.deps, campaign_id, campaign.send_execution_id or "")
    for page in await sending.plan_pages(world.deps, campaign_id):
        await sending.enqueue_page(world.deps, campaign_id, page)
    for _ in range(3):
        (received,) = await world.queue.receive()
        await world.queue.retry_later(received, delay_seconds=0)
    assert await world.queue.receive() == []
    (dead,) = await world.queue.receive_dead()
    assert await sending.handle_dead_letter(world.deps, dead.message) == 5
    done = await sending.finalize(world.deps, campaign_id)
    assert (done.status, done.failed_count) == (S.COMPLETED, 5)


async def test_a_batch_for_a_campaign_no_longer_sending_is_skipped(world: World) -> None:
    """Messages left in the queue after a stop send nothing."""
    campaign_id = await imported(world, csv_of(5))
    campaign = await world.get(campaign_id)
    await sending.begin(world.deps, campaign_id, campaign.send_execution_id or "")
    for page in await sending.plan_pages(world.deps, campaign_id):
        await sending.enqueue_page(world.deps, campaign_id, page)
    await sending.fail(world.deps, campaign_id, campaign.send_execution_id or "", "operator stop")
    await world.drain()
    assert world.mailer.calls == 0
    stopped = await world.get(campaign_id)
    assert (stopped.status, stopped.failed_count) == (S.SEND_FAILED, 5)


async def test_the_send_workflow_waits_for_scheduled_at(world: World) -> None:
    """run_send sleeps on the clock until scheduled_at before it begins."""
    campaign_id = await imported(world, csv_of(2))
    campaign = await world.get(campaign_id)
    world2 = world
    assert world2.clock.now() < campaign.scheduled_at
    queued = await world.queue.receive()
    assert queued == []
    import asyncio

    task = asyncio.create_task(
        run_send(world.deps, campaign_id, campaign.send_execution_id or "", poll_seconds=1)
    )
    for _ in range(50):
        await asyncio.sleep(0)
        await world.drain(rounds=1)
        if task.done():
            break
    done = await task
    assert done.status is S.COMPLETED
    assert world.clock.now() >= campaign.scheduled_at


async def test_a_past_schedule_sends_now() -> None:
    """scheduled_at in the past means now."""
    world = make_world()
    campaign = await world.register(csv_of(2), scheduled_at=world.clock.now() - timedelta(days=3))
    await run_import(world.deps, campaign.id, campaign.pending_import_id)  # type: ignore[arg-type]
    start = world.clock.now()
    stored = await world.get(campaign.id)
    await sending.begin(world.deps, campaign.id, stored.send_execution_id or "")
    assert world.clock.now() == start
    assert attrs.asdict(await world.get(campaign.id))["status"] is S.SENDING


async def test_a_file_without_a_valid_row_still_reports_its_rows(world: World) -> None:
    """When every row is rejected the import fails, and the report says why per row."""
    campaign_id = await imported(world, "email,name\nnot-an-address,x\nalso@bad,y\n")
    campaign = await world.get(campaign_id)
    assert campaign.status is S.IMPORT_FAILED
    failed_import = next(e.import_id for e in world.workflows.executions.values())
    assert failed_import is not None
    report = await importing.read_report(world.deps, campaign_id, failed_import)
    lines = report.decode("utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in lines] == ["line", "2", "3"]


async def test_a_whole_call_refused_stops_the_campaign(world: World) -> None:
    """SES refusing a call outright (say, an unverified sender) stops the campaign at once,
    nothing sent and everyone terminal."""
    from mailblast.domain.errors import PermanentError

    campaign_id = await imported(world, csv_of(120))

    async def refuse(email: object) -> object:
        raise PermanentError("MessageRejected: Email address is not verified.")

    world.mailer.send_bulk = refuse  # type: ignore[method-assign,assignment]
    await sent_campaign(world, campaign_id)
    campaign = await world.get(campaign_id)
    assert campaign.status is S.SEND_FAILED
    assert "not verified" in (campaign.last_error or "")
    assert (campaign.sent_count, campaign.failed_count) == (0, 120)


async def test_a_send_that_fails_before_it_begins_keeps_the_reason(world: World) -> None:
    """A send workflow failing while scheduled leaves the status but records why."""
    campaign_id = await imported(world, csv_of(2))
    campaign = await world.get(campaign_id)
    after = await sending.fail(world.deps, campaign_id, campaign.send_execution_id or "", "DB down")
    assert (after.status, after.last_error) == (S.SCHEDULED, "DB down")
    assert (await world.get(campaign_id)).last_error == "DB down"


async def test_register_refuses_a_sender_ses_would_refuse(world: World) -> None:
    """A From address that is not an address is a 400 on from_address, nothing stored."""
    from mailblast.services.campaigns import NewCampaign, register

    key = await world.upload(csv_of(2))
    with pytest.raises(InvalidInputError) as caught:
        await register(
            world.deps,
            NewCampaign(
                name="x",
                from_address="not an address",
                subject="s",
                text="t",
                scheduled_at=world.clock.now(),
                s3_key=key,
            ),
        )
    assert "from_address" in caught.value.errors
    assert await world.campaigns.list_page(limit=10) == []


async def test_an_import_that_cannot_start_fails_so_staff_can_retry(world: World) -> None:
    """If the import workflow cannot be started, the campaign is import_failed with a
    reason, not importing forever; a new upload then works."""

    async def broken(**_: object) -> str:
        raise RuntimeError("ExecutionLimitExceeded")

    real = world.workflows.start_import
    world.workflows.start_import = broken  # type: ignore[method-assign,assignment]
    campaign = await world.register(csv_of(3))
    stored = await world.get(campaign.id)
    assert stored.status is S.IMPORT_FAILED
    assert "upload the file again" in (stored.last_error or "")
    world.workflows.start_import = real  # type: ignore[method-assign]
    key = await world.upload(csv_of(3))
    again = await edit(world.deps, campaign.id, CampaignEdit(s3_key=key))
    assert again.status is S.IMPORTING


async def test_a_stop_that_fails_does_not_block_the_reschedule(world: World) -> None:
    """Edit A starts the new wait even if stopping the old one fails; the old is stale."""
    campaign_id = await imported(world, csv_of(3))

    async def broken(execution_id: str) -> None:
        raise RuntimeError("throttled")

    world.workflows.stop = broken  # type: ignore[method-assign,assignment]
    campaign = await world.get(campaign_id)
    later = campaign.scheduled_at + timedelta(days=1)
    edited = await edit(world.deps, campaign_id, CampaignEdit(scheduled_at=later))
    assert edited.send_execution_id in world.workflows.executions
    old = campaign.send_execution_id or ""
    assert (await run_send(world.deps, campaign_id, old, poll_seconds=1)).status is S.SCHEDULED


async def test_a_batch_waiting_for_the_rate_limiter_holds_no_claim(world: World) -> None:
    """Pacing happens before claiming: a sender that dies while it waits for its turn
    leaves its recipients free for the next attempt, not outcome_unknown."""
    import asyncio

    import attrs as attrs_

    class Gate:
        def __init__(self) -> None:
            self.open = asyncio.Event()

        async def acquire(self, recipients: int) -> None:
            await self.open.wait()

        def throttled(self) -> None:
            """Nothing to slow down."""

    gate = Gate()
    deps = attrs_.evolve(world.deps, rate=gate)
    campaign_id = await imported(world, csv_of(5))
    campaign = await world.get(campaign_id)
    await sending.begin(deps, campaign_id, campaign.send_execution_id or "")
    for page in await sending.plan_pages(deps, campaign_id):
        await sending.enqueue_page(deps, campaign_id, page)
    (received,) = await world.queue.receive()
    waiting = asyncio.create_task(sending.send_batch(deps, received.message))
    await asyncio.sleep(0)
    rows = world.recipients.all(campaign_id, campaign.current_import_id)  # type: ignore[arg-type]
    assert all(r.claim is None for r in rows)
    waiting.cancel()  # the process dies while waiting
    result = await sending.send_batch(world.deps, received.message)
    assert (result.sent, result.unknown) == (5, 0)


async def test_a_chunk_arriving_after_the_swap_changes_nothing(world: World) -> None:
    """A retried chunk insert that lands after finalize is refused; nobody is re-queued."""
    campaign_id = await imported(world, csv_of(10))
    campaign = await world.get(campaign_id)
    import_id = campaign.current_import_id
    assert import_id is not None
    before = world.recipients.all(campaign_id, import_id)
    with pytest.raises(StaleImportError):
        await world.recipients.insert_chunk(campaign_id, import_id, 0, [])
    assert world.recipients.all(campaign_id, import_id) == before
