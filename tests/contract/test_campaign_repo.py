"""Contract of CampaignRepo: every implementation stores campaigns and compares-and-sets."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import attrs
import pytest

from factories import T0, new_campaign
from mailblast.domain.campaign import CampaignStatus, MessageContent
from mailblast.domain.errors import CampaignNotFoundError, ConcurrentUpdateError


async def test_a_stored_campaign_reads_back_equal(campaign_repo: Any) -> None:
    """What is added is what is read, field for field."""
    campaign = new_campaign()
    campaign = attrs.evolve(
        campaign,
        content=MessageContent(subject="件名 {{name}}", text="本文", html="<p>{{name}}</p>"),
    )
    await campaign_repo.add(campaign)
    assert await campaign_repo.get(campaign.id) == campaign


async def test_unknown_id_is_not_found(campaign_repo: Any) -> None:
    """Reading an id nobody stored raises CampaignNotFoundError."""
    with pytest.raises(CampaignNotFoundError):
        await campaign_repo.get(uuid.uuid4())


async def test_update_replaces_when_version_and_status_match(campaign_repo: Any) -> None:
    """A compare-and-set from the stored state wins and is visible."""
    campaign = new_campaign()
    await campaign_repo.add(campaign)
    change = campaign.fail_import(
        import_id=campaign.pending_import_id, reason="bad file", now=T0 + timedelta(minutes=1)
    )
    await campaign_repo.update(change.before, change.after)
    stored = await campaign_repo.get(campaign.id)
    assert stored.status is CampaignStatus.IMPORT_FAILED
    assert stored.last_error == "bad file"
    assert stored.version == campaign.version + 1


async def test_update_from_a_stale_copy_changes_nothing(campaign_repo: Any) -> None:
    """Of two writers starting from the same version, the second loses and the first stays."""
    campaign = new_campaign()
    await campaign_repo.add(campaign)
    first = campaign.fail_import(import_id=campaign.pending_import_id, reason="one", now=T0)
    second = campaign.finish_import(import_id=campaign.pending_import_id, total_count=3, now=T0)
    await campaign_repo.update(first.before, first.after)
    with pytest.raises(ConcurrentUpdateError):
        await campaign_repo.update(second.before, second.after)
    assert (await campaign_repo.get(campaign.id)).status is CampaignStatus.IMPORT_FAILED


async def test_update_of_a_missing_campaign_is_not_found(campaign_repo: Any) -> None:
    """Updating a campaign that was never stored is an error, not an insert."""
    campaign = new_campaign()
    change = campaign.fail_import(import_id=campaign.pending_import_id, reason="x", now=T0)
    with pytest.raises((CampaignNotFoundError, ConcurrentUpdateError)):
        await campaign_repo.update(change.before, change.after)


async def test_list_page_is_newest_first_with_a_keyset_cursor(campaign_repo: Any) -> None:
    """Pages walk every campaign once, newest first."""
    made = [new_campaign(now=T0 + timedelta(minutes=i)) for i in range(5)]
    for campaign in made:
        await campaign_repo.add(campaign)
    first = await campaign_repo.list_page(limit=2)
    last = first[-1]
    rest = await campaign_repo.list_page(limit=10, before=(last.created_at, last.id))
    assert [c.id for c in first + rest] == [c.id for c in reversed(made)]


async def test_with_status_finds_campaigns_to_resume(campaign_repo: Any) -> None:
    """Campaigns are found by status, so a restarted runtime can resume them."""
    importing = new_campaign()
    failed_before = new_campaign()
    for campaign in (importing, failed_before):
        await campaign_repo.add(campaign)
    change = failed_before.fail_import(
        import_id=failed_before.pending_import_id, reason="x", now=T0
    )
    await campaign_repo.update(change.before, change.after)
    found = await campaign_repo.with_status([CampaignStatus.IMPORTING, CampaignStatus.SENDING])
    assert [c.id for c in found] == [importing.id]
