"""The local runtime on PostgreSQL: a process killed mid-send, a new one resumes it, and
nobody is mailed twice (the in-memory mailer's record is the recipients' inboxes)."""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import io
import mailbox
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backends.postgres import pg_dsn, pg_pool, pg_server  # noqa: F401 - fixtures
from factories import DyingMailer
from mailblast.adapters.local import LocalRuntime
from mailblast.adapters.memory import (
    InMemoryBatchQueue,
    InMemoryBlobStore,
    InMemoryMailer,
    SystemClock,
)
from mailblast.adapters.postgres import PostgresCampaignRepo, PostgresPool, PostgresRecipientRepo
from mailblast.domain.campaign import CampaignStatus
from mailblast.domain.recipient import OUTCOME_UNKNOWN, RecipientStatus
from mailblast.entrypoints.send import parse_send_request, run_send
from mailblast.ports import Mailer
from mailblast.services.campaigns import NewCampaign, register
from mailblast.services.deps import ServiceSettings

pytestmark = pytest.mark.integration

R = RecipientStatus


@pytest.fixture
def repos(
    pg_pool: PostgresPool,  # noqa: F811 - the fixture imported above
) -> tuple[PostgresCampaignRepo, PostgresRecipientRepo]:
    """Both repositories on clean tables."""
    return PostgresCampaignRepo(pg_pool), PostgresRecipientRepo(pg_pool)


async def runtime_on(
    repos: tuple[PostgresCampaignRepo, PostgresRecipientRepo],
    blobs: InMemoryBlobStore,
    mailer: Mailer,
) -> LocalRuntime:
    """A new process over the shared database and blob store."""
    clock = SystemClock()
    return await LocalRuntime.open(
        campaigns=repos[0],
        recipients=repos[1],
        blobs=blobs,
        mailer=mailer,
        clock=clock,
        queue=InMemoryBatchQueue(clock, visibility_timeout=120),
        settings=ServiceSettings(page_size=200, chunk_rows=300),
        concurrency=4,
        poll_seconds=0.2,
    )


async def test_killed_mid_send_on_postgres_resumes_without_sending_anyone_twice(
    repos: tuple[PostgresCampaignRepo, PostgresRecipientRepo],
) -> None:
    """Four batches between SES and the record when the process dies: the next process
    fails those 200 as outcome_unknown, sends the rest once, and completes with the
    campaign's counts equal to the table's."""
    campaigns, recipients = repos
    blobs, record = InMemoryBlobStore(), InMemoryMailer()
    rows = "".join(f"user{i}@example.com,User {i}\n" for i in range(1000))
    await blobs.put("uploads/list.csv", f"email,name\n{rows}".encode())

    dying = DyingMailer(record, healthy=9, dying=4)
    first = await runtime_on(repos, blobs, dying)
    await first.start()
    campaign = await register(
        first.deps,
        NewCampaign(
            name="resume",
            from_address="news@example.com",
            subject="Hello {{name}}",
            text="Dear {{name}}",
            scheduled_at=first.deps.clock.now(),
            s3_key="uploads/list.csv",
        ),
    )
    await asyncio.wait_for(dying.all_hung.wait(), timeout=60)  # a safety net, not a timing
    await first.close(grace_seconds=0)
    assert (await campaigns.get(campaign.id)).status is CampaignStatus.SENDING
    assert record.recipients_sent == 13 * 50

    second = await runtime_on(repos, blobs, record)
    async with second:
        assert second.recovered is not None
        assert second.recovered.abandoned == 200
        done = await second.settle(campaign.id)

    assert done.status is CampaignStatus.COMPLETED
    assert done.current_import_id is not None
    counts = await recipients.count_by_status(done.id, done.current_import_id)
    assert counts[R.PENDING] == 0
    assert (counts[R.SENT], counts[R.FAILED]) == (800, 200)
    assert (done.sent_count, done.failed_count, done.total_count) == (800, 200, 1000)
    assert record.duplicates() == {}
    assert record.recipients_sent == 1000
    failed = await recipients.list_page(
        done.id, done.current_import_id, limit=1000, status=R.FAILED
    )
    assert {r.error for r in failed} == {OUTCOME_UNKNOWN}


def write_list(path: Path, rows: int) -> None:
    """A UTF-8 CSV of ``rows`` distinct recipients with a name column."""
    lines = "".join(f"member{i}@example.com,会員 {i}\n" for i in range(rows))
    path.write_text(f"email,name\n{lines}", encoding="utf-8")


def mbox_recipients(path: Path) -> list[str]:
    """The To address of every message in an mbox."""
    box = mailbox.mbox(path, create=False)
    return [
        str(email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)["To"])
        for key in box.iterkeys()
    ]


async def test_send_interrupted_then_run_again_mails_everyone_once(
    pg_dsn: str,  # noqa: F811 - the fixture imported above
    repos: tuple[PostgresCampaignRepo, PostgresRecipientRepo],
    tmp_path: Path,
) -> None:
    """``mailblast send --dsn`` cancelled while sending (Ctrl-C) and run again with the
    same arguments resumes the same campaign: the mbox ends with every address once."""
    csv_path, body, box = tmp_path / "list.csv", tmp_path / "body.txt", tmp_path / "out.mbox"
    write_list(csv_path, 3000)
    body.write_text("{{name}} 様\n", encoding="utf-8")
    args = argparse.Namespace(
        csv=str(csv_path),
        from_address="news@example.com",
        subject="{{name}} 様へ",
        text=str(body),
        html=None,
        at=datetime.now(UTC).isoformat(),
        dsn=pg_dsn,
        mailer=f"mbox:{box}",
        rate=3000.0,
        workers=4,
    )
    request = parse_send_request(args)
    campaigns, recipients = repos
    out, err = io.StringIO(), io.StringIO()
    first = asyncio.create_task(run_send(request, out=out, err=err))

    async def some_sent() -> bool:
        for campaign in await campaigns.with_status([CampaignStatus.SENDING]):
            assert campaign.current_import_id is not None
            counts = await recipients.count_by_status(campaign.id, campaign.current_import_id)
            if counts[R.SENT] >= 500:
                return True
        return False

    for _ in range(600):  # a safety net, not a timing: about 30 s at most
        if await some_sent():
            break
        await asyncio.sleep(0.05)
    first.cancel()  # what Ctrl-C does to the command's main task
    with pytest.raises(asyncio.CancelledError):
        await first
    (interrupted,) = await campaigns.with_status([CampaignStatus.SENDING])
    assert 500 <= len(mbox_recipients(box)) < 3000

    status = await run_send(request, out=out, err=err)
    assert status == 0, err.getvalue()
    assert "resuming campaign" in err.getvalue()
    done = await campaigns.get(interrupted.id)
    assert done.status is CampaignStatus.COMPLETED
    assert done.current_import_id is not None
    counts = await recipients.count_by_status(done.id, done.current_import_id)
    mailed = mbox_recipients(box)
    assert len(mailed) == len(set(mailed)) == 3000
    assert counts[R.PENDING] == 0
    assert counts[R.SENT] + counts[R.FAILED] == 3000
    # a graceful stop lets the batch in hand finish: nothing is left in doubt
    assert counts[R.FAILED] == 0

    again = await run_send(request, out=out, err=err)  # a third run finds it completed
    assert again == 0
    assert len(mbox_recipients(box)) == 3000
