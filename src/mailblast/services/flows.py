"""The two workflows as plain async functions over the same steps the state machines run.

The local runtime runs these; on AWS, `infra/statemachines/*.asl.json` chains the same
steps as Lambda tasks.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import structlog

from mailblast.domain.campaign import Campaign, CampaignStatus
from mailblast.domain.errors import CsvFileError, StaleExecutionError, StaleImportError
from mailblast.services import importing, sending
from mailblast.services.deps import Deps

__all__ = ["run_import", "run_send", "wait_until"]

log = structlog.get_logger("mailblast.services")


async def run_import(
    deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID, *, parallelism: int = 2
) -> Campaign:
    """split -> insert chunks (in parallel) -> finalize -> schedule send; any failure ->
    ``import_failed`` with a reason a person understands. A stale import ends quietly."""
    try:
        await _split_and_insert(deps, campaign_id, import_id, parallelism)
        campaign = await importing.finalize(deps, campaign_id, import_id)
    except StaleImportError:
        await importing.discard_stale(deps, campaign_id, import_id)
        return await deps.campaigns.get(campaign_id)
    except CsvFileError as exc:
        return await importing.fail(deps, campaign_id, import_id, exc.reason)
    except Exception as exc:
        log.exception("mailblast.import.crashed")
        reason = f"the import stopped on an internal error ({type(exc).__name__})"
        return await importing.fail(deps, campaign_id, import_id, reason)
    await importing.schedule_send(deps, campaign_id, import_id)
    return campaign


async def _split_and_insert(
    deps: Deps, campaign_id: uuid.UUID, import_id: uuid.UUID, parallelism: int
) -> None:
    """Split, inserting each chunk as soon as it is written: the database COPYs on its
    own core while this process reads the rest of the file."""
    gate = asyncio.Semaphore(parallelism)

    async def insert(key: str) -> None:
        async with gate:
            await importing.insert_chunk(deps, campaign_id, import_id, key)

    try:
        async with asyncio.TaskGroup() as group:

            async def started(key: str) -> None:
                group.create_task(insert(key))
                await asyncio.sleep(0)  # let the insert send its first rows

            await importing.split(deps, campaign_id, import_id, on_chunk=started)
    except ExceptionGroup as exc:
        # like a failed Map state: the first error decides
        raise exc.exceptions[0] from exc


async def wait_until(deps: Deps, when: datetime) -> None:
    """Sleep on the clock until ``when`` (a time in the past means now)."""
    delay = (when - deps.clock.now()).total_seconds()
    if delay > 0:
        await deps.clock.sleep(delay)


async def run_send(
    deps: Deps,
    campaign_id: uuid.UUID,
    execution_id: str,
    *,
    poll_seconds: float = 60.0,
    wait: bool = True,
) -> Campaign:
    """wait -> begin -> plan pages -> enqueue each page -> poll until nothing is pending
    -> finalize. A stale execution sends nothing; a failure stops the campaign."""
    campaign = await deps.campaigns.get(campaign_id)
    if wait:
        await wait_until(deps, campaign.scheduled_at)
    try:
        campaign = await sending.begin(deps, campaign_id, execution_id)
        for page in await sending.plan_pages(deps, campaign_id):
            await sending.enqueue_page(deps, campaign_id, page)
        while await sending.count_pending(deps, campaign_id):
            await deps.clock.sleep(poll_seconds)
        return await sending.finalize(deps, campaign_id)
    except StaleExecutionError:
        log.info("mailblast.send.stale_execution", execution_id=execution_id)
        return await deps.campaigns.get(campaign_id)
    except Exception as exc:
        log.exception("mailblast.send.crashed", execution_id=execution_id)
        campaign = await deps.campaigns.get(campaign_id)
        if campaign.status is CampaignStatus.SENDING:
            return await sending.fail(
                deps, campaign_id, execution_id, f"{type(exc).__name__}: {exc}"
            )
        raise
