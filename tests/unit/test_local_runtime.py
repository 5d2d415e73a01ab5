"""The local runtime: workflows as tasks, queue consumers, recovery after a crash, mbox."""

from __future__ import annotations

import asyncio
import email.policy
import mailbox
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import attrs
import pytest

from contract import test_workflow_engine as contract
from factories import T0, DyingMailer
from mailblast.adapters.local import (
    ExecutionAlreadyExistsError,
    LocalRuntime,
    LocalWorkflowEngine,
    MboxMailer,
    TokenBucket,
)
from mailblast.adapters.memory import (
    InMemoryBatchQueue,
    InMemoryBlobStore,
    InMemoryCampaignRepo,
    InMemoryClock,
    InMemoryMailer,
    InMemoryRecipientRepo,
    SystemClock,
)
from mailblast.domain.campaign import Campaign, CampaignStatus, MessageContent
from mailblast.domain.errors import TransientError
from mailblast.domain.messages import BulkEmail, Destination
from mailblast.domain.recipient import OUTCOME_UNKNOWN, ClaimResult, RecipientStatus
from mailblast.ports import ExecutionStatus, Mailer
from mailblast.services.campaigns import CampaignEdit, NewCampaign, edit, register
from mailblast.services.deps import Deps, ServiceSettings

S = CampaignStatus
R = RecipientStatus


def csv_of(n: int, *, start: int = 0, domain: str = "example.com") -> bytes:
    """A CSV of ``n`` distinct recipients with a name column."""
    rows = "".join(f"user{i}@{domain},User {i}\n" for i in range(start, start + n))
    return ("email,name\n" + rows).encode()


@attrs.define
class Shared:
    """What outlives a process: the repositories, the blob store and the mailer's record
    (what the recipients' inboxes hold)."""

    campaigns: InMemoryCampaignRepo = attrs.Factory(InMemoryCampaignRepo)
    recipients: InMemoryRecipientRepo = attrs.Factory(InMemoryRecipientRepo)
    blobs: InMemoryBlobStore = attrs.Factory(InMemoryBlobStore)
    record: InMemoryMailer = attrs.Factory(InMemoryMailer)

    async def runtime(
        self,
        clock: InMemoryClock,
        *,
        mailer: Mailer | None = None,
        concurrency: int = 4,
        rate: float | None = None,
        visibility_timeout: float = 120.0,
        settings: ServiceSettings | None = None,
    ) -> LocalRuntime:
        """A new process: a fresh queue, engine and workers over the shared state."""
        return await LocalRuntime.open(
            campaigns=self.campaigns,
            recipients=self.recipients,
            blobs=self.blobs,
            mailer=mailer or self.record,
            clock=clock,
            queue=InMemoryBatchQueue(clock, visibility_timeout=visibility_timeout),
            rate=rate,
            settings=settings or ServiceSettings(page_size=200, chunk_rows=300),
            concurrency=concurrency,
            poll_seconds=1.0,
            receive_wait_seconds=0,
        )

    async def register(
        self, runtime: LocalRuntime, csv: bytes, *, scheduled_at: datetime, key: str = "list"
    ) -> Campaign:
        """Upload a CSV and register a campaign with it."""
        await self.blobs.put(f"uploads/{key}.csv", csv)
        return await register(
            runtime.deps,
            NewCampaign(
                name="Winter sale",
                from_address="news@example.com",
                subject="Hello {{name}}",
                text="Dear {{name}}",
                scheduled_at=scheduled_at,
                s3_key=f"uploads/{key}.csv",
            ),
        )

    def statuses(self, campaign: Campaign) -> dict[RecipientStatus, int]:
        """How many recipients of the campaign's current import are in each status."""
        assert campaign.current_import_id is not None
        counts = dict.fromkeys(RecipientStatus, 0)
        for row in self.recipients.all(campaign.id, campaign.current_import_id):
            counts[row.status] += 1
        return counts


def assert_settled_consistently(shared: Shared, campaign: Campaign) -> dict[RecipientStatus, int]:
    """Every recipient terminal, the campaign's counts equal the table's, nobody twice."""
    counts = shared.statuses(campaign)
    assert counts[R.PENDING] == 0
    assert campaign.sent_count == counts[R.SENT] + counts[R.BOUNCED]
    assert campaign.failed_count == counts[R.FAILED]
    assert campaign.total_count == sum(counts.values())
    assert shared.record.duplicates() == {}
    return counts


async def drive(
    clock: InMemoryClock, done: Callable[[], Awaitable[bool]], *, step: float = 1.0
) -> None:
    """Move a manual clock in steps, letting every task run in between, until ``done``."""
    for _ in range(100_000):
        if await done():
            return
        await clock.advance(step)
        for _ in range(20):
            await asyncio.sleep(0)
    raise AssertionError("the run did not finish")


# --- the WorkflowEngine contract, run against this engine ----------------------------------


@pytest.fixture
async def workflow_engine() -> AsyncIterator[LocalWorkflowEngine]:
    """The local engine on the system clock, over empty repositories."""
    engine = LocalWorkflowEngine()
    clock = SystemClock()
    engine.attach(
        Deps(
            campaigns=InMemoryCampaignRepo(),
            recipients=InMemoryRecipientRepo(),
            blobs=InMemoryBlobStore(),
            mailer=InMemoryMailer(),
            queue=InMemoryBatchQueue(clock),
            workflows=engine,
            clock=clock,
        )
    )
    yield engine
    await engine.close()


test_contract_same_execution_twice = (
    contract.test_starting_the_same_execution_twice_is_one_execution
)
test_contract_stop_waiting_send = contract.test_stop_a_waiting_send_and_stop_again
test_contract_stop_by_name = contract.test_stop_by_name_stops_the_execution


async def test_the_same_name_with_another_input_is_refused(
    workflow_engine: LocalWorkflowEngine,
) -> None:
    """Like Step Functions: a name started again with other input is ExecutionAlreadyExists."""
    campaign_id = uuid.uuid4()
    when = T0 + timedelta(days=400)
    name = await workflow_engine.start_send(
        name="send-x", campaign_id=campaign_id, scheduled_at=when
    )
    again = await workflow_engine.start_send(
        name="send-x", campaign_id=campaign_id, scheduled_at=when
    )
    assert again == name
    with pytest.raises(ExecutionAlreadyExistsError):
        await workflow_engine.start_send(
            name="send-x", campaign_id=campaign_id, scheduled_at=when + timedelta(hours=1)
        )
    assert workflow_engine.running() == ["send-x"]


# --- whole campaigns -----------------------------------------------------------------------


async def test_a_campaign_runs_from_registration_to_completed() -> None:
    """Registration starts the import; the send waits for scheduled_at on the clock,
    then every recipient is mailed once and the campaign completes with true counts."""
    shared, clock = Shared(), InMemoryClock(T0)
    runtime = await shared.runtime(clock)
    async with runtime:
        campaign = await shared.register(
            runtime, csv_of(1000), scheduled_at=clock.now() + timedelta(hours=2)
        )
        done = await runtime.settle(campaign.id)
        import_status = await runtime.engine.status(campaign.import_execution_id or "")
        send_status = await runtime.engine.status(done.send_execution_id or "")
    assert done.status is S.COMPLETED
    assert clock.now() >= done.scheduled_at
    assert import_status is send_status is ExecutionStatus.SUCCEEDED
    counts = assert_settled_consistently(shared, done)
    assert counts[R.SENT] == shared.record.recipients_sent == 1000


async def test_stop_cancels_a_waiting_send_and_a_new_csv_is_sent_instead() -> None:
    """Replacing the CSV while scheduled stops the waiting send execution; when the
    time comes only the new list is mailed."""
    shared, clock = Shared(), InMemoryClock(T0, auto_advance=False)
    runtime = await shared.runtime(clock)
    async with runtime:
        first = await shared.register(
            runtime, csv_of(300), scheduled_at=clock.now() + timedelta(hours=1)
        )
        await runtime.engine.wait(first.import_execution_id or "")
        scheduled = await shared.campaigns.get(first.id)
        assert scheduled.status is S.SCHEDULED
        old_send = scheduled.send_execution_id or ""
        assert await runtime.engine.status(old_send) is ExecutionStatus.RUNNING

        await shared.blobs.put("uploads/new.csv", csv_of(120, start=5000))
        replaced = await edit(runtime.deps, first.id, CampaignEdit(s3_key="uploads/new.csv"))
        assert await runtime.engine.status(old_send) is ExecutionStatus.ABORTED

        async def completed() -> bool:
            return (await shared.campaigns.get(first.id)).status.is_final

        await drive(clock, completed, step=60)
    done = await shared.campaigns.get(first.id)
    assert done.status is S.COMPLETED
    assert done.current_import_id == replaced.pending_import_id
    assert_settled_consistently(shared, done)
    assert shared.record.recipients_sent == 120
    assert {m.to for m in shared.record.sent} == {f"user{i}@example.com" for i in range(5000, 5120)}


class FlakyRecipientRepo(InMemoryRecipientRepo):
    """Claims fail: the first ``failures`` times, and always for ``poison`` ids."""

    def __init__(self, *, failures: int = 0, poison: int | None = None) -> None:
        super().__init__()
        self.failures = failures
        self.poison = poison

    async def claim(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        recipient_ids: Sequence[int],
        *,
        token: str,
        now: datetime,
        lease_seconds: float,
    ) -> ClaimResult:
        """Fail as told, else claim."""
        if self.failures > 0:
            self.failures -= 1
            raise TransientError("connection reset")
        if self.poison is not None and self.poison in recipient_ids:
            raise TransientError("this batch always fails")
        return await super().claim(
            campaign_id,
            import_id,
            recipient_ids,
            token=token,
            now=now,
            lease_seconds=lease_seconds,
        )


async def test_a_worker_survives_a_failing_batch_and_the_message_comes_back() -> None:
    """A batch that raises is logged and left on the queue; after the visibility
    timeout it is delivered again and sent; the worker keeps going."""
    shared, clock = Shared(recipients=FlakyRecipientRepo(failures=1)), InMemoryClock(T0)
    runtime = await shared.runtime(clock, visibility_timeout=10)
    async with runtime:
        campaign = await shared.register(runtime, csv_of(500), scheduled_at=clock.now())
        done = await runtime.settle(campaign.id)
    assert done.status is S.COMPLETED
    assert runtime.workers.stats.errors == 1
    counts = assert_settled_consistently(shared, done)
    assert counts[R.SENT] == 500


async def test_a_message_that_keeps_failing_is_dead_lettered_and_its_recipients_fail() -> None:
    """After three receives the message goes to the dead letters; its recipients fail
    there and the campaign still completes with counts that add up."""
    # ids start at 1 and batches are 50 consecutive pending ids: 101..150 is one batch
    shared, clock = Shared(recipients=FlakyRecipientRepo(poison=121)), InMemoryClock(T0)
    runtime = await shared.runtime(clock, visibility_timeout=10)
    async with runtime:
        campaign = await shared.register(runtime, csv_of(500), scheduled_at=clock.now())
        done = await runtime.settle(campaign.id)
    assert done.status is S.COMPLETED
    counts = assert_settled_consistently(shared, done)
    assert (counts[R.SENT], counts[R.FAILED]) == (450, 50)
    assert runtime.workers.stats.errors == 3
    assert runtime.workers.stats.dead_lettered_recipients == 50


async def test_throttling_slows_the_bucket_and_fails_nobody() -> None:
    """SES refusing calls for rate halves the bucket's rate and retries: all are sent."""
    shared, clock = Shared(), InMemoryClock(T0)
    shared.record.throttle_next(3)
    runtime = await shared.runtime(clock, rate=2000)
    async with runtime:
        campaign = await shared.register(runtime, csv_of(600), scheduled_at=clock.now())
        done = await runtime.settle(campaign.id)
    assert isinstance(runtime.deps.rate, TokenBucket)
    assert runtime.deps.rate.throttles >= 1
    counts = assert_settled_consistently(shared, done)
    assert counts[R.SENT] == 600


# --- kill and resume -----------------------------------------------------------------------


async def test_killed_in_the_middle_of_sending_resumes_without_sending_anyone_twice() -> None:
    """Kill the process while four batches sit between SES and the record, start a new
    one on the same repositories: recovery fails those 200 as outcome_unknown (never
    resent), sends everyone else once, and completes with counts that add up."""
    shared = Shared()
    first_clock = InMemoryClock(T0, auto_advance=False)
    dying = DyingMailer(shared.record, healthy=19, dying=4)
    first = await shared.runtime(first_clock, mailer=dying, concurrency=4)
    await first.start()
    campaign = await shared.register(first, csv_of(2000), scheduled_at=first_clock.now())

    async def all_hung() -> bool:
        return dying.all_hung.is_set()

    await drive(first_clock, all_hung, step=0.05)
    assert (await shared.campaigns.get(campaign.id)).status is S.SENDING
    await first.close(grace_seconds=0)  # kill -9: nothing gets to finish
    mailed_before = shared.record.recipients_sent
    assert mailed_before == 23 * 50

    second_clock = InMemoryClock(first_clock.now() + timedelta(seconds=30))
    second = await shared.runtime(second_clock)
    async with second:
        recovered = second.recovered
        done = await second.settle(campaign.id)
    assert recovered is not None
    assert recovered.sends == [campaign.id]
    assert recovered.abandoned == 4 * 50
    assert done.status is S.COMPLETED
    counts = assert_settled_consistently(shared, done)
    assert shared.record.duplicates() == {}
    assert counts[R.SENT] == 2000 - 200
    assert counts[R.FAILED] == 200
    assert shared.record.recipients_sent == 2000  # the 200 unknown were mailed once
    assert done.current_import_id is not None
    unknown = [
        r for r in shared.recipients.all(done.id, done.current_import_id) if r.status is R.FAILED
    ]
    assert {r.error for r in unknown} == {OUTCOME_UNKNOWN}


async def test_campaigns_left_importing_or_scheduled_are_resumed_after_a_restart() -> None:
    """A campaign whose import never ran and one waiting for its time are both picked
    up by the next process and sent once."""
    shared = Shared()
    first_clock = InMemoryClock(T0, auto_advance=False)
    first = await shared.runtime(first_clock)
    await first.start()
    waiting = await shared.register(
        first, csv_of(100), scheduled_at=first_clock.now() + timedelta(hours=1), key="a"
    )
    await first.engine.wait(waiting.import_execution_id or "")
    importing = await shared.register(
        first, csv_of(80, start=100), scheduled_at=first_clock.now(), key="b"
    )
    await first.close(grace_seconds=0)  # before the second import even started
    assert (await shared.campaigns.get(waiting.id)).status is S.SCHEDULED
    assert (await shared.campaigns.get(importing.id)).status is S.IMPORTING

    second = await shared.runtime(InMemoryClock(first_clock.now() + timedelta(seconds=5)))
    async with second:
        assert second.recovered is not None
        assert second.recovered.imports == [importing.id]
        assert second.recovered.sends == [waiting.id]
        done = [await second.settle(c.id) for c in (waiting, importing)]
    assert [c.status for c in done] == [S.COMPLETED, S.COMPLETED]
    for campaign in done:
        assert_settled_consistently(shared, campaign)
    assert shared.record.recipients_sent == 180


# --- the mbox mailer -----------------------------------------------------------------------


async def test_the_mbox_mailer_writes_rendered_mime_messages_a_mail_client_can_read(
    tmp_path: Path,
) -> None:
    """Each destination becomes one message: headers, the text part and the HTML
    alternative with its placeholders filled, and the Message-ID the report returns."""
    path = tmp_path / "out.mbox"
    mailer = MboxMailer(path, clock=InMemoryClock(T0))
    content = MessageContent(
        subject="{{name}} 様: お知らせ",
        text="{{name}} 様\nFrom the start of a line\n",
        html="<p>{{name}} 様</p>",
    )
    destinations = [
        Destination(
            recipient_id=1,
            email="taro@example.jp",
            replacements={"name": "佐藤 太郎"},
            headers={"List-Unsubscribe": "<mailto:unsubscribe@example.com>"},
        ),
        Destination(recipient_id=2, email="hanako@example.jp", replacements={"name": "鈴木"}),
    ]
    reports = await mailer.send_bulk(
        BulkEmail(from_address="news@example.com", content=content, destinations=destinations)
    )
    mailer.close()
    assert [r.status for r in reports] == ["SUCCESS", "SUCCESS"]
    box = mailbox.mbox(path, factory=None, create=False)
    messages = [
        email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        for key in box.iterkeys()
    ]
    assert len(messages) == 2
    first = messages[0]
    assert first["To"] == "taro@example.jp"
    assert first["From"] == "news@example.com"
    assert first["Subject"] == "佐藤 太郎 様: お知らせ"
    assert first["List-Unsubscribe"] == "<mailto:unsubscribe@example.com>"
    assert first["Date"].datetime == T0
    assert first["Message-ID"].strip("<>") == reports[0].message_id
    assert first.get_content_type() == "multipart/alternative"
    text = first.get_body(("plain",))
    html = first.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content() == "佐藤 太郎 様\nFrom the start of a line\n"
    assert html.get_content().strip() == "<p>佐藤 太郎 様</p>"
    assert messages[1]["Subject"] == "鈴木 様: お知らせ"
    assert reports[0].message_id != reports[1].message_id
