"""Use cases staff trigger: register a campaign, edit it (A: metadata, B: new CSV), read it."""

from __future__ import annotations

import uuid
from datetime import datetime

import attrs
import structlog

from mailblast.domain.campaign import Campaign, MessageContent
from mailblast.domain.errors import BlobNotFoundError, InvalidInputError
from mailblast.ports import PresignedUpload
from mailblast.services._commands import carry_out, save
from mailblast.services.deps import Deps

__all__ = ["CampaignEdit", "NewCampaign", "edit", "get", "presign_upload", "register"]

log = structlog.get_logger("mailblast.services")


@attrs.frozen(kw_only=True)
class NewCampaign:
    """What staff fill in to register a campaign."""

    name: str
    from_address: str
    subject: str
    text: str
    html: str | None = None
    scheduled_at: datetime
    s3_key: str


@attrs.frozen(kw_only=True)
class CampaignEdit:
    """An edit: with ``s3_key`` it replaces the CSV (B), without it edits metadata (A)."""

    name: str | None = None
    from_address: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    scheduled_at: datetime | None = None
    s3_key: str | None = None

    def content(self, current: MessageContent) -> MessageContent | None:
        """The new message content, or None when the edit leaves it alone."""
        if self.subject is None and self.text is None and self.html is None:
            return None
        return MessageContent(
            subject=current.subject if self.subject is None else self.subject,
            text=current.text if self.text is None else self.text,
            html=current.html if self.html is None else (self.html or None),
        )


async def presign_upload(deps: Deps) -> PresignedUpload:
    """A key of our choosing and a URL the browser PUTs the CSV to."""
    return await deps.blobs.presign_upload(content_type="text/csv")


async def _check_upload(deps: Deps, s3_key: str) -> None:
    if not s3_key.startswith("uploads/"):
        raise InvalidInputError({"s3_key": "must be a key returned by GET /presigned-url"})
    try:
        size = await deps.blobs.size(s3_key)
    except BlobNotFoundError:
        raise InvalidInputError({"s3_key": "no file was uploaded under this key"}) from None
    limit = deps.settings.intake.max_bytes
    if size > limit:
        raise InvalidInputError(
            {"s3_key": f"the file is {size:,} bytes; the limit is {limit:,} bytes"}
        )


async def register(deps: Deps, request: NewCampaign) -> Campaign:
    """Create the campaign in ``importing`` and start its import; returns at once."""
    await _check_upload(deps, request.s3_key)
    change = Campaign.register(
        campaign_id=uuid.uuid4(),
        import_id=uuid.uuid4(),
        name=request.name,
        from_address=request.from_address,
        content=MessageContent(subject=request.subject, text=request.text, html=request.html),
        scheduled_at=request.scheduled_at,
        s3_key=request.s3_key,
        now=deps.clock.now(),
    )
    campaign = change.after
    await deps.campaigns.add(campaign)
    structlog.contextvars.bind_contextvars(campaign_id=str(campaign.id))
    log.info("mailblast.campaign.registered", import_id=str(campaign.pending_import_id))
    await carry_out(deps, change.commands)
    return campaign


async def edit(deps: Deps, campaign_id: uuid.UUID, request: CampaignEdit) -> Campaign:
    """Edit A (metadata; a new ``scheduled_at`` restarts the send wait) or edit B (new CSV:
    stop the send wait, import again). Refused with `InvalidTransitionError` otherwise."""
    campaign = await deps.campaigns.get(campaign_id)
    now = deps.clock.now()
    content = request.content(campaign.content)
    if request.s3_key is not None:
        await _check_upload(deps, request.s3_key)
        change = campaign.replace_csv(
            s3_key=request.s3_key,
            import_id=uuid.uuid4(),
            now=now,
            name=request.name,
            from_address=request.from_address,
            content=content,
            scheduled_at=request.scheduled_at,
        )
    else:
        change = campaign.edit_metadata(
            now=now,
            name=request.name,
            from_address=request.from_address,
            content=content,
            scheduled_at=request.scheduled_at,
        )
    structlog.contextvars.bind_contextvars(campaign_id=str(campaign_id))
    await save(deps, change)
    log.info(
        "mailblast.campaign.edited",
        kind="B" if request.s3_key is not None else "A",
        status=change.after.status.value,
    )
    return change.after


async def get(deps: Deps, campaign_id: uuid.UUID) -> Campaign:
    """The campaign, or `CampaignNotFoundError`."""
    return await deps.campaigns.get(campaign_id)
