"""Carrying out what a campaign change asks for, after it was stored."""

from __future__ import annotations

import uuid

import structlog

from mailblast.domain.campaign import (
    Change,
    Command,
    DeleteImport,
    StartImport,
    StartSend,
    StopWorkflow,
)
from mailblast.services.deps import Deps

log = structlog.get_logger("mailblast.services")


def chunk_prefix(campaign_id: object, import_id: object) -> str:
    """Where an import's normalized chunks live."""
    return f"imports/{campaign_id}/{import_id}/chunks/"


def report_prefix(campaign_id: object, import_id: object) -> str:
    """Where an import's rejected-row report parts live."""
    return f"imports/{campaign_id}/{import_id}/rejected/"


async def save(deps: Deps, change: Change) -> None:
    """Store the change (compare-and-set), then carry out its commands in order."""
    await deps.campaigns.update(change.before, change.after)
    await carry_out(deps, change.commands)


async def carry_out(deps: Deps, commands: tuple[Command, ...]) -> None:
    """Start and stop workflows, drop old imports.

    The change is already stored, so a command that fails must not leave the campaign
    waiting for nothing: a stop that fails is only logged (the execution it meant is
    stale and can do nothing); an import that cannot start fails the import, so staff
    can upload again; a send that cannot start is noted on the campaign and raised.
    """
    for command in commands:
        match command:
            case StopWorkflow(execution_id):
                try:
                    await deps.workflows.stop(execution_id)
                except Exception:
                    log.warning("mailblast.workflow.stop_failed", execution_id=execution_id)
                else:
                    log.info("mailblast.workflow.stopped", execution_id=execution_id)
            case StartImport(campaign_id, import_id, name):
                try:
                    await deps.workflows.start_import(
                        name=name, campaign_id=campaign_id, import_id=import_id
                    )
                except Exception as exc:
                    log.exception("mailblast.import.start_failed", execution_id=name)
                    await _import_not_started(deps, campaign_id, import_id, exc)
                else:
                    log.info("mailblast.import.started", execution_id=name)
            case StartSend(campaign_id, scheduled_at, name):
                try:
                    await deps.workflows.start_send(
                        name=name, campaign_id=campaign_id, scheduled_at=scheduled_at
                    )
                except Exception as exc:
                    await _send_not_started(deps, campaign_id, name, exc)
                    raise
                log.info(
                    "mailblast.send.scheduled",
                    execution_id=name,
                    scheduled_at=scheduled_at.isoformat(),
                )
            case DeleteImport(campaign_id, import_id):
                await drop_import(deps, campaign_id, import_id)


async def _import_not_started(
    deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID, exc: Exception
) -> None:
    campaign = await deps.campaigns.get(campaign_id)
    if not campaign.is_current_import(import_id):
        return
    reason = (
        f"the import could not be started ({type(exc).__name__}); upload the file again to retry"
    )
    change = campaign.fail_import(import_id=import_id, reason=reason, now=deps.clock.now())
    await deps.campaigns.update(change.before, change.after)


async def _send_not_started(
    deps: Deps, campaign_id: uuid.UUID, execution_id: str, exc: Exception
) -> None:
    campaign = await deps.campaigns.get(campaign_id)
    if campaign.send_execution_id != execution_id:
        return
    reason = f"the send could not be scheduled ({type(exc).__name__}); edit the send time to retry"
    await deps.campaigns.update(campaign, campaign.note_error(reason=reason, now=deps.clock.now()))


async def drop_import(deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID) -> None:
    """Remove an import's recipients and chunks; a failure here only leaves garbage."""
    try:
        rows = await deps.recipients.delete_import(campaign_id, import_id)
        await deps.blobs.delete_prefix(chunk_prefix(campaign_id, import_id))
    except Exception:
        log.warning(
            "mailblast.import.cleanup_failed", dropped_import_id=str(import_id), exc_info=True
        )
        return
    log.info("mailblast.import.dropped", dropped_import_id=str(import_id), rows=rows)
