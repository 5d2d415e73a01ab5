"""Send benchmark: the local runtime from ``scheduled`` to ``completed`` on in-memory ports.

    python bench/send_bench.py [--recipients N] [--json]

N recipients (default 200,000) are put straight into the in-memory repositories of a
campaign that is ``scheduled`` for a time already past. Then, timed:

- send: a `LocalRuntime` starts (4 workers, no rate limit, an instant in-memory mailer
  that keeps no messages), resumes the campaign as a restarted process would, and the
  send workflow plans pages, queues batches of 50, the workers claim / send / record
  them, and the workflow polls until nothing is pending and completes the campaign;
- baseline: in the same run, a bare loop over fresh repositories holding the same N
  recipients that only claims and records each batch of 50 as sent: the least any
  sender must do to move N recipients through these repositories.

``recipients_per_s`` is N over the send time (to ``completed``, so it includes up to
one workflow poll of 0.25 s), ``baseline_per_s`` N over the baseline time, ``ratio``
the first over the second, ``peak_rss_mb`` the process's peak resident set after the
send (before the baseline builds its own repositories).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta

import structlog

from mailblast.adapters.local import LocalRuntime
from mailblast.adapters.memory import (
    InMemoryBatchQueue,
    InMemoryBlobStore,
    InMemoryCampaignRepo,
    InMemoryMailer,
    InMemoryRecipientRepo,
    SystemClock,
)
from mailblast.domain.batching import MAX_BATCH
from mailblast.domain.campaign import Campaign, CampaignStatus, MessageContent
from mailblast.domain.recipient import NewRecipient, RecipientStatus, SendOutcome
from mailblast.services.deps import ServiceSettings

CHUNK = 10_000


def people(n: int) -> list[NewRecipient]:
    """``n`` distinct recipients with the merge fields a real list carries."""
    return [
        NewRecipient(
            f"member{i}@example.co.jp",
            {"氏名": f"佐藤 太郎{i}", "会社名": "株式会社サンプル", "会員番号": f"M{i:08d}"},
        )
        for i in range(n)
    ]


async def scheduled_campaign(
    campaigns: InMemoryCampaignRepo, recipients: InMemoryRecipientRepo, rows: list[NewRecipient]
) -> Campaign:
    """A campaign imported with ``rows`` and ``scheduled`` in the past, as the import
    workflow leaves it (without running the import: it is not what is measured)."""
    now = datetime.now(UTC)
    change = Campaign.register(
        campaign_id=uuid.uuid4(),
        import_id=uuid.uuid4(),
        name="send bench",
        from_address="news@example.com",
        content=MessageContent(subject="{{氏名}} 様", text="{{会社名}} {{氏名}} 様 ({{会員番号}})"),
        scheduled_at=now - timedelta(seconds=1),
        s3_key="uploads/bench.csv",
        now=now,
    )
    campaign = change.after
    await campaigns.add(campaign)
    assert campaign.pending_import_id is not None
    for chunk_no, start in enumerate(range(0, len(rows), CHUNK)):
        await recipients.insert_chunk(
            campaign.id, campaign.pending_import_id, chunk_no, rows[start : start + CHUNK]
        )
    finished = campaign.finish_import(
        import_id=campaign.pending_import_id, total_count=len(rows), now=now
    )
    await campaigns.update(finished.before, finished.after)
    return finished.after


async def send(n: int) -> tuple[float, Campaign]:
    """Seconds from runtime start to ``completed``, and the campaign."""
    clock = SystemClock()
    campaigns, recipients = InMemoryCampaignRepo(), InMemoryRecipientRepo()
    campaign = await scheduled_campaign(campaigns, recipients, people(n))
    settings = ServiceSettings()
    runtime = await LocalRuntime.open(
        campaigns=campaigns,
        recipients=recipients,
        blobs=InMemoryBlobStore(),
        mailer=InMemoryMailer(keep_messages=False),
        clock=clock,
        queue=InMemoryBatchQueue(clock, visibility_timeout=settings.claim_lease_seconds),
        settings=settings,
        concurrency=4,
        poll_seconds=0.25,
    )
    started = time.perf_counter()
    async with runtime:
        done = await runtime.settle(campaign.id)
    seconds = time.perf_counter() - started
    mailer = runtime.deps.mailer
    assert isinstance(mailer, InMemoryMailer)
    assert done.status is CampaignStatus.COMPLETED, done.status
    assert done.sent_count == n == mailer.recipients_sent, (done.sent_count, n)
    assert mailer.duplicates() == {}
    return seconds, done


async def baseline(n: int) -> float:
    """Seconds for a bare loop to claim and record every recipient, 50 at a time."""
    campaigns, recipients = InMemoryCampaignRepo(), InMemoryRecipientRepo()
    campaign = await scheduled_campaign(campaigns, recipients, people(n))
    import_id = campaign.current_import_id
    assert import_id is not None
    ids = [r.id for r in recipients.all(campaign.id, import_id)]
    now = datetime.now(UTC)
    started = time.perf_counter()
    for start in range(0, len(ids), MAX_BATCH):
        token = uuid.uuid4().hex
        claim = await recipients.claim(
            campaign.id,
            import_id,
            ids[start : start + MAX_BATCH],
            token=token,
            now=now,
            lease_seconds=120,
        )
        outcomes = [
            SendOutcome(recipient_id=r.id, status=RecipientStatus.SENT, message_id=f"m{r.id}")
            for r in claim.claimed
        ]
        await recipients.record(campaign.id, outcomes, token=token, now=now)
    seconds = time.perf_counter() - started
    counts = await recipients.count_by_status(campaign.id, import_id)
    assert counts[RecipientStatus.SENT] == n, counts
    return seconds


def peak_rss_mb() -> float:
    """This process's peak resident set in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(n: int) -> dict[str, float | int]:
    """Run both measurements; the figures of the JSON output."""
    send_seconds, _campaign = await send(n)
    peak = peak_rss_mb()
    base_seconds = await baseline(n)
    recipients_per_s = n / send_seconds
    baseline_per_s = n / base_seconds
    return {
        "recipients": n,
        "send_seconds": round(send_seconds, 3),
        "baseline_seconds": round(base_seconds, 3),
        "recipients_per_s": round(recipients_per_s, 1),
        "baseline_per_s": round(baseline_per_s, 1),
        "ratio": round(recipients_per_s / baseline_per_s, 3),
        "peak_rss_mb": round(peak, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    result = asyncio.run(main(args.recipients))
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"send {result['recipients']:,} recipients: {result['send_seconds']:.2f} s "
            f"({result['recipients_per_s']:,.0f}/s); baseline claim+record loop "
            f"{result['baseline_seconds']:.2f} s ({result['baseline_per_s']:,.0f}/s); "
            f"ratio {result['ratio']:.2f}; peak RSS {result['peak_rss_mb']:,.0f} MB"
        )
