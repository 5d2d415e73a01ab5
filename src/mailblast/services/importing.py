"""The import workflow's steps: split, insert chunk, finalize (the swap), fail.

Each step re-reads the campaign and refuses to act for an import that is no longer the
one the campaign waits for (`StaleImportError`), so a late import changes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Awaitable, Callable, Sequence

import attrs
import structlog

from mailblast.domain.campaign import Campaign
from mailblast.domain.chunks import ChunkEncoder
from mailblast.domain.errors import BlobNotFoundError, CsvFileError, StaleImportError
from mailblast.domain.intake import AcceptedRow, CsvIntake, RejectedRow
from mailblast.services._commands import (
    carry_out,
    chunk_prefix,
    drop_import,
    report_prefix,
    save,
)
from mailblast.services.deps import Deps

__all__ = [
    "SplitResult",
    "discard_stale",
    "fail",
    "finalize",
    "insert_chunk",
    "read_report",
    "schedule_send",
    "split",
]

log = structlog.get_logger("mailblast.services")

REPORT_HEADER = ("line", "email", "reason")
_SLICE = 64 * 1024


@attrs.frozen(kw_only=True)
class SplitResult:
    """What the split step wrote: chunk keys (to map over) and the row counts."""

    chunk_keys: list[str]
    accepted: int
    rejected: int
    encoding: str
    fields: list[str]


def _bind(campaign_id: uuid.UUID, import_id: uuid.UUID) -> None:
    structlog.contextvars.bind_contextvars(campaign_id=str(campaign_id), import_id=str(import_id))


async def _current(deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID) -> Campaign:
    campaign = await deps.campaigns.get(campaign_id)
    if not campaign.is_current_import(import_id):
        raise StaleImportError(
            campaign_id=campaign_id, import_id=import_id, expected=campaign.pending_import_id
        )
    return campaign


def _encode_report(rows: Sequence[RejectedRow], *, header: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(REPORT_HEADER)
    writer.writerows((r.line, r.email, r.reason) for r in rows)
    # UTF-8 with BOM so that Excel opens the report with the right encoding
    return (("\ufeff" if header else "") + buffer.getvalue()).encode()


@attrs.define
class _SplitWriter:
    """Buffers accepted and rejected rows; writes chunks and report parts as they fill."""

    deps: Deps
    campaign_id: uuid.UUID
    import_id: uuid.UUID
    on_chunk: Callable[[str], Awaitable[None]] | None
    accepted: list[AcceptedRow] = attrs.Factory(list)
    rejected: list[RejectedRow] = attrs.Factory(list)
    chunk_keys: list[str] = attrs.Factory(list)
    report_parts: int = 0
    encoder: ChunkEncoder = attrs.Factory(ChunkEncoder)

    def take(self, rows: list[AcceptedRow | RejectedRow]) -> None:
        for row in rows:
            if isinstance(row, AcceptedRow):
                self.accepted.append(row)
            else:
                self.rejected.append(row)

    async def flush(self, *, final: bool) -> None:
        settings, blobs = self.deps.settings, self.deps.blobs
        if self.accepted and (final or len(self.accepted) >= settings.chunk_rows):
            prefix = chunk_prefix(self.campaign_id, self.import_id)
            key = f"{prefix}{len(self.chunk_keys):05d}.csv"
            data = self.encoder.encode((r.email, r.fields) for r in self.accepted)
            await blobs.put(key, data, content_type="text/csv")
            self.chunk_keys.append(key)
            self.accepted.clear()
            if self.on_chunk is not None:
                await self.on_chunk(key)
        if self.rejected and (final or len(self.rejected) >= settings.report_rows_per_part):
            prefix = report_prefix(self.campaign_id, self.import_id)
            data = _encode_report(self.rejected, header=self.report_parts == 0)
            await blobs.put(f"{prefix}{self.report_parts:05d}.csv", data, content_type="text/csv")
            self.report_parts += 1
            self.rejected.clear()


async def split(
    deps: Deps,
    campaign_id: uuid.UUID,
    import_id: uuid.UUID,
    *,
    on_chunk: Callable[[str], Awaitable[None]] | None = None,
) -> SplitResult:
    """Stream the CSV, validate and de-duplicate it, write normalized chunks and the
    rejected-row report. A file-level problem raises `CsvFileError` (for `fail`).

    ``on_chunk`` is told each chunk key as soon as it is written, so a runtime that can
    (the local one) inserts chunks while the rest of the file is still being read.
    """
    _bind(campaign_id, import_id)
    campaign = await _current(deps, campaign_id, import_id)
    limits = deps.settings.intake
    size = await deps.blobs.size(campaign.s3_key)
    if size > limits.max_bytes:
        raise CsvFileError(
            f"the file is {size:,} bytes; the limit is {limits.max_bytes:,} bytes",
            code="too_large",
        )
    await deps.blobs.delete_prefix(f"imports/{campaign_id}/{import_id}/")
    intake = CsvIntake(limits=limits, expected_bytes=size)
    needed = campaign.content.fields_used()
    checked = False
    out = _SplitWriter(deps, campaign_id, import_id, on_chunk)
    async for data in deps.blobs.stream(campaign.s3_key):
        if on_chunk is None:
            out.take(intake.feed(data))
        else:
            # decoding and validating is CPU work: in small slices, giving the event loop
            # a turn between them, so the chunk COPYs already handed to on_chunk keep
            # streaming into the database (which works on its own core) meanwhile
            for start in range(0, len(data), _SLICE):
                out.take(intake.feed(data[start : start + _SLICE]))
                await asyncio.sleep(0)
        if not checked and intake.rows:  # the header has been read
            checked = True
            _check_placeholders(needed, intake.fields)
        await out.flush(final=False)
    out.take(intake.flush())
    try:
        out.take(intake.finish())
    except CsvFileError:
        # keep the report of what was rejected: it tells staff why no row was usable
        out.accepted.clear()
        await out.flush(final=True)
        raise
    if not checked:
        _check_placeholders(needed, intake.fields)
    await out.flush(final=True)
    log.info(
        "mailblast.import.split",
        accepted=intake.accepted,
        rejected=intake.rejected,
        chunks=len(out.chunk_keys),
        encoding=intake.encoding,
    )
    return SplitResult(
        chunk_keys=out.chunk_keys,
        accepted=intake.accepted,
        rejected=intake.rejected,
        encoding=intake.encoding or "",
        fields=list(intake.fields),
    )


def _check_placeholders(needed: frozenset[str], fields: Sequence[str]) -> None:
    missing = sorted(needed - set(fields))
    if missing:
        names = ", ".join("{{" + m + "}}" for m in missing)
        columns = ", ".join(fields) or "none"
        raise CsvFileError(
            f"the message uses {names} but the CSV has no such column (merge columns: {columns})",
            code="unknown_placeholders",
        )


async def insert_chunk(
    deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID, chunk_key: str
) -> int:
    """Insert one chunk's recipients with the new import id (idempotent per chunk)."""
    _bind(campaign_id, import_id)
    prefix = chunk_prefix(campaign_id, import_id)
    if not chunk_key.startswith(prefix):
        raise StaleImportError(campaign_id=campaign_id, import_id=import_id, expected=chunk_key)
    chunk_no = int(chunk_key.removeprefix(prefix).split(".", 1)[0])
    try:
        data = await deps.blobs.get(chunk_key)
    except BlobNotFoundError:
        # a failed or replaced import's chunks are removed with it: that is stale, not lost
        await _current(deps, campaign_id, import_id)
        raise
    # checked right before writing, after the read: the campaign may have moved on
    # meanwhile (a store that holds the campaigns checks again inside its transaction)
    await _current(deps, campaign_id, import_id)
    inserted = await deps.recipients.insert_encoded_chunk(campaign_id, import_id, chunk_no, data)
    log.debug("mailblast.import.chunk_inserted", chunk=chunk_no, rows=inserted)
    return inserted


async def finalize(deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID) -> Campaign:
    """The swap: point the campaign at the new import and schedule the send; the old
    import's rows are removed after the swap, outside its critical path."""
    _bind(campaign_id, import_id)
    campaign = await deps.campaigns.get(campaign_id)
    if campaign.current_import_id == import_id and campaign.pending_import_id is None:
        return campaign  # finalized already (a retried step)
    if not campaign.is_current_import(import_id):
        raise StaleImportError(
            campaign_id=campaign_id, import_id=import_id, expected=campaign.pending_import_id
        )
    counts = await deps.recipients.count_by_status(campaign_id, import_id)
    total = sum(counts.values())
    if total == 0:
        raise CsvFileError("the file has no valid row", code="no_valid_rows")
    change = campaign.finish_import(import_id=import_id, total_count=total, now=deps.clock.now())
    await deps.campaigns.update(change.before, change.after)
    log.info("mailblast.import.finalized", total_count=total)
    await carry_out(deps, change.commands)
    return change.after


async def schedule_send(deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID) -> str | None:
    """(Re)start the send workflow the campaign points at; idempotent. None if the
    campaign has moved on (another import, or sending already)."""
    campaign = await deps.campaigns.get(campaign_id)
    if (
        campaign.current_import_id != import_id
        or campaign.send_execution_id is None
        or campaign.status.value != "scheduled"
    ):
        return None
    return await deps.workflows.start_send(
        name=campaign.send_execution_id,
        campaign_id=campaign_id,
        scheduled_at=campaign.scheduled_at,
    )


async def fail(deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID, reason: str) -> Campaign:
    """The import failed: ``import_failed`` with the reason; the partial rows go, the
    current import stays. A stale import only cleans up after itself."""
    _bind(campaign_id, import_id)
    campaign = await deps.campaigns.get(campaign_id)
    if not campaign.is_current_import(import_id):
        log.info("mailblast.import.stale_failure_ignored", reason=reason)
        await discard_stale(deps, campaign_id, import_id)
        return campaign
    change = campaign.fail_import(import_id=import_id, reason=reason, now=deps.clock.now())
    await save(deps, change)
    log.warning("mailblast.import.failed", reason=reason)
    return change.after


async def discard_stale(deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID) -> bool:
    """Remove what a stale import wrote, unless the campaign still uses it."""
    campaign = await deps.campaigns.get(campaign_id)
    if import_id in (campaign.current_import_id, campaign.pending_import_id):
        return False
    await drop_import(deps, campaign_id, import_id)
    return True


async def read_report(deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID) -> bytes:
    """The rejected-row report as one CSV (header ``line,email,reason``)."""
    keys = await deps.blobs.list_keys(report_prefix(campaign_id, import_id))
    parts = [await deps.blobs.get(key) for key in keys]
    if not parts:
        return _encode_report([], header=True)
    return b"".join(parts)
