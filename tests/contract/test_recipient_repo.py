"""Contract of RecipientRepo: bulk import, keyset pages, claims and conditional records."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from factories import T0, people
from mailblast.domain.batching import PageRange
from mailblast.domain.recipient import OUTCOME_UNKNOWN, RecipientStatus, SendOutcome

C = uuid.UUID("00000000-0000-4000-8000-000000000001")
I1 = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
I2 = uuid.UUID("00000000-0000-4000-8000-0000000000a2")

P, S, F = RecipientStatus.PENDING, RecipientStatus.SENT, RecipientStatus.FAILED


async def ids_of(repo: Any, import_id: uuid.UUID = I1, **kw: Any) -> list[int]:
    """Every recipient id of an import (optionally of one status)."""
    return [r.id for r in await repo.list_page(C, import_id, limit=100_000, **kw)]


def sent(i: int, mid: str = "m") -> SendOutcome:
    """A sent outcome."""
    return SendOutcome(recipient_id=i, status=S, message_id=f"{mid}-{i}")


async def test_insert_chunk_stores_pending_recipients_with_fields(recipient_repo: Any) -> None:
    """Inserted rows read back pending, in insertion order, with their merge fields."""
    rows = people(3)
    assert await recipient_repo.insert_chunk(C, I1, 0, rows) == 3
    got = await recipient_repo.list_page(C, I1, limit=10)
    assert [(r.email, dict(r.attributes), r.status) for r in got] == [
        (p.email, dict(p.attributes), P) for p in rows
    ]
    assert all(r.campaign_id == C and r.import_id == I1 for r in got)


async def test_inserting_the_same_chunk_twice_keeps_one_copy(recipient_repo: Any) -> None:
    """A retried chunk insert replaces the first copy instead of duplicating it."""
    await recipient_repo.insert_chunk(C, I1, 0, people(3))
    await recipient_repo.insert_chunk(C, I1, 1, people(2, start=3))
    await recipient_repo.insert_chunk(C, I1, 0, people(3))
    counts = await recipient_repo.count_by_status(C, I1)
    assert counts[P] == 5
    assert sorted(r.email for r in await recipient_repo.list_page(C, I1, limit=10)) == sorted(
        p.email for p in people(5)
    )


async def test_counts_cover_every_status(recipient_repo: Any) -> None:
    """count_by_status names every status, zeros included, per import."""
    await recipient_repo.insert_chunk(C, I1, 0, people(4))
    await recipient_repo.insert_chunk(C, I2, 0, people(1))
    counts = await recipient_repo.count_by_status(C, I1)
    assert dict(counts) == {P: 4, S: 0, F: 0, RecipientStatus.BOUNCED: 0}


async def test_delete_import_leaves_other_imports_alone(recipient_repo: Any) -> None:
    """Dropping an old import removes only its rows."""
    await recipient_repo.insert_chunk(C, I1, 0, people(3))
    await recipient_repo.insert_chunk(C, I2, 0, people(2))
    assert await recipient_repo.delete_import(C, I1) == 3
    assert (await recipient_repo.count_by_status(C, I1))[P] == 0
    assert (await recipient_repo.count_by_status(C, I2))[P] == 2


async def test_page_starts_cover_every_pending_recipient_once(recipient_repo: Any) -> None:
    """Keyset pages from the page starts partition the pending recipients."""
    await recipient_repo.insert_chunk(C, I1, 0, people(23))
    every = await ids_of(recipient_repo)
    token = "t"
    await recipient_repo.claim(C, I1, every[:4], token=token, now=T0, lease_seconds=60)
    await recipient_repo.record(C, [sent(i) for i in every[:4]], token=token, now=T0)
    starts, last = await recipient_repo.pending_page_starts(C, I1, page_size=5)
    assert len(starts) == 4
    assert last == every[-1]
    bounds = [*starts[1:], last + 1]
    seen = []
    for first, nxt in zip(starts, bounds, strict=True):
        page = await recipient_repo.pending_ids(C, I1, PageRange(first, nxt - 1))
        assert 0 < len(page) <= 5
        seen.extend(page)
    assert seen == every[4:]


async def test_page_starts_of_an_empty_import(recipient_repo: Any) -> None:
    """No pending recipient means no page and no last id."""
    assert await recipient_repo.pending_page_starts(C, I1, page_size=5) == ([], None)


async def test_claim_holds_free_pending_recipients_once(recipient_repo: Any) -> None:
    """A second live attempt claims nothing that the first holds."""
    await recipient_repo.insert_chunk(C, I1, 0, people(3))
    ids = await ids_of(recipient_repo)
    first = await recipient_repo.claim(C, I1, ids, token="a", now=T0, lease_seconds=60)
    assert sorted(r.id for r in first.claimed) == ids
    assert {r.email for r in first.claimed} == {p.email for p in people(3)}
    second = await recipient_repo.claim(
        C, I1, ids, token="b", now=T0 + timedelta(seconds=5), lease_seconds=60
    )
    assert second.claimed == []
    assert second.abandoned == 0
    page = await recipient_repo.pending_ids(C, I1, PageRange(ids[0], ids[-1]))
    assert page == []


async def test_an_expired_claim_is_failed_as_outcome_unknown(recipient_repo: Any) -> None:
    """A claim older than its lease belongs to a dead attempt: failed, never re-sent."""
    await recipient_repo.insert_chunk(C, I1, 0, people(2))
    ids = await ids_of(recipient_repo)
    await recipient_repo.claim(C, I1, ids[:1], token="dead", now=T0, lease_seconds=60)
    later = await recipient_repo.claim(
        C, I1, ids, token="new", now=T0 + timedelta(seconds=61), lease_seconds=60
    )
    assert [r.id for r in later.claimed] == ids[1:]
    assert later.abandoned == 1
    failed = await recipient_repo.list_page(C, I1, limit=10, status=F)
    assert [(r.id, r.error) for r in failed] == [(ids[0], OUTCOME_UNKNOWN)]


async def test_record_needs_the_claim_and_a_pending_status(recipient_repo: Any) -> None:
    """Outcomes from a token that does not hold the recipient are ignored."""
    await recipient_repo.insert_chunk(C, I1, 0, people(3))
    ids = await ids_of(recipient_repo)
    await recipient_repo.claim(C, I1, ids[:2], token="a", now=T0, lease_seconds=60)
    outcomes = [
        sent(ids[0]),
        SendOutcome(recipient_id=ids[1], status=F, error="MESSAGE_REJECTED: no"),
        sent(ids[2]),  # never claimed
    ]
    assert await recipient_repo.record(C, outcomes, token="b", now=T0) == 0
    assert await recipient_repo.record(C, outcomes, token="a", now=T0) == 2
    assert await recipient_repo.record(C, outcomes, token="a", now=T0) == 0
    rows = {r.id: r for r in await recipient_repo.list_page(C, I1, limit=10)}
    assert (rows[ids[0]].status, rows[ids[0]].message_id) == (S, f"m-{ids[0]}")
    assert (rows[ids[1]].status, rows[ids[1]].error) == (F, "MESSAGE_REJECTED: no")
    assert rows[ids[2]].status is P
    assert dict(await recipient_repo.count_by_status(C, I1)) == {
        P: 1,
        S: 1,
        F: 1,
        RecipientStatus.BOUNCED: 0,
    }


async def test_release_frees_recipients_for_a_later_attempt(recipient_repo: Any) -> None:
    """Released recipients (certainly not sent) are claimable again, by anyone."""
    await recipient_repo.insert_chunk(C, I1, 0, people(2))
    ids = await ids_of(recipient_repo)
    await recipient_repo.claim(C, I1, ids, token="a", now=T0, lease_seconds=60)
    assert await recipient_repo.release(C, ids, token="b") == 0
    assert await recipient_repo.release(C, ids, token="a") == 2
    again = await recipient_repo.claim(C, I1, ids, token="b", now=T0, lease_seconds=60)
    assert sorted(r.id for r in again.claimed) == ids
    assert again.abandoned == 0


async def test_claim_ignores_other_imports_and_campaigns(recipient_repo: Any) -> None:
    """A message can only claim recipients of its own campaign and import."""
    await recipient_repo.insert_chunk(C, I1, 0, people(2))
    ids = await ids_of(recipient_repo)
    other_import = await recipient_repo.claim(C, I2, ids, token="a", now=T0, lease_seconds=60)
    other_campaign = await recipient_repo.claim(
        uuid.uuid4(), I1, ids, token="a", now=T0, lease_seconds=60
    )
    assert other_import.claimed == other_campaign.claimed == []


async def test_fail_pending_of_a_list_or_of_the_whole_import(recipient_repo: Any) -> None:
    """Dead letters fail their pending recipients; stopping fails all that are left."""
    await recipient_repo.insert_chunk(C, I1, 0, people(4))
    ids = await ids_of(recipient_repo)
    await recipient_repo.claim(C, I1, ids[:1], token="a", now=T0, lease_seconds=60)
    await recipient_repo.record(C, [sent(ids[0])], token="a", now=T0)
    n = await recipient_repo.fail_pending(
        C, I1, reason="dead_letter", now=T0, recipient_ids=ids[:2]
    )
    assert n == 1
    assert await recipient_repo.fail_pending(C, I1, reason="stopped", now=T0) == 2
    rows = await recipient_repo.list_page(C, I1, limit=10)
    assert [(r.status, r.error) for r in rows] == [
        (S, None),
        (F, "dead_letter"),
        (F, "stopped"),
        (F, "stopped"),
    ]


async def test_fail_abandoned_settles_only_old_claims(recipient_repo: Any) -> None:
    """Claims older than the cut-off fail as outcome_unknown; fresh ones stay."""
    await recipient_repo.insert_chunk(C, I1, 0, people(3))
    ids = await ids_of(recipient_repo)
    await recipient_repo.claim(C, I1, ids[:1], token="old", now=T0, lease_seconds=60)
    await recipient_repo.claim(
        C, I1, ids[1:2], token="new", now=T0 + timedelta(minutes=10), lease_seconds=60
    )
    n = await recipient_repo.fail_abandoned(
        C, I1, claimed_before=T0 + timedelta(minutes=5), now=T0 + timedelta(minutes=11)
    )
    assert n == 1
    rows = await recipient_repo.list_page(C, I1, limit=10)
    assert [r.status for r in rows] == [F, P, P]
    assert rows[0].error == OUTCOME_UNKNOWN


async def test_list_page_walks_by_id_and_filters_status(recipient_repo: Any) -> None:
    """Keyset pages by id, optionally of one status."""
    await recipient_repo.insert_chunk(C, I1, 0, people(7))
    ids = await ids_of(recipient_repo)
    first = await recipient_repo.list_page(C, I1, limit=3)
    second = await recipient_repo.list_page(C, I1, limit=3, after_id=first[-1].id)
    assert [r.id for r in first + second] == ids[:6]
    await recipient_repo.claim(C, I1, ids[:2], token="a", now=T0, lease_seconds=60)
    await recipient_repo.record(C, [sent(ids[1])], token="a", now=T0)
    assert [r.id for r in await recipient_repo.list_page(C, I1, limit=9, status=S)] == [ids[1]]


@pytest.mark.parametrize("n", [1, 50, 120])
async def test_bulk_sizes_round_trip(recipient_repo: Any, n: int) -> None:
    """Claim and record work for any batch size the sender uses."""
    await recipient_repo.insert_chunk(C, I1, 0, people(n))
    ids = await ids_of(recipient_repo)
    claim = await recipient_repo.claim(C, I1, ids, token="a", now=T0, lease_seconds=60)
    assert len(claim.claimed) == n
    assert await recipient_repo.record(C, [sent(i) for i in ids], token="a", now=T0) == n
    assert (await recipient_repo.count_by_status(C, I1))[S] == n


async def test_prepare_send_changes_no_recipient(recipient_repo: Any) -> None:
    """Preparing an import for sending (twice) leaves its rows and counts as they were."""
    await recipient_repo.insert_chunk(C, I1, 0, people(3))
    before = await recipient_repo.list_page(C, I1, limit=10)
    await recipient_repo.prepare_send(C, I1)
    await recipient_repo.prepare_send(C, I1)
    assert await recipient_repo.list_page(C, I1, limit=10) == before
    assert (await recipient_repo.count_by_status(C, I1))[P] == 3


async def test_failing_a_claimed_recipient_says_outcome_unknown(recipient_repo: Any) -> None:
    """A recipient an attempt still holds may be in SES's hands: it fails as outcome_unknown."""
    await recipient_repo.insert_chunk(C, I1, 0, people(3))
    ids = await ids_of(recipient_repo)
    await recipient_repo.claim(C, I1, ids[:1], token="live", now=T0, lease_seconds=60)
    await recipient_repo.fail_pending(C, I1, reason="dead_letter", now=T0, recipient_ids=ids[:2])
    await recipient_repo.fail_pending(C, I1, reason="stopped", now=T0)
    rows = await recipient_repo.list_page(C, I1, limit=10)
    assert [r.error for r in rows] == [OUTCOME_UNKNOWN, "dead_letter", "stopped"]


async def test_a_repeated_id_is_handled_once(recipient_repo: Any) -> None:
    """Naming a recipient twice claims, fails and counts it once."""
    await recipient_repo.insert_chunk(C, I1, 0, people(2))
    ids = await ids_of(recipient_repo)
    claim = await recipient_repo.claim(C, I1, [ids[0], ids[0]], token="a", now=T0, lease_seconds=60)
    assert [r.id for r in claim.claimed] == [ids[0]]
    assert await recipient_repo.release(C, [ids[0], ids[0]], token="a") == 1
    n = await recipient_repo.fail_pending(C, I1, reason="x", now=T0, recipient_ids=[ids[1], ids[1]])
    assert n == 1
    assert dict(await recipient_repo.count_by_status(C, I1)) == {
        P: 1,
        S: 0,
        F: 1,
        RecipientStatus.BOUNCED: 0,
    }


async def test_an_encoded_chunk_stores_exactly_what_insert_chunk_stores(
    recipient_repo: Any,
) -> None:
    """The split step's chunk format round-trips every awkward value the CSV may hold."""
    from mailblast.domain.chunks import encode_chunk
    from mailblast.domain.recipient import NewRecipient

    rows = [
        NewRecipient(
            "a@example.com", {"名前": '山田 "太郎"', "note": "line\nbreak, \\x", "k{}": "{0}"}
        ),
        NewRecipient("b@example.jp", {}),
        NewRecipient("c@xn--r8jz45g.jp", {"emoji": "é😀\t", "empty": ""}),
    ]
    n = await recipient_repo.insert_encoded_chunk(C, I1, 0, encode_chunk(rows))
    assert n == 3
    got = await recipient_repo.list_page(C, I1, limit=10)
    assert [(r.email, dict(r.attributes)) for r in got] == [(e, dict(a)) for e, a in rows]
    # the same chunk again replaces it, like insert_chunk
    await recipient_repo.insert_encoded_chunk(C, I1, 0, encode_chunk(rows))
    assert (await recipient_repo.count_by_status(C, I1))[P] == 3
    assert await recipient_repo.insert_encoded_chunk(C, I1, 1, b"") == 0
