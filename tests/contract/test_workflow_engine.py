"""Contract of WorkflowEngine: deterministic names, idempotent starts, harmless stops."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from mailblast.domain.campaign import import_execution_name, send_execution_name
from mailblast.ports import ExecutionStatus


async def test_starting_the_same_execution_twice_is_one_execution(workflow_engine: Any) -> None:
    """A retried start with the same name and input returns the same execution."""
    campaign_id, import_id = uuid.uuid4(), uuid.uuid4()
    name = import_execution_name(import_id)
    first = await workflow_engine.start_import(
        name=name, campaign_id=campaign_id, import_id=import_id
    )
    again = await workflow_engine.start_import(
        name=name, campaign_id=campaign_id, import_id=import_id
    )
    assert first == again
    assert name in first


async def test_stop_a_waiting_send_and_stop_again(workflow_engine: Any) -> None:
    """A send waiting for next year stops; stopping it again, or an unknown one, is fine."""
    campaign_id = uuid.uuid4()
    when = datetime.now(UTC) + timedelta(days=300)
    execution = await workflow_engine.start_send(
        name=send_execution_name(campaign_id, 2), campaign_id=campaign_id, scheduled_at=when
    )
    assert await workflow_engine.status(execution) is ExecutionStatus.RUNNING
    await workflow_engine.stop(execution)
    assert await workflow_engine.status(execution) is ExecutionStatus.ABORTED
    await workflow_engine.stop(execution)
    await workflow_engine.stop(send_execution_name(uuid.uuid4(), 1))


async def test_stop_by_name_stops_the_execution(workflow_engine: Any) -> None:
    """The campaign stores the execution name; stopping by that name works."""
    campaign_id = uuid.uuid4()
    name = send_execution_name(campaign_id, 3)
    execution = await workflow_engine.start_send(
        name=name, campaign_id=campaign_id, scheduled_at=datetime.now(UTC) + timedelta(days=1)
    )
    await workflow_engine.stop(name)
    assert await workflow_engine.status(execution) is ExecutionStatus.ABORTED
