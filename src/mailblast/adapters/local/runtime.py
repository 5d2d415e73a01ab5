"""The local runtime: the two workflows as asyncio tasks, queue consumers, a rate limiter.

`LocalWorkflowEngine` implements the `WorkflowEngine` port by running
`flows.run_import` and `flows.run_send` (the same steps the Step Functions state
machines chain) as tasks keyed by execution name. `LocalRuntime` puts it together with
`QueueWorkers` and a `TokenBucket` over the repositories it is given, and resumes on
start-up whatever a previous process left ``importing``, ``scheduled`` or ``sending``.

This package is the one adapter that drives the services (it *is* the workflow runtime);
nothing in the services imports it.

Only one process may run the local runtime over one database at a time: on start-up it
treats every claim it finds as left by a dead process.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection, Coroutine
from datetime import datetime
from typing import Any

import attrs
import structlog

from mailblast.adapters.local.rate import TokenBucket
from mailblast.adapters.local.workers import QueueWorkers
from mailblast.domain.campaign import Campaign, CampaignStatus
from mailblast.domain.errors import MailblastError
from mailblast.ports import (
    BatchQueue,
    BlobStore,
    CampaignRepo,
    Clock,
    ExecutionStatus,
    Mailer,
    RateLimiter,
    RecipientRepo,
)
from mailblast.services import flows
from mailblast.services.deps import Deps, ServiceSettings, Unlimited

__all__ = [
    "ExecutionAlreadyExistsError",
    "LocalRuntime",
    "LocalWorkflowEngine",
    "RecoveryReport",
    "rate_limiter_for",
]

log = structlog.get_logger("mailblast.local")

_RESUMABLE = (CampaignStatus.IMPORTING, CampaignStatus.SCHEDULED, CampaignStatus.SENDING)
_SETTLED = (
    CampaignStatus.IMPORT_FAILED,
    CampaignStatus.COMPLETED,
    CampaignStatus.SEND_FAILED,
)


class ExecutionAlreadyExistsError(MailblastError):
    """An execution name was started again with another input (Step Functions'
    ``ExecutionAlreadyExists``)."""


@attrs.define
class _Execution:
    name: str
    kind: str
    payload: tuple[object, ...]
    task: asyncio.Task[None]
    status: ExecutionStatus = ExecutionStatus.RUNNING


@attrs.frozen
class RecoveryReport:
    """What `LocalWorkflowEngine.recover` resumed."""

    imports: list[uuid.UUID] = attrs.Factory(list)
    sends: list[uuid.UUID] = attrs.Factory(list)
    #: recipients a dead process had claimed, now failed with ``outcome_unknown``
    abandoned: int = 0


class LocalWorkflowEngine:
    """Runs the import and send workflows of this process as asyncio tasks.

    Create it, build the `Deps` with it as ``workflows``, then `attach` those deps.
    ``poll_seconds`` is how often a send execution checks for recipients still pending
    (the state machine's 60 s loop; shorter here because a check is cheap locally).
    """

    def __init__(self, *, poll_seconds: float = 1.0, import_parallelism: int = 4) -> None:
        self.poll_seconds = poll_seconds
        self.import_parallelism = import_parallelism
        self._deps: Deps | None = None
        self._executions: dict[str, _Execution] = {}

    def attach(self, deps: Deps) -> None:
        """Give the engine the ports its workflows run on (``deps.workflows`` is this)."""
        self._deps = deps

    @property
    def deps(self) -> Deps:
        """The attached deps; `RuntimeError` before `attach`."""
        if self._deps is None:
            msg = "LocalWorkflowEngine.attach(deps) was not called"
            raise RuntimeError(msg)
        return self._deps

    # --- the port ----------------------------------------------------------------------

    def _start(
        self,
        name: str,
        kind: str,
        payload: tuple[object, ...],
        body: Callable[[], Coroutine[Any, Any, object]],
    ) -> str:
        known = self._executions.get(name)
        if known is not None:
            if known.kind != kind or known.payload != payload:
                msg = f"execution {name} exists with another input"
                raise ExecutionAlreadyExistsError(msg)
            return name
        task = asyncio.create_task(self._run(name, body), name=f"mailblast-{name}")
        self._executions[name] = _Execution(name, kind, payload, task)
        return name

    async def _run(self, name: str, body: Callable[[], Coroutine[Any, Any, object]]) -> None:
        # the workflow's coroutine is made here, so an execution stopped before it ever
        # ran leaves no coroutine behind that was never awaited
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(execution_id=name)
        try:
            await body()
        except asyncio.CancelledError:
            self._executions[name].status = ExecutionStatus.ABORTED
            raise
        except Exception:
            self._executions[name].status = ExecutionStatus.FAILED
            log.exception("mailblast.workflow.failed")
            return
        self._executions[name].status = ExecutionStatus.SUCCEEDED

    async def start_import(self, *, name: str, campaign_id: uuid.UUID, import_id: uuid.UUID) -> str:
        """Run the import workflow as execution ``name`` (idempotent per name and input)."""
        deps = self.deps

        def body() -> Coroutine[Any, Any, object]:
            return flows.run_import(
                deps, campaign_id, import_id, parallelism=self.import_parallelism
            )

        return self._start(name, "import", (campaign_id, import_id), body)

    async def start_send(self, *, name: str, campaign_id: uuid.UUID, scheduled_at: datetime) -> str:
        """Run the send workflow as execution ``name``: wait on the clock until
        ``scheduled_at`` (from this input, as the state machine's Wait state does), then
        the send steps. Idempotent per name and input."""
        self.deps  # noqa: B018 - refuse to start before `attach`, not inside the task

        def body() -> Coroutine[Any, Any, object]:
            return self._send(name, campaign_id, scheduled_at)

        return self._start(name, "send", (campaign_id, scheduled_at), body)

    async def _send(self, name: str, campaign_id: uuid.UUID, scheduled_at: datetime) -> None:
        deps = self.deps
        await flows.wait_until(deps, scheduled_at)
        await flows.run_send(deps, campaign_id, name, poll_seconds=self.poll_seconds, wait=False)

    async def stop(self, execution_id: str) -> None:
        """Cancel a waiting or running execution; a finished or unknown one is left alone."""
        execution = self._executions.get(execution_id)
        if execution is None or execution.status is not ExecutionStatus.RUNNING:
            return
        execution.status = ExecutionStatus.ABORTED
        if execution.task is asyncio.current_task():
            return  # an execution stopping itself ends on its own
        execution.task.cancel()
        await asyncio.wait({execution.task})

    async def status(self, execution_id: str) -> ExecutionStatus:
        """Where an execution is (an unknown one counts as aborted, as in the fake)."""
        execution = self._executions.get(execution_id)
        return execution.status if execution else ExecutionStatus.ABORTED

    # --- beyond the port ---------------------------------------------------------------

    def running(self) -> list[str]:
        """Names of the executions still running."""
        return [e.name for e in self._executions.values() if e.status is ExecutionStatus.RUNNING]

    async def wait(self, execution_id: str) -> ExecutionStatus:
        """Wait until an execution ends; returns how it ended."""
        execution = self._executions.get(execution_id)
        if execution is None:
            return ExecutionStatus.ABORTED
        await asyncio.wait({execution.task})
        return execution.status

    async def close(self) -> None:
        """Cancel every running execution (the process is going away; `recover` in the
        next one resumes them)."""
        tasks = [e.task for e in self._executions.values() if not e.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def recover(self, *, campaign_ids: Collection[uuid.UUID] | None = None) -> RecoveryReport:
        """Resume what a previous process left: restart the import of ``importing``
        campaigns, the send wait of ``scheduled`` ones, and the sending of ``sending``
        ones after failing (``outcome_unknown``) every claim the dead process held, so
        nobody it may have mailed is mailed again. ``campaign_ids`` limits it to those.

        Call it once at start-up, before any worker of this process claims recipients.
        """
        deps = self.deps
        now = deps.clock.now()
        report = RecoveryReport()
        abandoned = 0
        for campaign in await deps.campaigns.with_status(_RESUMABLE):
            if campaign_ids is not None and campaign.id not in campaign_ids:
                continue
            structlog.contextvars.bind_contextvars(campaign_id=str(campaign.id))
            if campaign.status is CampaignStatus.IMPORTING:
                if campaign.pending_import_id is None or campaign.import_execution_id is None:
                    continue
                await self.start_import(
                    name=campaign.import_execution_id,
                    campaign_id=campaign.id,
                    import_id=campaign.pending_import_id,
                )
                report.imports.append(campaign.id)
                continue
            if campaign.send_execution_id is None:
                continue
            if campaign.status is CampaignStatus.SENDING and campaign.current_import_id:
                if campaign.send_execution_id in self._executions:
                    continue  # ours and alive: its claims are not abandoned
                settled = await deps.recipients.fail_abandoned(
                    campaign.id, campaign.current_import_id, claimed_before=now, now=now
                )
                abandoned += settled
                if settled:
                    log.warning("mailblast.recovery.abandoned_claims", recipients=settled)
            await self.start_send(
                name=campaign.send_execution_id,
                campaign_id=campaign.id,
                scheduled_at=campaign.scheduled_at,
            )
            report.sends.append(campaign.id)
        structlog.contextvars.unbind_contextvars("campaign_id")
        if report.imports or report.sends:
            log.info(
                "mailblast.recovery.resumed",
                imports=len(report.imports),
                sends=len(report.sends),
                abandoned=abandoned,
            )
        return attrs.evolve(report, abandoned=abandoned)


async def rate_limiter_for(mailer: Mailer, *, clock: Clock, rate: float | None) -> RateLimiter:
    """The limiter a local run should use: ``rate`` messages/s when given, else the
    account's ``MaxSendRate`` when the mailer has a quota (SES), else no limit."""
    if rate is None:
        quota = await mailer.quota()
        if quota is None or quota.max_send_rate <= 0:
            return Unlimited()
        rate = quota.max_send_rate
    return TokenBucket(rate, clock=clock)


class LocalRuntime:
    """A whole mailblast in one process: the engine, the workers, the limiter, the queue.

    Build it with `open`, then ``async with runtime:`` (or `start` / `close`); start-up
    resumes unfinished campaigns before the workers take their first message.
    """

    def __init__(self, deps: Deps, engine: LocalWorkflowEngine, workers: QueueWorkers) -> None:
        self.deps = deps
        self.engine = engine
        self.workers = workers
        self.recovered: RecoveryReport | None = None

    @classmethod
    async def open(
        cls,
        *,
        campaigns: CampaignRepo,
        recipients: RecipientRepo,
        blobs: BlobStore,
        mailer: Mailer,
        clock: Clock,
        queue: BatchQueue,
        rate: float | None = None,
        rate_limiter: RateLimiter | None = None,
        settings: ServiceSettings | None = None,
        concurrency: int = 8,
        poll_seconds: float = 1.0,
        receive_wait_seconds: float = 0.05,
        idle_seconds: float = 0.05,
    ) -> LocalRuntime:
        """Wire the runtime. ``rate`` (messages/s) defaults to the mailer's quota, or no
        limit; ``rate_limiter`` overrides it. The ``queue``'s visibility timeout should be
        at least `ServiceSettings.claim_lease_seconds` (a message held longer than that
        belongs to a dead attempt anyway)."""
        settings = settings or ServiceSettings()
        limiter = rate_limiter or await rate_limiter_for(mailer, clock=clock, rate=rate)
        engine = LocalWorkflowEngine(poll_seconds=poll_seconds)
        deps = Deps(
            campaigns=campaigns,
            recipients=recipients,
            blobs=blobs,
            mailer=mailer,
            queue=queue,
            workflows=engine,
            clock=clock,
            rate=limiter,
            settings=settings,
        )
        engine.attach(deps)
        workers = QueueWorkers(
            deps,
            concurrency=concurrency,
            receive_wait_seconds=receive_wait_seconds,
            idle_seconds=idle_seconds,
        )
        return cls(deps, engine, workers)

    async def start(self, *, campaign_ids: Collection[uuid.UUID] | None = None) -> RecoveryReport:
        """Resume unfinished campaigns (all, or ``campaign_ids``), then start the workers."""
        self.recovered = await self.engine.recover(campaign_ids=campaign_ids)
        await self.workers.start()
        return self.recovered

    async def close(self, *, grace_seconds: float = 10.0) -> None:
        """Stop the workflows, then let the workers finish the batch in hand."""
        await self.engine.close()
        await self.workers.close(grace_seconds=grace_seconds)

    async def __aenter__(self) -> LocalRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def settle(self, campaign_id: uuid.UUID) -> Campaign:
        """Follow the campaign's executions until it is ``completed``, ``send_failed`` or
        ``import_failed`` (or nothing in this process runs it any more); returns it."""
        while True:
            campaign = await self.deps.campaigns.get(campaign_id)
            if campaign.status in _SETTLED:
                return campaign
            execution = (
                campaign.import_execution_id
                if campaign.status is CampaignStatus.IMPORTING
                else campaign.send_execution_id
            )
            if execution is None or execution not in self.engine.running():
                again = await self.deps.campaigns.get(campaign_id)
                if again.version == campaign.version:
                    return again  # nobody here is moving it
                continue
            await self.engine.wait(execution)
