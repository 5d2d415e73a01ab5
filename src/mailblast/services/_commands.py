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
    """Start and stop workflows, drop old imports."""
    for command in commands:
        match command:
            case StopWorkflow(execution_id):
                await deps.workflows.stop(execution_id)
                log.info("mailblast.workflow.stopped", execution_id=execution_id)
            case StartImport(campaign_id, import_id, name):
                await deps.workflows.start_import(
                    name=name, campaign_id=campaign_id, import_id=import_id
                )
                log.info("mailblast.import.started", execution_id=name)
            case StartSend(campaign_id, scheduled_at, name):
                await deps.workflows.start_send(
                    name=name, campaign_id=campaign_id, scheduled_at=scheduled_at
                )
                log.info(
                    "mailblast.send.scheduled",
                    execution_id=name,
                    scheduled_at=scheduled_at.isoformat(),
                )
            case DeleteImport(campaign_id, import_id):
                await drop_import(deps, campaign_id, import_id)


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
