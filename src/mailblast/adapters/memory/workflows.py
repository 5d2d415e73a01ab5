"""A workflow engine that only records: what was started, stopped, and with what input."""

from __future__ import annotations

import uuid
from datetime import datetime

import attrs

from mailblast.ports import ExecutionStatus

__all__ = ["Execution", "InMemoryWorkflowEngine"]


@attrs.define
class Execution:
    """One recorded execution."""

    id: str
    kind: str
    campaign_id: uuid.UUID
    import_id: uuid.UUID | None = None
    scheduled_at: datetime | None = None
    status: ExecutionStatus = ExecutionStatus.RUNNING


class InMemoryWorkflowEngine:
    """Records executions; tests drive the steps themselves and mark them finished."""

    def __init__(self) -> None:
        self.executions: dict[str, Execution] = {}

    async def start_import(self, *, name: str, campaign_id: uuid.UUID, import_id: uuid.UUID) -> str:
        """Record an import execution (idempotent per name)."""
        self.executions.setdefault(name, Execution(name, "import", campaign_id, import_id))
        return name

    async def start_send(self, *, name: str, campaign_id: uuid.UUID, scheduled_at: datetime) -> str:
        """Record a send execution (idempotent per name)."""
        self.executions.setdefault(
            name, Execution(name, "send", campaign_id, scheduled_at=scheduled_at)
        )
        return name

    async def stop(self, execution_id: str) -> None:
        """Mark a running execution aborted; anything else is left alone."""
        execution = self.executions.get(execution_id)
        if execution is not None and execution.status is ExecutionStatus.RUNNING:
            execution.status = ExecutionStatus.ABORTED

    async def status(self, execution_id: str) -> ExecutionStatus:
        """The recorded status (unknown ids count as aborted)."""
        execution = self.executions.get(execution_id)
        return execution.status if execution else ExecutionStatus.ABORTED

    def finish(
        self, execution_id: str, status: ExecutionStatus = ExecutionStatus.SUCCEEDED
    ) -> None:
        """Backdoor: mark an execution finished."""
        self.executions[execution_id].status = status

    def running(self, kind: str) -> list[Execution]:
        """Backdoor: running executions of one kind."""
        return [
            e
            for e in self.executions.values()
            if e.kind == kind and e.status is ExecutionStatus.RUNNING
        ]
