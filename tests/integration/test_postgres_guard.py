"""A chunk insert that arrives after the swap (a retried Map iteration whose first try
was still running) must not touch the recipients being sent."""

from __future__ import annotations

import pytest

from factories import T0, new_campaign, people
from mailblast.adapters.postgres import PostgresCampaignRepo, PostgresRecipientRepo
from mailblast.domain.errors import StaleImportError
from mailblast.domain.recipient import RecipientStatus

pytestmark = pytest.mark.integration


async def test_a_late_chunk_after_finalize_is_refused(
    campaign_repo_postgres: PostgresCampaignRepo, recipient_repo_postgres: PostgresRecipientRepo
) -> None:
    """After the swap, re-inserting a chunk raises StaleImportError and changes no row."""
    campaign = new_campaign()
    import_id = campaign.pending_import_id
    assert import_id is not None
    await campaign_repo_postgres.add(campaign)
    await recipient_repo_postgres.insert_chunk(campaign.id, import_id, 0, people(3))
    change = campaign.finish_import(import_id=import_id, total_count=3, now=T0)
    await campaign_repo_postgres.update(change.before, change.after)
    before = await recipient_repo_postgres.list_page(campaign.id, import_id, limit=10)
    with pytest.raises(StaleImportError):
        await recipient_repo_postgres.insert_chunk(campaign.id, import_id, 0, people(3))
    assert await recipient_repo_postgres.list_page(campaign.id, import_id, limit=10) == before
    counts = await recipient_repo_postgres.count_by_status(campaign.id, import_id)
    assert counts[RecipientStatus.PENDING] == 3


async def test_a_chunk_of_a_failed_import_is_refused(
    campaign_repo_postgres: PostgresCampaignRepo, recipient_repo_postgres: PostgresRecipientRepo
) -> None:
    """Once an import failed, its late chunks leave no orphan rows behind."""
    campaign = new_campaign()
    import_id = campaign.pending_import_id
    assert import_id is not None
    await campaign_repo_postgres.add(campaign)
    change = campaign.fail_import(import_id=import_id, reason="bad", now=T0)
    await campaign_repo_postgres.update(change.before, change.after)
    with pytest.raises(StaleImportError):
        await recipient_repo_postgres.insert_chunk(campaign.id, import_id, 0, people(2))
    assert await recipient_repo_postgres.list_page(campaign.id, import_id, limit=10) == []
