"""The import swap and the start of sending under concurrency, through the real use cases
on PostgreSQL (the other ports are the in-memory fakes).

Races are made deterministic where it matters: `GatedCampaigns` holds every
compare-and-set until both racers have read the campaign, so both write from the same
version and PostgreSQL alone decides the winner.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

from factories import PORTS, fake_deps
from mailblast.adapters.memory import (
    InMemoryBatchQueue,
    InMemoryBlobStore,
    InMemoryClock,
    InMemoryMailer,
    InMemoryWorkflowEngine,
)
from mailblast.adapters.postgres import PostgresCampaignRepo, PostgresPool, PostgresRecipientRepo
from mailblast.domain.campaign import Campaign, CampaignStatus
from mailblast.domain.errors import ConcurrentUpdateError
from mailblast.domain.recipient import RecipientStatus
from mailblast.ports import ExecutionStatus
from mailblast.services import Deps, importing, sending
from mailblast.services.campaigns import CampaignEdit, NewCampaign, edit, register
from mailblast.services.flows import run_import

pytestmark = pytest.mark.integration

S = CampaignStatus
P = RecipientStatus.PENDING


#: Which racer a task is (set around its creation; tasks copy the context).
RACER: contextvars.ContextVar[int | None] = contextvars.ContextVar("racer", default=None)


class GatedCampaigns:
    """The PostgreSQL campaign repo; while `holding`, a racer's `update` waits for its gate."""

    def __init__(self, inner: PostgresCampaignRepo) -> None:
        self.inner = inner
        self.holding = False
        self.held: dict[int, asyncio.Event] = {}
        self.arrived = asyncio.Semaphore(0)

    async def arrivals(self, updates: int) -> None:
        """Wait until ``updates`` more updates are being held."""
        for _ in range(updates):
            await self.arrived.acquire()

    async def add(self, campaign: Campaign) -> None:
        """Store a new campaign."""
        await self.inner.add(campaign)

    async def get(self, campaign_id: uuid.UUID) -> Campaign:
        """The stored campaign."""
        return await self.inner.get(campaign_id)

    async def update(self, before: Campaign, after: Campaign) -> None:
        """The real compare-and-set, once the gate opens."""
        racer = RACER.get()
        if self.holding and racer is not None:
            gate = self.held[racer] = asyncio.Event()
            self.arrived.release()
            await gate.wait()
        await self.inner.update(before, after)

    async def list_page(
        self, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[Campaign]:
        """Newest first."""
        return await self.inner.list_page(limit=limit, before=before)

    async def with_status(self, statuses: Sequence[CampaignStatus]) -> list[Campaign]:
        """Campaigns in one of ``statuses``."""
        return await self.inner.with_status(statuses)


@attrs.define
class World:
    """The real use cases on PostgreSQL repos and in-memory everything else."""

    deps: Deps
    campaigns: GatedCampaigns
    recipients: PostgresRecipientRepo
    blobs: InMemoryBlobStore
    mailer: InMemoryMailer
    queue: InMemoryBatchQueue
    workflows: InMemoryWorkflowEngine
    clock: InMemoryClock

    async def upload(self, emails: Sequence[str]) -> str:
        """Put a CSV of these addresses where a presigned upload would."""
        upload = await self.blobs.presign_upload()
        body = "email,name\n" + "".join(f"{e},Name {n}\n" for n, e in enumerate(emails))
        await self.blobs.put(upload.s3_key, body.encode())
        return upload.s3_key

    async def imported(self, emails: Sequence[str]) -> Campaign:
        """Register a campaign and run its import to ``scheduled``."""
        campaign = await register(
            self.deps,
            NewCampaign(
                name="Winter sale",
                from_address="news@example.com",
                subject="Hello {{name}}",
                text="Dear {{name}}",
                scheduled_at=self.clock.now() + timedelta(hours=1),
                s3_key=await self.upload(emails),
            ),
        )
        assert campaign.pending_import_id is not None
        done = await run_import(self.deps, campaign.id, campaign.pending_import_id)
        assert done.status is S.SCHEDULED
        return done

    async def replace_csv(self, campaign_id: uuid.UUID, emails: Sequence[str]) -> Campaign:
        """Edit B: a new CSV for the campaign."""
        key = await self.upload(emails)
        return await edit(self.deps, campaign_id, CampaignEdit(s3_key=key))

    async def emails(self, campaign_id: uuid.UUID, import_id: uuid.UUID | None) -> list[str]:
        """Addresses of one import, by id."""
        assert import_id is not None
        rows = await self.recipients.list_page(campaign_id, import_id, limit=10_000)
        return [r.email for r in rows]

    async def drain(self) -> None:
        """Deliver every queued batch, like the sender Lambda."""
        while got := await self.queue.receive(max_messages=10):
            for received in got:
                await sending.send_batch(self.deps, received.message)
                await self.queue.ack(received)


@pytest.fixture
def world(pg_pool: PostgresPool) -> World:
    """A mailblast whose repositories are PostgreSQL, on clean tables."""
    deps = fake_deps(
        campaigns=GatedCampaigns(PostgresCampaignRepo(pg_pool)),
        recipients=PostgresRecipientRepo(pg_pool),
        chunk_rows=7,
        page_size=10,
    )
    return World(deps, *(getattr(deps, port) for port in PORTS))


def addresses(n: int, tag: str) -> list[str]:
    """``n`` distinct addresses, tagged so two lists never share one."""
    return [f"{tag}{i}@example.com" for i in range(n)]


def start(racer: int, call: Awaitable[Any]) -> asyncio.Future[Any]:
    """Run ``call`` as a task known to `GatedCampaigns` as ``racer``."""
    token = RACER.set(racer)
    try:
        return asyncio.ensure_future(call)
    finally:
        RACER.reset(token)


async def race(world: World, *calls: Awaitable[Any], first: int | None = None) -> list[Any]:
    """Run ``calls`` so that each reaches its compare-and-set before any writes, then let
    them all write at once (or ``first`` alone, then the others); returns each call's
    result or the exception it raised."""
    gated = world.campaigns
    gated.holding = True
    tasks = [start(n, call) for n, call in enumerate(calls)]
    await gated.arrivals(len(tasks))
    gated.holding = False
    if first is not None:
        gated.held[first].set()
        await asyncio.wait([tasks[first]])
    for gate in gated.held.values():
        gate.set()
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def winners(results: list[Any]) -> list[int]:
    """Positions of the racers that did not lose a compare-and-set."""
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, ConcurrentUpdateError):
            raise result
    return [n for n, r in enumerate(results) if not isinstance(r, ConcurrentUpdateError)]


async def replaced(world: World, old: list[str], new: list[str]) -> tuple[Campaign, uuid.UUID]:
    """A campaign imported with ``old``, then edited to ``new`` (import split and inserted,
    not finalized); returns it and the new import id."""
    campaign = await world.imported(old)
    edited = await world.replace_csv(campaign.id, new)
    new_import = edited.pending_import_id
    assert new_import is not None
    result = await importing.split(world.deps, campaign.id, new_import)
    for key in result.chunk_keys:
        await importing.insert_chunk(world.deps, campaign.id, new_import, key)
    return edited, new_import


async def test_two_finalizations_of_one_import_have_one_winner(world: World) -> None:
    """A retried finalize racing the original: one swap, one send workflow, the old
    import's rows gone and the new one's intact."""
    old, new = addresses(12, "old"), addresses(9, "new")
    campaign, new_import = await replaced(world, old, new)
    old_import = (await world.campaigns.get(campaign.id)).current_import_id
    results = await race(
        world,
        importing.finalize(world.deps, campaign.id, new_import),
        importing.finalize(world.deps, campaign.id, new_import),
    )
    assert len(winners(results)) == 1
    stored = await world.campaigns.get(campaign.id)
    assert (stored.status, stored.current_import_id, stored.total_count) == (
        S.SCHEDULED,
        new_import,
        len(new),
    )
    assert await world.emails(campaign.id, new_import) == new
    assert await world.emails(campaign.id, old_import) == []
    assert [e.id for e in world.workflows.running("send")] == [stored.send_execution_id]


@pytest.mark.parametrize("first", [None, 0, 1], ids=["together", "finalize-first", "fail-first"])
async def test_finalize_racing_a_failure_of_the_same_import(
    world: World, first: int | None
) -> None:
    """Finalize and fail of one import at once: exactly one wins, and a failure never
    costs the current import its recipients."""
    old, new = addresses(12, "old"), addresses(9, "new")
    campaign, new_import = await replaced(world, old, new)
    old_import = (await world.campaigns.get(campaign.id)).current_import_id
    results = await race(
        world,
        importing.finalize(world.deps, campaign.id, new_import),
        importing.fail(world.deps, campaign.id, new_import, "a chunk failed"),
        first=first,
    )
    (winner,) = winners(results)
    assert first is None or winner == first
    stored = await world.campaigns.get(campaign.id)
    if winner == 0:
        assert (stored.status, stored.current_import_id) == (S.SCHEDULED, new_import)
        assert await world.emails(campaign.id, new_import) == new
        assert await world.emails(campaign.id, old_import) == []
    else:
        assert (stored.status, stored.current_import_id) == (S.IMPORT_FAILED, old_import)
        assert await world.emails(campaign.id, old_import) == old
        assert await world.emails(campaign.id, new_import) == []


async def test_a_stale_import_running_beside_the_current_one_changes_nothing(
    world: World,
) -> None:
    """A late re-run of a replaced import, concurrent with the current import: the
    current one is swapped in and the stale one leaves no row behind."""
    first = await world.imported(addresses(10, "first"))
    stale_import = first.current_import_id
    assert stale_import is not None
    edited = await world.replace_csv(first.id, addresses(6, "second"))
    assert edited.pending_import_id is not None
    await asyncio.gather(
        run_import(world.deps, first.id, stale_import),
        run_import(world.deps, first.id, edited.pending_import_id),
    )
    stored = await world.campaigns.get(first.id)
    assert (stored.status, stored.current_import_id, stored.total_count) == (
        S.SCHEDULED,
        edited.pending_import_id,
        6,
    )
    assert await world.emails(first.id, stale_import) == []
    assert await world.emails(first.id, stored.current_import_id) == addresses(6, "second")


@pytest.mark.parametrize("first", [None, 0, 1], ids=["together", "begin-first", "edit-first"])
async def test_edit_b_racing_the_start_of_sending_has_one_winner(
    world: World, first: int | None
) -> None:
    """Replacing the CSV while the send workflow begins: exactly one wins and the
    campaign is consistent with the winner."""
    campaign = await world.imported(addresses(8, "a"))
    execution = campaign.send_execution_id
    assert execution is not None
    upload = await world.upload(addresses(5, "b"))
    results = await race(
        world,
        sending.begin(world.deps, campaign.id, execution),
        edit(world.deps, campaign.id, CampaignEdit(s3_key=upload)),
        first=first,
    )
    (winner,) = winners(results)
    assert first is None or winner == first
    stored = await world.campaigns.get(campaign.id)
    assert stored.version == campaign.version + 1
    imports = {e.import_id for e in world.workflows.executions.values() if e.kind == "import"}
    if winner == 0:
        assert (stored.status, stored.pending_import_id) == (S.SENDING, None)
        assert world.workflows.executions[execution].status is ExecutionStatus.RUNNING
        assert imports == {campaign.current_import_id}
    else:
        assert stored.status is S.IMPORTING
        assert stored.pending_import_id is not None
        assert stored.current_import_id == campaign.current_import_id
        assert world.workflows.executions[execution].status is ExecutionStatus.ABORTED
        assert imports == {campaign.current_import_id, stored.pending_import_id}


async def test_a_stale_send_start_racing_a_finished_import_sends_nothing(
    world: World,
) -> None:
    """A send execution that read the campaign before a CSV replace, and writes after the
    new import finished, loses; the current execution then sends each new address once."""
    campaign = await world.imported(addresses(8, "old"))
    stale = campaign.send_execution_id
    assert stale is not None
    world.campaigns.holding = True
    late_begin = start(0, sending.begin(world.deps, campaign.id, stale))
    await world.campaigns.arrivals(1)  # it read the campaign; its write is held
    edited = await world.replace_csv(campaign.id, addresses(5, "new"))
    assert edited.pending_import_id is not None
    done = await run_import(world.deps, campaign.id, edited.pending_import_id)
    assert done.status is S.SCHEDULED
    world.campaigns.held[0].set()
    with pytest.raises(ConcurrentUpdateError):
        await late_begin
    current = done.send_execution_id
    assert current is not None
    assert current != stale
    await sending.begin(world.deps, campaign.id, current)
    for page in await sending.plan_pages(world.deps, campaign.id):
        await sending.enqueue_page(world.deps, campaign.id, page)
    await world.drain()
    assert sorted(world.mailer.sends_per_address) == sorted(addresses(5, "new"))
    assert set(world.mailer.sends_per_address.values()) == {1}
    finished = await sending.finalize(world.deps, campaign.id)
    assert (finished.status, finished.sent_count) == (S.COMPLETED, 5)
    counts = await world.recipients.count_by_status(campaign.id, edited.pending_import_id)
    assert counts[RecipientStatus.SENT] == 5
    assert counts[P] == 0
