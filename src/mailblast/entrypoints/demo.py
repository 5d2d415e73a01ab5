"""``mailblast demo``: a whole campaign in one process, with nothing installed but mailblast.

It writes a realistic CSV (Japanese names, CP932 as Excel saves it, about 1% invalid and
1% duplicate rows), registers a campaign scheduled a few seconds ahead, and runs import
-> scheduled -> sending -> completed on the local runtime with an in-memory mailer and
the in-memory repositories (or PostgreSQL with ``--dsn``).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from mailblast.entrypoints.send import (
    CountingBlobStore,
    Progress,
    RunSummary,
    configure_logging,
    exit_status,
    follow,
    guarded,
    open_runtime,
    open_stores,
    report,
)

__all__ = ["DEMO_HTML", "DEMO_SUBJECT", "DEMO_TEXT", "main_demo", "run_demo"]

DEMO_SUBJECT = "{{氏名}} 様: 冬のご案内"
DEMO_TEXT = (
    "{{氏名}} 様\n\n"
    "いつも {{会社名}} の皆様にはお世話になっております。\n"
    "会員番号 {{会員番号}} (登録日 {{登録日}}) のお客様に冬のご案内をお送りします。\n"
)
DEMO_HTML = (
    "<p>{{氏名}} 様</p>"
    "<p>いつも {{会社名}} の皆様にはお世話になっております。</p>"
    "<p>会員番号 <b>{{会員番号}}</b> (登録日 {{登録日}}) のお客様に冬のご案内をお送りします。</p>"
)


async def run_demo(
    *,
    recipients: int = 200_000,
    rate: float | None = None,
    dsn: str | None = None,
    as_json: bool = False,
    schedule_in: float = 3.0,
    workers: int = 4,
    out: TextIO,
    err: TextIO,
    progress: Progress | None = None,
) -> RunSummary:
    """Generate ``recipients`` rows, register and run the campaign to its end; print
    the JSON object (``as_json``) or the summary table to ``out``; return the summary."""
    from mailblast.adapters.memory import (
        InMemoryBlobStore,
        InMemoryMailer,
        SystemClock,
    )
    from mailblast.entrypoints.sample import write_csv
    from mailblast.services.campaigns import NewCampaign, register

    progress = progress or Progress(err)
    if progress.enabled:
        progress.show("sample", 0, 1, f"writing {recipients:,} rows")
    with tempfile.TemporaryDirectory(prefix="mailblast-demo-") as folder:
        path = Path(folder) / "recipients.csv"
        await asyncio.to_thread(write_csv, path, recipients)
        data = await asyncio.to_thread(path.read_bytes)
    if progress.enabled:
        progress.show("sample", 1, 1, f"{recipients:,} rows, {len(data) / 1e6:,.1f} MB (CP932)")

    clock = SystemClock()
    stores = await open_stores(dsn, migrate=True, pool_size=workers + 4)
    # the demo's mailer is instant: keep counts, not 200,000 rendered messages
    mailer = InMemoryMailer(keep_messages=False)
    blobs = CountingBlobStore(InMemoryBlobStore())
    try:
        runtime, timed = await open_runtime(
            stores,
            blobs=blobs,
            mailer=mailer,
            clock=clock,
            rate=rate,
            workers=workers,
            # twice a second notices the end of a short demo soon enough
            poll_seconds=0.5,
        )
        upload = await blobs.presign_upload()
        await blobs.put(upload.s3_key, data, content_type="text/csv")
        started = clock.now()
        try:
            # another demo's unfinished campaign in the same database is left alone
            await runtime.start(campaign_ids=())
            campaign = await register(
                runtime.deps,
                NewCampaign(
                    name=f"mailblast demo ({recipients:,} recipients)",
                    from_address="news@example.com",
                    subject=DEMO_SUBJECT,
                    text=DEMO_TEXT,
                    html=DEMO_HTML,
                    scheduled_at=clock.now() + timedelta(seconds=schedule_in),
                    s3_key=upload.s3_key,
                ),
            )
            summary = await follow(
                runtime, campaign.id, progress=progress, blobs=blobs, timed=timed, started=started
            )
        finally:
            progress.end()
            await runtime.close()
    finally:
        await stores.close()
    mailed = (
        f"  mailer       {mailer.recipients_sent:,} messages in {mailer.calls:,} calls, "
        f"{len(mailer.duplicates())} address(es) mailed twice"
    )
    report(
        summary,
        out=out,
        err=err,
        as_json=as_json,
        progress=progress,
        title="mailblast demo",
        extra=[mailed],
    )
    return summary


def main_demo(args: Any, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``mailblast demo`` from parsed arguments: exit status 0 when the campaign
    completed consistently, 1 otherwise, 2 on bad input, 130 when interrupted."""
    out = out or sys.stdout
    err = err or sys.stderr
    configure_logging(json_logs=args.log_json, verbose=args.verbose, stream=err)
    problem = None
    if args.recipients < 1:
        problem = f"--recipients must be at least 1, not {args.recipients}"
    elif args.rate is not None and args.rate <= 0:
        problem = f"--rate must be positive, not {args.rate}"
    elif args.workers < 1:
        problem = f"--workers must be at least 1, not {args.workers}"
    if problem:
        print(f"error: {problem}", file=err)
        return 2

    def go() -> int:
        summary = asyncio.run(
            run_demo(
                recipients=args.recipients,
                rate=args.rate,
                dsn=args.dsn,
                as_json=args.json,
                schedule_in=args.schedule_in,
                workers=args.workers,
                out=out,
                err=err,
            )
        )
        if not summary.consistent:
            print("error: the campaign's counts do not add up to the recipients'", file=err)
            return 1
        return exit_status(summary)

    return guarded(go, err=err)
