"""`WorkflowEngine` on AWS Step Functions (Standard): the import and send state machines."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from mailblast.adapters.aws._errors import TRANSLATED, error_code, translate
from mailblast.adapters.aws.session import AwsClients
from mailblast.domain.errors import InvalidInputError, PermanentError
from mailblast.ports import ExecutionStatus

__all__ = ["StepFunctionsWorkflowEngine", "execution_arn", "timestamp"]

_UNKNOWN = frozenset({"ExecutionDoesNotExist"})
#: Step Functions' statuses that the port does not name.
_STATUS = {
    "RUNNING": ExecutionStatus.RUNNING,
    "PENDING_REDRIVE": ExecutionStatus.RUNNING,
    "SUCCEEDED": ExecutionStatus.SUCCEEDED,
    "FAILED": ExecutionStatus.FAILED,
    "TIMED_OUT": ExecutionStatus.FAILED,
    "ABORTED": ExecutionStatus.ABORTED,
}


def timestamp(when: datetime) -> str:
    """``when`` in the form a Wait state's ``TimestampPath`` reads: UTC, ``...Z``, whole
    seconds rounded up (the workflow never wakes before ``when``)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInputError({"scheduled_at": "must carry a UTC offset"})
    utc = when.astimezone(UTC)
    if utc.microsecond:
        utc = utc.replace(microsecond=0) + timedelta(seconds=1)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN an execution called ``name`` of this state machine has:
    ``arn:PARTITION:states:REGION:ACCOUNT:execution:MACHINE:NAME``."""
    parts = state_machine_arn.split(":")
    if len(parts) < 7 or parts[5] != "stateMachine":
        raise InvalidInputError(
            {"state_machine_arn": f"not a state machine ARN: {state_machine_arn}"}
        )
    return ":".join([*parts[:5], "execution", parts[6], name])


def _same_input(stored: str | None, wanted: str) -> bool:
    try:
        return bool(json.loads(stored or "null") == json.loads(wanted))
    except ValueError:
        return False


class StepFunctionsWorkflowEngine:
    """Starts, stops and describes executions of the two state machines.

    Execution ids are ARNs; `stop` and `status` also take a bare execution name and
    look for it in both machines.
    """

    def __init__(
        self,
        clients: AwsClients,
        *,
        import_state_machine_arn: str | None = None,
        send_state_machine_arn: str | None = None,
    ) -> None:
        self._clients = clients
        settings = clients.settings
        self.import_state_machine_arn = settings.require(
            "import_state_machine_arn", import_state_machine_arn
        )
        self.send_state_machine_arn = settings.require(
            "send_state_machine_arn", send_state_machine_arn
        )

    async def start_import(self, *, name: str, campaign_id: uuid.UUID, import_id: uuid.UUID) -> str:
        """Start the import workflow with ``{campaign_id, import_id}``; returns its ARN.
        Starting the same name with the same input again returns the same ARN; with
        other input it is a `PermanentError`."""
        document = {"campaign_id": str(campaign_id), "import_id": str(import_id)}
        return await self._start(self.import_state_machine_arn, name, document)

    async def start_send(self, *, name: str, campaign_id: uuid.UUID, scheduled_at: datetime) -> str:
        """Start the send workflow with ``{campaign_id, scheduled_at, execution_id}``
        (``scheduled_at`` as ``...Z``, ``execution_id`` the name the campaign stores);
        idempotent like `start_import`."""
        document = {
            "campaign_id": str(campaign_id),
            "scheduled_at": timestamp(scheduled_at),
            "execution_id": name,
        }
        return await self._start(self.send_state_machine_arn, name, document)

    async def _start(self, machine: str, name: str, document: dict[str, Any]) -> str:
        payload = json.dumps(document, sort_keys=True, separators=(",", ":"))
        client = await self._clients.sfn()
        try:
            response = await client.start_execution(
                stateMachineArn=machine, name=name, input=payload
            )
        except TRANSLATED as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise translate(exc, action="Step Functions StartExecution") from exc
        else:
            return response["executionArn"]
        # the name is taken: fine if it is the same start (a retry), else a conflict
        arn = execution_arn(machine, name)
        existing = await self._describe(arn)
        if existing is not None and _same_input(existing.get("input"), payload):
            return arn
        msg = f"execution {name} already exists with other input"
        raise PermanentError(msg)

    async def _describe(self, arn: str) -> dict[str, Any] | None:
        client = await self._clients.sfn()
        try:
            return dict(await client.describe_execution(executionArn=arn))
        except TRANSLATED as exc:
            if error_code(exc) in _UNKNOWN:
                return None
            raise translate(exc, action="Step Functions DescribeExecution") from exc

    def _candidates(self, execution_id: str) -> list[str]:
        if execution_id.startswith("arn:"):
            return [execution_id]
        machines = [self.send_state_machine_arn, self.import_state_machine_arn]
        if execution_id.startswith("import-"):
            machines.reverse()
        return [execution_arn(machine, execution_id) for machine in machines]

    async def _find(self, execution_id: str) -> tuple[str, dict[str, Any]] | None:
        for arn in self._candidates(execution_id):
            found = await self._describe(arn)
            if found is not None:
                return arn, found
        return None

    async def stop(self, execution_id: str) -> None:
        """Stop a running execution, named by ARN or by name; stopping a finished or
        unknown one does nothing."""
        found = await self._find(execution_id)
        if found is None or found[1].get("status") != "RUNNING":
            return
        client = await self._clients.sfn()
        try:
            await client.stop_execution(
                executionArn=found[0], error="mailblast.Stopped", cause="stopped by mailblast"
            )
        except TRANSLATED as exc:
            if error_code(exc) in _UNKNOWN:
                return
            raise translate(exc, action="Step Functions StopExecution") from exc

    async def status(self, execution_id: str) -> ExecutionStatus:
        """Where an execution is (by ARN or name); an unknown one counts as aborted, as
        in the in-memory engine."""
        found = await self._find(execution_id)
        if found is None:
            return ExecutionStatus.ABORTED
        return _STATUS.get(str(found[1].get("status")), ExecutionStatus.FAILED)
