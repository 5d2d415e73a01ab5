"""Edit B, the start of sending and late imports, interleaved at random on the services."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import attrs
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from conftest import make_world
from mailblast.domain.campaign import CampaignStatus
from mailblast.domain.errors import (
    BlobNotFoundError,
    ConcurrentUpdateError,
    InvalidTransitionError,
    StaleExecutionError,
    StaleImportError,
)
from mailblast.domain.recipient import RecipientStatus
from mailblast.services import importing, sending
from mailblast.services.campaigns import CampaignEdit, edit

S = CampaignStatus
T = TypeVar("T")


class Yielding:
    """A repository that lets other tasks run before each call, so that steps racing on
    the event loop interleave at every storage operation, as they would on a database."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return await attr(*args, **kwargs)

        return call


#: Refusals the services promise. BlobNotFoundError: a split run again while its chunks are
#: being inserted rewrites them, and an insert that misses one fails (the import then fails
#: cleanly); Step Functions never runs the two at once, a race here may.
EXPECTED = (
    StaleImportError,
    StaleExecutionError,
    InvalidTransitionError,
    ConcurrentUpdateError,
    BlobNotFoundError,
)


def csv_of(tag: int, n: int) -> str:
    """A list whose addresses say which upload they came from."""
    return "email,name\n" + "".join(f"u{i}.t{tag}@example.com,N{i}\n" for i in range(n))


class Interleavings(RuleBasedStateMachine):
    """Whatever order things happen in: one winner per race, nobody mailed twice, no
    recipient of a replaced list mailed after its replacement, counts that add up."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.world = make_world(chunk_rows=3, page_size=4)
        self.deps = attrs.evolve(
            self.world.deps,
            campaigns=Yielding(self.world.campaigns),
            recipients=Yielding(self.world.recipients),
        )
        self.uploads = 0
        self.campaign_id = self.run(self._register())
        self.imports: list[uuid.UUID] = []
        self.split_done: dict[uuid.UUID, list[str]] = {}
        pending = self.run(self.world.get(self.campaign_id)).pending_import_id
        assert pending is not None
        self.imports.append(pending)
        self.tag_of: dict[uuid.UUID, int] = {pending: 0}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one step to completion."""
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        """Note where the run ended (see --hypothesis-show-statistics); close its loop."""
        campaign = self.run(self.world.get(self.campaign_id))
        event(f"ended {campaign.status.value}, {len(self.world.mailer.sent)} mailed")
        self.loop.close()

    async def _register(self) -> uuid.UUID:
        campaign = await self.world.register(csv_of(0, 5))
        return campaign.id

    def pick(self, items: list[T], which: int) -> T:
        """An item by index, clamped."""
        return items[min(which, len(items) - 1)]

    # --- the actions, each one step as a workflow or a user would take it ---------------

    async def replace_csv(self, n: int) -> None:
        """Edit B arrives (refused unless scheduled or import_failed)."""
        self.uploads += 1
        tag = self.uploads
        key = await self.world.upload(csv_of(tag, n))
        campaign = await edit(self.deps, self.campaign_id, CampaignEdit(s3_key=key))
        assert campaign.pending_import_id is not None
        self.imports.append(campaign.pending_import_id)
        self.tag_of[campaign.pending_import_id] = tag

    async def split(self, which: int) -> None:
        """The split step of some import (maybe a stale one) runs."""
        import_id = self.pick(self.imports, which)
        result = await importing.split(self.deps, self.campaign_id, import_id)
        self.split_done[import_id] = result.chunk_keys

    async def insert_and_finalize(self, which: int) -> None:
        """The rest of some import (maybe a late one) runs."""
        import_id = self.pick(self.imports, which)
        keys = self.split_done.get(import_id)
        if keys is None:
            return
        try:
            for key in keys:
                await importing.insert_chunk(self.deps, self.campaign_id, import_id, key)
            await importing.finalize(self.deps, self.campaign_id, import_id)
        except StaleImportError:
            await importing.discard_stale(self.deps, self.campaign_id, import_id)

    async def begin_send(self, which: int) -> None:
        """Some send execution (maybe a stopped one) wakes up and begins."""
        names = [e.id for e in self.world.workflows.executions.values() if e.kind == "send"]
        if not names:
            return
        name = self.pick(names, which)
        after = await sending.begin(self.deps, self.campaign_id, name)
        assert after.send_execution_id == name

    async def deliver(self, _: int) -> None:
        """Queue the pending pages and let the sender drain the queue."""
        for page in await sending.plan_pages(self.deps, self.campaign_id):
            await sending.enqueue_page(self.deps, self.campaign_id, page)
        for _round in range(100):
            got = await self.world.queue.receive(max_messages=10)
            if not got:
                break
            for received in got:
                await sending.send_batch(self.deps, received.message)
                await self.world.queue.ack(received)
        if await sending.count_pending(self.deps, self.campaign_id) == 0:
            await sending.finalize(self.deps, self.campaign_id)

    ACTIONS = ("replace_csv", "split", "insert_and_finalize", "begin_send", "deliver")

    async def act(self, action: str, arg: int) -> None:
        """One action; the refusals the domain promises are fine, anything else is not."""
        with contextlib.suppress(EXPECTED):
            await getattr(self, action)(arg)

    @rule(action=st.sampled_from(ACTIONS), arg=st.integers(min_value=0, max_value=6))
    def alone(self, action: str, arg: int) -> None:
        """One step runs to completion."""
        self.run(self.act(action, arg + 1 if action == "replace_csv" else arg))

    @rule(
        first=st.sampled_from(ACTIONS),
        second=st.sampled_from(ACTIONS),
        a=st.integers(min_value=0, max_value=6),
        b=st.integers(min_value=0, max_value=6),
    )
    def race(self, first: str, second: str, a: int, b: int) -> None:
        """Two steps run at once, interleaving at every storage call."""

        async def both() -> None:
            await asyncio.gather(self.act(first, a + 1), self.act(second, b + 1))

        self.run(both())

    @invariant()
    def nobody_twice_and_only_the_current_list(self) -> None:
        """Every mailed address was mailed once, and all of them are from the list in use."""
        mailer = self.world.mailer
        assert mailer.duplicates() == {}
        campaign = self.run(self.world.get(self.campaign_id))
        if mailer.sent:
            assert campaign.current_import_id is not None
            tag = self.tag_of[campaign.current_import_id]
            assert all(m.to.endswith(f".t{tag}@example.com") for m in mailer.sent)

    @invariant()
    def counts_match_the_table(self) -> None:
        """From scheduled on, total_count is the size of the current import; when the
        campaign is over, every recipient is terminal and the counts add up."""
        campaign = self.run(self.world.get(self.campaign_id))
        if campaign.status in (S.SCHEDULED, S.SENDING, S.COMPLETED):
            assert campaign.current_import_id is not None
            counts = self.run(
                self.world.recipients.count_by_status(self.campaign_id, campaign.current_import_id)
            )
            assert sum(counts.values()) == campaign.total_count
            if campaign.status is S.COMPLETED:
                assert counts[RecipientStatus.PENDING] == 0
                assert campaign.sent_count == counts[RecipientStatus.SENT]
                assert campaign.failed_count == counts[RecipientStatus.FAILED]

    @invariant()
    def replaced_imports_leave_no_rows(self) -> None:
        """Rows exist only for the current and the pending import."""
        campaign = self.run(self.world.get(self.campaign_id))
        live = {campaign.current_import_id, campaign.pending_import_id}
        for import_id in self.imports:
            if import_id not in live and import_id in self.split_done:
                assert self.world.recipients.all(self.campaign_id, import_id) == []


TestInterleavings = Interleavings.TestCase
TestInterleavings.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
