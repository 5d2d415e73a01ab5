"""The send workflow's steps, the sender of one batch, and the dead-letter handler.

No recipient is mailed twice: a batch first claims its recipients (conditional on them
being pending and free), then calls the mailer, then records each result conditional on
its own claim. A claim that outlives its lease belongs to an attempt that died, perhaps
after SES accepted the message, so that recipient is marked failed with reason
``outcome_unknown`` and never sent again.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import attrs
import structlog

from mailblast.domain.batching import (
    BatchMessage,
    PageRange,
    batches,
    pages_from_starts,
    retry_delay_seconds,
)
from mailblast.domain.campaign import Campaign, CampaignStatus
from mailblast.domain.errors import (
    ConcurrentUpdateError,
    NotSentError,
    PermanentError,
    StaleExecutionError,
)
from mailblast.domain.messages import BulkEmail, Destination
from mailblast.domain.recipient import OUTCOME_UNKNOWN, Recipient, RecipientStatus, Tally
from mailblast.domain.ses import failed_all, settle
from mailblast.services.deps import Deps

__all__ = [
    "BatchResult",
    "begin",
    "count_pending",
    "enqueue_page",
    "fail",
    "finalize",
    "handle_dead_letter",
    "plan_pages",
    "send_batch",
    "stop_campaign",
]

log = structlog.get_logger("mailblast.services")


def _bind(campaign_id: uuid.UUID, **more: str) -> None:
    structlog.contextvars.bind_contextvars(campaign_id=str(campaign_id), **more)


async def begin(deps: Deps, campaign_id: uuid.UUID, execution_id: str) -> Campaign:
    """``scheduled_at`` reached: ``scheduled`` -> ``sending``, only for the execution the
    campaign points at (`StaleExecutionError` otherwise). Idempotent when retried."""
    _bind(campaign_id, execution_id=execution_id)
    campaign = await deps.campaigns.get(campaign_id)
    if campaign.send_execution_id != execution_id:
        raise StaleExecutionError(
            campaign_id=campaign_id, execution_id=execution_id, expected=campaign.send_execution_id
        )
    if campaign.status is CampaignStatus.SENDING or campaign.status.is_final:
        return campaign  # a retried or late step: nothing more to start
    change = campaign.start_sending(execution_id=execution_id, now=deps.clock.now())
    await deps.campaigns.update(change.before, change.after)
    if change.after.current_import_id is not None:
        await deps.recipients.prepare_send(campaign_id, change.after.current_import_id)
    log.info("mailblast.send.began", total_count=campaign.total_count)
    return change.after


async def _sending(deps: Deps, campaign_id: uuid.UUID) -> Campaign | None:
    campaign = await deps.campaigns.get(campaign_id)
    if campaign.status is not CampaignStatus.SENDING or campaign.current_import_id is None:
        return None
    return campaign


async def plan_pages(deps: Deps, campaign_id: uuid.UUID) -> list[PageRange]:
    """Keyset ranges of pending recipients, `ServiceSettings.page_size` each."""
    campaign = await _sending(deps, campaign_id)
    if campaign is None or campaign.current_import_id is None:
        return []
    starts, last = await deps.recipients.pending_page_starts(
        campaign_id, campaign.current_import_id, page_size=deps.settings.page_size
    )
    if last is None:
        return []
    return pages_from_starts(starts, last)


async def enqueue_page(deps: Deps, campaign_id: uuid.UUID, page: PageRange) -> int:
    """Queue the page's free pending recipients in messages of at most 50; returns the
    number of recipients queued. A retried page can queue a recipient twice: the claim
    makes the second message a no-op."""
    campaign = await _sending(deps, campaign_id)
    if campaign is None or campaign.current_import_id is None:
        return 0
    ids = await deps.recipients.pending_ids(campaign_id, campaign.current_import_id, page)
    messages = list(batches(campaign_id, campaign.current_import_id, ids))
    for start in range(0, len(messages), 100):
        await deps.queue.send(messages[start : start + 100])
    return len(ids)


async def count_pending(deps: Deps, campaign_id: uuid.UUID) -> int:
    """Recipients still pending (0 when the campaign is no longer sending). Claims that
    outlived twice their lease are settled as ``outcome_unknown`` on the way."""
    campaign = await _sending(deps, campaign_id)
    if campaign is None or campaign.current_import_id is None:
        return 0
    now = deps.clock.now()
    abandoned = await deps.recipients.fail_abandoned(
        campaign_id,
        campaign.current_import_id,
        claimed_before=now - timedelta(seconds=2 * deps.settings.claim_lease_seconds),
        now=now,
    )
    if abandoned:
        log.warning("mailblast.send.abandoned_claims", recipients=abandoned)
    counts = await deps.recipients.count_by_status(campaign_id, campaign.current_import_id)
    return counts[RecipientStatus.PENDING]


async def finalize(deps: Deps, campaign_id: uuid.UUID) -> Campaign:
    """Every recipient is terminal: ``completed`` with counts equal to the table's."""
    _bind(campaign_id)
    campaign = await deps.campaigns.get(campaign_id)
    if campaign.status is not CampaignStatus.SENDING or campaign.current_import_id is None:
        return campaign  # completed or stopped already
    counts = await deps.recipients.count_by_status(campaign_id, campaign.current_import_id)
    change = campaign.complete_sending(tally=Tally.of(counts), now=deps.clock.now())
    await deps.campaigns.update(change.before, change.after)
    log.info(
        "mailblast.send.completed",
        sent=change.after.sent_count,
        failed=change.after.failed_count,
    )
    return change.after


async def stop_campaign(deps: Deps, campaign_id: uuid.UUID, reason: str) -> Campaign:
    """``sending`` -> ``send_failed``: the still-pending recipients fail with the reason,
    so every recipient is terminal and the counts add up. No-op if not sending."""
    _bind(campaign_id)
    for _ in range(5):
        campaign = await deps.campaigns.get(campaign_id)
        if campaign.status is not CampaignStatus.SENDING or campaign.current_import_id is None:
            return campaign
        now = deps.clock.now()
        await deps.recipients.fail_pending(
            campaign_id, campaign.current_import_id, reason=f"campaign stopped: {reason}", now=now
        )
        counts = await deps.recipients.count_by_status(campaign_id, campaign.current_import_id)
        change = campaign.fail_sending(reason=reason, tally=Tally.of(counts), now=now)
        try:
            await deps.campaigns.update(change.before, change.after)
        except ConcurrentUpdateError:
            continue
        log.error("mailblast.send.stopped", reason=reason)
        return change.after
    return await deps.campaigns.get(campaign_id)


async def fail(deps: Deps, campaign_id: uuid.UUID, execution_id: str, reason: str) -> Campaign:
    """The send workflow itself failed. A stale execution changes nothing."""
    campaign = await deps.campaigns.get(campaign_id)
    if campaign.send_execution_id != execution_id:
        log.info("mailblast.send.stale_failure_ignored", execution_id=execution_id)
        return campaign
    if campaign.status is CampaignStatus.SCHEDULED:
        # failed before it could begin: the campaign stays scheduled (edit A reschedules
        # it), but staff see why nothing went out
        noted = campaign.note_error(reason=reason, now=deps.clock.now())
        await deps.campaigns.update(campaign, noted)
        log.error("mailblast.send.failed_before_sending", reason=reason)
        return noted
    return await stop_campaign(deps, campaign_id, reason)


@attrs.frozen(kw_only=True)
class BatchResult:
    """What one batch did, recipient by recipient."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    unknown: int = 0
    stopped: bool = False


def _destinations(campaign: Campaign, recipients: list[Recipient]) -> list[Destination]:
    return [
        Destination(
            recipient_id=r.id,
            email=r.email,
            replacements=dict(r.attributes),
            tags={"campaign_id": str(campaign.id), "recipient_id": str(r.id)},
        )
        for r in recipients
    ]


async def send_batch(deps: Deps, message: BatchMessage) -> BatchResult:
    """Send one queue message's recipients once: claim, call the mailer, record.

    Rate refusals put the unsent recipients back on the queue with a delay (a new message,
    so throttling never counts toward the dead-letter limit) and fail nobody; account or
    configuration problems stop the campaign; an unknown outcome fails the recipient.
    """
    _bind(message.campaign_id, import_id=str(message.import_id))
    campaign = await deps.campaigns.get(message.campaign_id)
    if (
        campaign.status is not CampaignStatus.SENDING
        or campaign.current_import_id != message.import_id
    ):
        log.info("mailblast.batch.skipped", status=campaign.status.value)
        return BatchResult(skipped=len(message.recipient_ids))
    # pace before claiming: a claim held while waiting for the rate limiter would turn
    # into outcome_unknown, never sent, if the process died during the wait
    await deps.rate.acquire(len(message.recipient_ids))
    token = uuid.uuid4().hex
    claim = await deps.recipients.claim(
        campaign.id,
        message.import_id,
        message.recipient_ids,
        token=token,
        now=deps.clock.now(),
        lease_seconds=deps.settings.claim_lease_seconds,
    )
    recipients = claim.claimed
    if not recipients:
        return BatchResult(skipped=len(message.recipient_ids), unknown=claim.abandoned)
    ids = [r.id for r in recipients]
    email = BulkEmail(
        from_address=campaign.from_address,
        content=campaign.content,
        destinations=_destinations(campaign, recipients),
    )
    now = deps.clock.now
    try:
        reports = await deps.mailer.send_bulk(email)
    except NotSentError as exc:
        deps.rate.throttled()
        await deps.recipients.release(campaign.id, ids, token=token)
        await _requeue(deps, message, ids)
        log.warning("mailblast.batch.throttled", recipients=len(ids), error=str(exc))
        return BatchResult(retried=len(ids), unknown=claim.abandoned)
    except PermanentError as exc:
        # the whole call was refused (a sender SES will not take, a broken template...):
        # every other batch would be refused the same way, so stop the campaign
        await deps.recipients.release(campaign.id, ids, token=token)
        log.error("mailblast.batch.refused", recipients=len(ids), error=str(exc))
        await stop_campaign(deps, campaign.id, f"SES refused the send: {exc}"[:500])
        return BatchResult(failed=len(ids), unknown=claim.abandoned, stopped=True)
    except Exception:
        # the request may have reached SES: never resend, say so
        outcomes = failed_all(ids, OUTCOME_UNKNOWN)
        await deps.recipients.record(campaign.id, outcomes, token=token, now=now())
        log.exception("mailblast.batch.outcome_unknown", recipients=len(ids))
        return BatchResult(unknown=len(ids) + claim.abandoned)

    settled = settle(ids, reports)
    await deps.recipients.record(campaign.id, settled.outcomes, token=token, now=now())
    if settled.retry:
        await deps.recipients.release(campaign.id, settled.retry, token=token)
    sent = sum(o.status is RecipientStatus.SENT for o in settled.outcomes)
    result = BatchResult(
        sent=sent,
        failed=len(settled.outcomes) - sent,
        retried=0 if settled.stop_reason else len(settled.retry),
        unknown=claim.abandoned + sum(o.error == OUTCOME_UNKNOWN for o in settled.outcomes),
        stopped=settled.stop_reason is not None,
    )
    if settled.stop_reason is not None:
        await stop_campaign(deps, campaign.id, settled.stop_reason)
    elif settled.retry:
        deps.rate.throttled()
        await _requeue(deps, message, settled.retry)
    log.info("mailblast.batch.sent", sent=result.sent, failed=result.failed, retried=result.retried)
    return result


async def _requeue(deps: Deps, message: BatchMessage, ids: list[int]) -> None:
    retry = message.retry_with(ids)
    await deps.queue.send([retry], delay_seconds=retry_delay_seconds(message.retries))


async def handle_dead_letter(
    deps: Deps, message: BatchMessage, *, reason: str = "dead_letter"
) -> int:
    """A message failed three times: its still-pending recipients fail with the reason."""
    _bind(message.campaign_id, import_id=str(message.import_id))
    failed = await deps.recipients.fail_pending(
        message.campaign_id,
        message.import_id,
        reason=reason,
        now=deps.clock.now(),
        recipient_ids=message.recipient_ids,
    )
    log.warning("mailblast.batch.dead_lettered", recipients=failed)
    return failed
