"""``mailblast send``: one real campaign in the foreground, on the local runtime.

Also the console plumbing ``mailblast demo`` shares: logging set-up, the stores (memory
or PostgreSQL), the progress display, following a campaign to its end and the summary.

A campaign is identified by what it sends: the same CSV, sender, subject, bodies and
time name the same campaign, so running the same command again after Ctrl-C (or a
crash) resumes it instead of starting a second one, and nobody is mailed twice.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import logging
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs
import structlog

from mailblast.domain.addresses import mask_addresses
from mailblast.domain.campaign import Campaign, CampaignStatus
from mailblast.domain.errors import InvalidInputError, MailblastError
from mailblast.domain.recipient import RecipientStatus
from mailblast.ports import (
    BlobStore,
    CampaignRepo,
    Clock,
    Mailer,
    PresignedUpload,
    RecipientRepo,
)

if TYPE_CHECKING:  # the runtime is imported when a command runs, not at start-up
    from mailblast.adapters.local import LocalRuntime

__all__ = [
    "CliError",
    "CountingBlobStore",
    "Progress",
    "RunSummary",
    "Stores",
    "configure_logging",
    "follow",
    "open_stores",
    "print_summary",
    "run_send",
]

log = structlog.get_logger("mailblast.cli")

#: How often the console looks at the campaign (real seconds).
WATCH_SECONDS = 0.1


class CliError(MailblastError):
    """A problem the command reports in one line (exit status 2), never a traceback."""


# --- logging -------------------------------------------------------------------------------


def _masked(renderer: Callable[..., str]) -> Callable[..., str]:
    def render(logger: Any, name: str, event_dict: Any) -> str:
        # the last safety net: whatever a message or a traceback carries is masked
        return mask_addresses(renderer(logger, name, event_dict))

    return render


def configure_logging(*, json_logs: bool = False, verbose: bool = False, stream: TextIO) -> None:
    """structlog for a console command: WARNING and up (INFO with ``verbose``) to
    ``stream``, as key=value lines or JSON, tracebacks without locals, addresses masked."""
    if json_logs:
        tracebacks: Any = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        renderer: Any = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        tracebacks = structlog.processors.format_exc_info
        renderer = structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True
        )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            tracebacks,
            _masked(renderer),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.INFO if verbose else logging.WARNING
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


# --- stores --------------------------------------------------------------------------------


@attrs.frozen
class Stores:
    """The repositories a run uses and how to let go of them."""

    campaigns: CampaignRepo
    recipients: RecipientRepo
    close: Callable[[], Awaitable[None]]
    description: str


async def _nothing() -> None:
    return None


async def open_stores(dsn: str | None, *, migrate: bool, pool_size: int = 10) -> Stores:
    """In-memory repositories, or PostgreSQL at ``dsn``: migrated first with
    ``migrate``, else refused (`CliError`) unless its schema is up to date."""
    if dsn is None:
        from mailblast.adapters.memory import InMemoryCampaignRepo, InMemoryRecipientRepo

        campaigns = InMemoryCampaignRepo()
        recipients = InMemoryRecipientRepo(campaigns=campaigns)
        return Stores(campaigns, recipients, _nothing, "memory")
    try:
        from mailblast.adapters.postgres import (
            PostgresCampaignRepo,
            PostgresPool,
            PostgresRecipientRepo,
            PostgresSettings,
            available_migrations,
            redact_dsn,
            schema_version,
            upgrade_dsn,
        )
    except ImportError as exc:
        msg = f"PostgreSQL support is not installed ({exc}); pip install 'mailblast[postgres]'"
        raise CliError(msg) from exc
    settings = PostgresSettings(dsn, min_size=1, max_size=pool_size)
    if migrate:
        await upgrade_dsn(dsn)
    else:
        try:
            conn = await settings.connect()
        except Exception as exc:
            msg = f"cannot connect to {redact_dsn(dsn)}: {type(exc).__name__}: {exc}"
            raise CliError(msg) from exc
        try:
            have = await schema_version(conn)
        finally:
            await conn.close()
        want = max((m.version for m in available_migrations()), default=0)
        if have < want:
            msg = (
                f"the database schema is at version {have}, this mailblast needs {want}; "
                f"run: mailblast db upgrade --dsn '{redact_dsn(dsn)}'"
            )
            raise CliError(msg)
    pool = PostgresPool(settings)
    return Stores(
        PostgresCampaignRepo(pool),
        PostgresRecipientRepo(pool),
        pool.close,
        f"PostgreSQL {redact_dsn(dsn)}",
    )


async def open_runtime(
    stores: Stores,
    *,
    blobs: BlobStore,
    mailer: Mailer,
    clock: Clock,
    rate: float | None,
    workers: int,
    poll_seconds: float = 1.0,
) -> tuple[LocalRuntime, TimedCampaignRepo]:
    """The local runtime the demo and ``send`` run a campaign on: an in-process queue
    whose visibility timeout is the claim lease, and campaign reads timed for the
    summary."""
    from mailblast.adapters.local import LocalRuntime
    from mailblast.adapters.memory import InMemoryBatchQueue
    from mailblast.services.deps import ServiceSettings

    settings = ServiceSettings()
    timed = TimedCampaignRepo(stores.campaigns, clock)
    runtime = await LocalRuntime.open(
        campaigns=timed,
        recipients=stores.recipients,
        blobs=blobs,
        mailer=mailer,
        clock=clock,
        queue=InMemoryBatchQueue(clock, visibility_timeout=settings.claim_lease_seconds),
        rate=rate,
        settings=settings,
        concurrency=workers,
        poll_seconds=poll_seconds,
    )
    return runtime, timed


class CountingBlobStore:
    """A `BlobStore` that counts the bytes streamed out of it (import progress)."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.streamed = 0

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Write a whole object."""
        await self.inner.put(key, data, content_type=content_type)

    async def get(self, key: str) -> bytes:
        """Read a whole object."""
        return await self.inner.get(key)

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Read an object in chunks, counting them."""
        async for chunk in self.inner.stream(key, chunk_size=chunk_size):
            self.streamed += len(chunk)
            yield chunk

    async def size(self, key: str) -> int:
        """The object's size."""
        return await self.inner.size(key)

    async def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix``."""
        return await self.inner.list_keys(prefix)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete under ``prefix``."""
        return await self.inner.delete_prefix(prefix)

    async def presign_upload(
        self, *, content_type: str = "text/csv", expires_in: int = 900
    ) -> PresignedUpload:
        """A fresh upload key."""
        return await self.inner.presign_upload(content_type=content_type, expires_in=expires_in)


# --- progress ------------------------------------------------------------------------------


class Progress:
    """Live bars on ``stream`` (carriage returns), only when it is a terminal."""

    WIDTH = 28

    def __init__(self, stream: TextIO, *, enabled: bool | None = None) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self._label: str | None = None
        self._drawn = 0

    def show(self, label: str, done: float, total: float, detail: str = "") -> None:
        """Redraw the bar of ``label`` (a new label ends the previous line)."""
        if not self.enabled:
            return
        if self._label is not None and label != self._label:
            self.stream.write("\n")
            self._drawn = 0
        self._label = label
        share = min(1.0, done / total) if total > 0 else 0.0
        filled = round(share * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        line = f"{label:<7} [{bar}] {share:4.0%}  {detail}"
        self.stream.write("\r" + line + " " * max(0, self._drawn - len(line)))
        self.stream.flush()
        self._drawn = len(line)

    def end(self) -> None:
        """Finish the current line."""
        if self.enabled and self._label is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._label = None


# --- following a campaign ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RunSummary:
    """What a run did: the JSON object of ``--json`` and the rows of the table."""

    campaign_id: uuid.UUID
    campaign_status: CampaignStatus
    last_error: str | None
    accepted: int
    rejected: int
    recipients: Mapping[RecipientStatus, int]
    seconds: Mapping[str, float]
    send_rate_per_s: float
    campaign_counts: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        """The issue's shape: status, import, recipients, seconds, send_rate_per_s."""
        return {
            "campaign_status": self.campaign_status.value,
            "import": {"accepted": self.accepted, "rejected": self.rejected},
            "recipients": {s.value: self.recipients.get(s, 0) for s in RecipientStatus},
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "send_rate_per_s": round(self.send_rate_per_s, 1),
        }

    @property
    def consistent(self) -> bool:
        """Every recipient terminal and the campaign's counts equal the table's."""
        r = self.recipients
        sent = r.get(RecipientStatus.SENT, 0) + r.get(RecipientStatus.BOUNCED, 0)
        return (
            r.get(RecipientStatus.PENDING, 0) == 0
            and self.campaign_counts["sent"] == sent
            and self.campaign_counts["failed"] == r.get(RecipientStatus.FAILED, 0)
            and self.campaign_counts["total"] == sum(r.values())
        )


async def _rejected_rows(runtime: LocalRuntime, campaign: Campaign, import_id: uuid.UUID) -> int:
    from mailblast.services import importing

    report = await importing.read_report(runtime.deps, campaign.id, import_id)
    rows = list(csv.reader(io.StringIO(report.decode("utf-8-sig"))))
    return max(0, len(rows) - 1)


class TimedCampaignRepo:
    """A `CampaignRepo` that notes when (on the clock) each campaign entered each status,
    so the phases are timed exactly instead of at the console's next look."""

    def __init__(self, inner: CampaignRepo, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock
        self.entered: dict[tuple[uuid.UUID, CampaignStatus], datetime] = {}

    async def add(self, campaign: Campaign) -> None:
        """Store a new campaign."""
        await self.inner.add(campaign)

    async def get(self, campaign_id: uuid.UUID) -> Campaign:
        """The campaign."""
        return await self.inner.get(campaign_id)

    async def update(self, before: Campaign, after: Campaign) -> None:
        """Compare-and-set, noting a status change."""
        await self.inner.update(before, after)
        if after.status is not before.status:
            self.entered.setdefault((after.id, after.status), self.clock.now())

    async def list_page(
        self, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[Campaign]:
        """Newest first."""
        return await self.inner.list_page(limit=limit, before=before)

    async def with_status(self, statuses: Sequence[CampaignStatus]) -> list[Campaign]:
        """Campaigns in ``statuses``."""
        return await self.inner.with_status(statuses)


def _settled(runtime: LocalRuntime) -> int:
    """Recipients this process's workers brought to a terminal status so far."""
    stats = runtime.workers.stats
    return stats.sent + stats.failed + stats.unknown + stats.dead_lettered_recipients


_SETTLED = (CampaignStatus.COMPLETED, CampaignStatus.SEND_FAILED, CampaignStatus.IMPORT_FAILED)


@attrs.define
class _SendBar:
    """The send bar: one count from the table when sending is first seen (on
    PostgreSQL a count takes tens of milliseconds, too much ten times a second beside
    the workers), then what this process's workers settled since."""

    runtime: LocalRuntime
    first_terminal: int | None = None
    total: int = 0
    settled_before: int = 0
    since: datetime | None = None

    async def draw(self, campaign: Campaign, progress: Progress, now: datetime) -> None:
        assert campaign.current_import_id is not None
        if self.first_terminal is None:
            deps = self.runtime.deps
            counts = await deps.recipients.count_by_status(campaign.id, campaign.current_import_id)
            self.total = sum(counts.values())
            self.first_terminal = self.total - counts[RecipientStatus.PENDING]
            self.settled_before = _settled(self.runtime)
            self.since = now
        done = self.done()
        elapsed = (now - (self.since or now)).total_seconds()
        rate = (done - self.first_terminal) / elapsed if elapsed > 0 else 0.0
        progress.show("send", done, self.total, f"{done:,}/{self.total:,}  {rate:,.0f}/s")

    def done(self) -> int:
        first = self.first_terminal or 0
        return min(self.total, first + _settled(self.runtime) - self.settled_before)

    def close(self, progress: Progress) -> None:
        if self.first_terminal is not None:  # the bar's last state: where sending ended
            done = self.done()
            progress.show("send", done, self.total, f"{done:,}/{self.total:,}")


async def follow(
    runtime: LocalRuntime,
    campaign_id: uuid.UUID,
    *,
    progress: Progress,
    blobs: CountingBlobStore,
    timed: TimedCampaignRepo,
    started: datetime,
    watch_seconds: float = WATCH_SECONDS,
) -> RunSummary:
    """Watch the campaign until it settles, drawing progress; returns the summary.

    The phases run from registration (``started``) to the end of the import, to the
    start of sending, to the last batch the workers finished: ``seconds.send`` and the
    rate are not diluted by the workflow's last poll or by the console's own pace.
    """
    deps = runtime.deps
    seen: dict[str, datetime] = {}
    import_id: uuid.UUID | None = None
    csv_size = 0
    bar = _SendBar(runtime)
    while True:
        campaign = await deps.campaigns.get(campaign_id)
        now = deps.clock.now()
        status = campaign.status
        if status is CampaignStatus.IMPORTING:
            if campaign.pending_import_id != import_id:
                import_id = campaign.pending_import_id
                csv_size = await deps.blobs.size(campaign.s3_key)
            read = min(blobs.streamed, csv_size)
            detail = f"{read / 1e6:,.1f} of {csv_size / 1e6:,.1f} MB read"
            progress.show("import", read, csv_size, detail)
        elif "import" not in seen:
            seen["import"] = now
            if import_id is not None:
                progress.show("import", 1, 1, f"{csv_size / 1e6:,.1f} MB read")
        if status is CampaignStatus.SCHEDULED:
            wait = (campaign.scheduled_at - now).total_seconds()
            progress.show("wait", 0, 1, f"sending starts in {max(0.0, wait):,.1f} s")
        if status is CampaignStatus.SENDING and campaign.current_import_id is not None:
            seen.setdefault("sending", now)
            await bar.draw(campaign, progress, now)
        if status in _SETTLED:
            seen["end"] = now
            bar.close(progress)
            break
        await asyncio.sleep(watch_seconds)
    progress.end()

    def entered(*statuses: CampaignStatus) -> datetime | None:
        times = [timed.entered.get((campaign_id, s)) for s in statuses]
        return min((t for t in times if t is not None), default=None)

    imported = (
        entered(CampaignStatus.SCHEDULED, CampaignStatus.IMPORT_FAILED)
        or seen.get("import")
        or started
    )
    sending = entered(CampaignStatus.SENDING) or seen.get("sending") or seen["end"]
    ended = entered(*_SETTLED) or seen["end"]
    last_batch = runtime.workers.stats.last_batch_at
    drained = last_batch if last_batch is not None and last_batch >= sending else ended
    # a campaign this process saw start sending had nobody terminal then
    before = 0 if entered(CampaignStatus.SENDING) else (bar.first_terminal or 0)
    return await summarize(
        runtime,
        campaign,
        import_id=import_id,
        times=(started, imported, max(sending, imported), drained, ended),
        terminal_before=before,
    )


async def summarize(
    runtime: LocalRuntime,
    campaign: Campaign,
    *,
    import_id: uuid.UUID | None,
    times: tuple[datetime, datetime, datetime, datetime, datetime],
    terminal_before: int = 0,
) -> RunSummary:
    """The summary of a settled campaign; ``times`` are registration, end of import,
    start of sending, last batch sent, and settling."""
    deps = runtime.deps
    counts: Mapping[RecipientStatus, int] = dict.fromkeys(RecipientStatus, 0)
    if campaign.current_import_id is not None:
        counts = await deps.recipients.count_by_status(campaign.id, campaign.current_import_id)
    report_import = campaign.current_import_id or import_id
    rejected = await _rejected_rows(runtime, campaign, report_import) if report_import else 0
    started, imported, sending, drained, ended = times

    def between(a: datetime, b: datetime) -> float:
        return max(0.0, (b - a).total_seconds())

    seconds = {
        "import": between(started, imported),
        "wait": between(imported, sending),
        "send": between(sending, drained),
        "total": between(started, ended),
    }
    done = sum(counts.values()) - counts[RecipientStatus.PENDING] - terminal_before
    return RunSummary(
        campaign_id=campaign.id,
        campaign_status=campaign.status,
        last_error=campaign.last_error,
        accepted=campaign.total_count if campaign.current_import_id else 0,
        rejected=rejected,
        recipients=counts,
        seconds=seconds,
        send_rate_per_s=done / seconds["send"] if seconds["send"] > 0 else 0.0,
        campaign_counts={
            "total": campaign.total_count,
            "sent": campaign.sent_count,
            "failed": campaign.failed_count,
            "bounced": campaign.bounced_count,
        },
    )


def print_summary(
    summary: RunSummary, out: TextIO, *, title: str, extra: Sequence[str] = ()
) -> None:
    """The closing table a person reads (``extra`` lines at its end)."""
    s = summary.seconds
    r = summary.recipients
    status = summary.campaign_status
    lines = [
        f"{title}: campaign {summary.campaign_id}",
        f"  status      {status.value} ({status.label})",
        "",
        "  phase        seconds",
        f"  import     {s['import']:>9.2f}   {summary.accepted:,} accepted, "
        f"{summary.rejected:,} rejected",
        f"  wait       {s['wait']:>9.2f}",
        f"  send       {s['send']:>9.2f}   {summary.send_rate_per_s:,.0f} recipients/s",
        f"  total      {s['total']:>9.2f}",
        "",
        "  recipients   " + "   ".join(f"{k.value} {r.get(k, 0):,}" for k in RecipientStatus),
        f"  consistent   {'yes' if summary.consistent else 'NO'} "
        "(every recipient terminal, campaign counts equal the table's)",
    ]
    if summary.last_error:
        lines.append(f"  reason       {summary.last_error}")
    lines.extend(extra)
    print("\n".join(lines), file=out, flush=True)


def summary_line(summary: RunSummary, *, title: str) -> str:
    """One line for a log or a non-terminal stderr."""
    s = summary.seconds
    r = summary.recipients
    return (
        f"{title}: {summary.campaign_status.value} in {s['total']:.2f} s "
        f"(import {s['import']:.2f} s, wait {s['wait']:.2f} s, send {s['send']:.2f} s at "
        f"{summary.send_rate_per_s:,.0f}/s); sent {r.get(RecipientStatus.SENT, 0):,}, "
        f"failed {r.get(RecipientStatus.FAILED, 0):,}, "
        f"pending {r.get(RecipientStatus.PENDING, 0):,}"
    )


def exit_status(summary: RunSummary) -> int:
    """0 when the campaign completed, 1 when its import or its sending failed."""
    return 0 if summary.campaign_status is CampaignStatus.COMPLETED else 1


# --- mailblast send ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SendRequest:
    """The command line of ``mailblast send``, checked."""

    csv_path: Path
    from_address: str
    subject: str
    text: str
    html: str | None
    at: datetime
    dsn: str | None = None
    mailer: str = "ses"
    rate: float | None = None
    workers: int = 8


def _read_body(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        msg = f"cannot read the {what} file {path}: {exc.strerror or exc}"
        raise CliError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = f"the {what} file {path} is not UTF-8 text"
        raise CliError(msg) from exc


def parse_send_request(args: Any) -> SendRequest:
    """Check the ``mailblast send`` arguments; `CliError` says what is wrong."""
    if args.text is None and args.html is None:
        msg = "give the message body with --text FILE, --html FILE, or both"
        raise CliError(msg)
    try:
        at = datetime.fromisoformat(args.at)
    except ValueError as exc:
        msg = (
            "--at must be an ISO 8601 time with an offset, e.g. 2026-12-24T09:00:00+09:00, "
            f"not {args.at!r}"
        )
        raise CliError(msg) from exc
    if at.tzinfo is None or at.utcoffset() is None:
        msg = f"--at must carry a UTC offset, e.g. {args.at}+09:00"
        raise CliError(msg)
    csv_path = Path(args.csv)
    if not csv_path.is_file():
        msg = f"no such CSV file: {args.csv}"
        raise CliError(msg)
    if args.rate is not None and args.rate <= 0:
        msg = f"--rate must be a positive number of messages per second, not {args.rate}"
        raise CliError(msg)
    if args.workers < 1:
        msg = f"--workers must be at least 1, not {args.workers}"
        raise CliError(msg)
    mailer = args.mailer
    if mailer != "ses" and not (mailer.startswith("mbox:") and len(mailer) > len("mbox:")):
        msg = f"--mailer must be ses or mbox:PATH, not {mailer!r}"
        raise CliError(msg)
    if mailer == "ses" and args.dsn is None:
        msg = (
            "--mailer ses needs --dsn: without a database an interrupted run could not "
            "resume, and a rerun would mail everyone again"
        )
        raise CliError(msg)
    return SendRequest(
        csv_path=csv_path,
        from_address=args.from_address,
        subject=args.subject,
        text=_read_body(args.text, "text") or "",
        html=_read_body(args.html, "HTML"),
        at=at,
        dsn=args.dsn,
        mailer=mailer,
        rate=args.rate,
        workers=args.workers,
    )


def _file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def campaign_key(request: SendRequest, csv_digest: str) -> str:
    """The upload key that names this campaign: the same CSV and message at the same
    time are the same campaign, so a rerun finds it instead of mailing everyone again."""
    identity = json.dumps(
        [
            csv_digest,
            request.from_address,
            request.subject,
            request.text,
            request.html,
            request.at.isoformat(),
        ],
        ensure_ascii=False,
    )
    return f"uploads/cli/{hashlib.sha256(identity.encode()).hexdigest()}.csv"


async def find_campaign(campaigns: CampaignRepo, s3_key: str) -> Campaign | None:
    """The newest campaign registered with ``s3_key``, if any (keyset pages)."""
    cursor: tuple[datetime, uuid.UUID] | None = None
    while True:
        page = await campaigns.list_page(limit=200, before=cursor)
        for campaign in page:
            if campaign.s3_key == s3_key:
                return campaign
        if len(page) < 200:
            return None
        cursor = (page[-1].created_at, page[-1].id)


async def _open_mailer(
    request: SendRequest, clock: Any
) -> tuple[Mailer, Callable[[], Awaitable[None]]]:
    if request.mailer.startswith("mbox:"):
        from mailblast.adapters.local import MboxMailer

        mbox = MboxMailer(request.mailer.removeprefix("mbox:"), clock=clock)

        async def close_mbox() -> None:
            mbox.close()

        return mbox, close_mbox
    try:
        import os

        from mailblast.adapters.aws import AwsClients, AwsSettings, SesMailer
    except ImportError as exc:
        msg = f"AWS support is not installed ({exc}); pip install 'mailblast[aws]'"
        raise CliError(msg) from exc
    clients = AwsClients(AwsSettings.from_env(os.environ))
    return SesMailer(clients), clients.close


async def run_send(
    request: SendRequest,
    *,
    out: TextIO,
    err: TextIO,
    as_json: bool = False,
    progress: Progress | None = None,
) -> int:
    """Register (or find again) the campaign, run it to its end in this process,
    print the summary; returns the exit status."""
    from mailblast.adapters.memory import LocalFolderBlobStore, SystemClock
    from mailblast.services.campaigns import NewCampaign, register

    progress = progress or Progress(err)
    clock = SystemClock()
    digest = await asyncio.to_thread(_file_digest, request.csv_path)
    key = campaign_key(request, digest)
    stores = await open_stores(request.dsn, migrate=False, pool_size=request.workers + 4)
    if request.dsn is None:
        print(
            "note: without --dsn the campaign lives in memory; an interrupted run starts over",
            file=err,
        )
    try:
        mailer, close_mailer = await _open_mailer(request, clock)
    except BaseException:
        await stores.close()
        raise
    with tempfile.TemporaryDirectory(prefix="mailblast-send-") as folder:
        blobs = CountingBlobStore(LocalFolderBlobStore(folder))
        # the CSV goes where an upload would have put it (copied: streamed, never whole)
        target = Path(folder) / key
        target.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, request.csv_path, target)
        runtime, timed = await open_runtime(
            stores,
            blobs=blobs,
            mailer=mailer,
            clock=clock,
            rate=request.rate,
            workers=request.workers,
        )
        started = clock.now()
        try:
            existing = await find_campaign(stores.campaigns, key)
            await runtime.start(campaign_ids={existing.id} if existing else ())
            if existing is None:
                campaign = await register(
                    runtime.deps,
                    NewCampaign(
                        name=request.csv_path.name,
                        from_address=request.from_address,
                        subject=request.subject,
                        text=request.text,
                        html=request.html,
                        scheduled_at=request.at,
                        s3_key=key,
                    ),
                )
            else:
                campaign = existing
                print(
                    f"resuming campaign {campaign.id} ({campaign.status.value})",
                    file=err,
                )
            summary = await follow(
                runtime,
                campaign.id,
                progress=progress,
                blobs=blobs,
                timed=timed,
                started=started,
            )
        finally:
            progress.end()
            await runtime.close()
            await close_mailer()
            await stores.close()
    report(summary, out=out, err=err, as_json=as_json, progress=progress, title="mailblast send")
    return exit_status(summary)


def report(
    summary: RunSummary,
    *,
    out: TextIO,
    err: TextIO,
    as_json: bool,
    progress: Progress,
    title: str,
    extra: Sequence[str] = (),
) -> None:
    """Print the JSON object or the table to ``out``; one line to a non-terminal ``err``."""
    if as_json:
        print(json.dumps(summary.to_json(), ensure_ascii=False), file=out, flush=True)
    else:
        print_summary(summary, out, title=title, extra=extra)
    if not progress.enabled:
        print(summary_line(summary, title=title), file=err)


def main_send(args: Any, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``mailblast send`` from parsed arguments: exit status 0 completed, 1 failed,
    2 bad input, 130 interrupted (rerun the same command to resume)."""
    out = out or sys.stdout
    err = err or sys.stderr
    configure_logging(json_logs=args.log_json, verbose=args.verbose, stream=err)

    def go() -> int:
        request = parse_send_request(args)
        return asyncio.run(run_send(request, out=out, err=err, as_json=args.json))

    return guarded(go, err=err, interrupted="interrupted: run the same command again to resume")


def guarded(run: Callable[[], int], *, err: TextIO, interrupted: str = "interrupted") -> int:
    """Run a command body: a problem is one line on ``err`` and an exit status (2 for
    bad input, 130 for Ctrl-C), never a traceback; addresses in messages are masked."""
    try:
        return run()
    except KeyboardInterrupt:
        print(f"\n{interrupted}", file=err)
        return 130
    except (CliError, InvalidInputError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    except MailblastError as exc:
        print(f"error: {type(exc).__name__}: {mask_addresses(str(exc))}", file=err)
        return 2
