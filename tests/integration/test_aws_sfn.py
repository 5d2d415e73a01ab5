"""StepFunctionsWorkflowEngine against moto's Step Functions over HTTP (moto records
executions without running them, so a started execution waits until stopped)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from backends.aws import boto3_client
from mailblast.adapters.aws import AwsSettings, StepFunctionsWorkflowEngine
from mailblast.adapters.aws.sfn import execution_arn, timestamp
from mailblast.domain.campaign import import_execution_name, send_execution_name
from mailblast.domain.errors import InvalidInputError, PermanentError
from mailblast.ports import ExecutionStatus

integration = pytest.mark.integration
JST = timezone(timedelta(hours=9))


def described(settings: AwsSettings, arn: str) -> dict[str, object]:
    """DescribeExecution, read with a plain boto3 client."""
    return dict(boto3_client(settings, "stepfunctions").describe_execution(executionArn=arn))


@integration
async def test_send_input_names_campaign_time_and_execution(
    workflow_engine_sfn: StepFunctionsWorkflowEngine, aws_settings: AwsSettings
) -> None:
    """start_send returns the execution ARN; its input carries a ...Z time and the name."""
    campaign_id = uuid.uuid4()
    name = send_execution_name(campaign_id, 4)
    when = datetime(2027, 1, 5, 9, 30, tzinfo=JST)
    arn = await workflow_engine_sfn.start_send(
        name=name, campaign_id=campaign_id, scheduled_at=when
    )
    assert arn == execution_arn(workflow_engine_sfn.send_state_machine_arn, name)
    execution = described(aws_settings, arn)
    assert execution["status"] == "RUNNING"
    assert json.loads(str(execution["input"])) == {
        "campaign_id": str(campaign_id),
        "scheduled_at": "2027-01-05T00:30:00Z",
        "execution_id": name,
    }


@integration
async def test_import_input_and_idempotent_restart_after_it_finished(
    workflow_engine_sfn: StepFunctionsWorkflowEngine,
) -> None:
    """The same start after the execution closed (ExecutionAlreadyExists) is still a success."""
    campaign_id, import_id = uuid.uuid4(), uuid.uuid4()
    name = import_execution_name(import_id)
    arn = await workflow_engine_sfn.start_import(
        name=name, campaign_id=campaign_id, import_id=import_id
    )
    await workflow_engine_sfn.stop(arn)
    again = await workflow_engine_sfn.start_import(
        name=name, campaign_id=campaign_id, import_id=import_id
    )
    assert again == arn
    assert await workflow_engine_sfn.status(name) is ExecutionStatus.ABORTED


@integration
async def test_same_name_with_other_input_is_a_conflict(
    workflow_engine_sfn: StepFunctionsWorkflowEngine,
) -> None:
    """Reusing a name for another input raises PermanentError and changes nothing."""
    campaign_id = uuid.uuid4()
    name = send_execution_name(campaign_id, 1)
    when = datetime.now(UTC) + timedelta(days=1)
    arn = await workflow_engine_sfn.start_send(
        name=name, campaign_id=campaign_id, scheduled_at=when
    )
    with pytest.raises(PermanentError, match="other input"):
        await workflow_engine_sfn.start_send(
            name=name, campaign_id=campaign_id, scheduled_at=when + timedelta(hours=1)
        )
    assert await workflow_engine_sfn.status(arn) is ExecutionStatus.RUNNING


@integration
async def test_stop_a_waiting_import_by_its_bare_name(
    workflow_engine_sfn: StepFunctionsWorkflowEngine, aws_settings: AwsSettings
) -> None:
    """A bare name is found in the import machine and stopped there."""
    campaign_id, import_id = uuid.uuid4(), uuid.uuid4()
    name = import_execution_name(import_id)
    arn = await workflow_engine_sfn.start_import(
        name=name, campaign_id=campaign_id, import_id=import_id
    )
    await workflow_engine_sfn.stop(name)
    assert described(aws_settings, arn)["status"] == "ABORTED"


@integration
async def test_stopping_unknown_executions_is_not_an_error(
    workflow_engine_sfn: StepFunctionsWorkflowEngine,
) -> None:
    """Unknown names and unknown ARNs stop quietly and count as aborted."""
    unknown_arn = execution_arn(workflow_engine_sfn.send_state_machine_arn, "send-nobody-v1")
    await workflow_engine_sfn.stop(unknown_arn)
    await workflow_engine_sfn.stop("nobody")
    assert await workflow_engine_sfn.status(unknown_arn) is ExecutionStatus.ABORTED
    assert await workflow_engine_sfn.status("nobody") is ExecutionStatus.ABORTED


@integration
async def test_a_missing_state_machine_is_a_permanent_error(
    workflow_engine_sfn: StepFunctionsWorkflowEngine, aws_settings: AwsSettings
) -> None:
    """Starting on a deleted state machine raises PermanentError, not a botocore error."""
    boto3_client(aws_settings, "stepfunctions").delete_state_machine(
        stateMachineArn=workflow_engine_sfn.import_state_machine_arn
    )
    with pytest.raises(PermanentError, match="StateMachineDoesNotExist"):
        await workflow_engine_sfn.start_import(
            name="import-x", campaign_id=uuid.uuid4(), import_id=uuid.uuid4()
        )


def test_timestamps_are_utc_z_rounded_up_to_the_second() -> None:
    """Wait states get ...Z in whole seconds, never earlier than asked; naive is refused."""
    assert timestamp(datetime(2026, 12, 24, 9, 0, tzinfo=JST)) == "2026-12-24T00:00:00Z"
    assert timestamp(datetime(2026, 12, 24, 0, 0, 0, 1, tzinfo=UTC)) == "2026-12-24T00:00:01Z"
    with pytest.raises(InvalidInputError):
        timestamp(datetime(2026, 12, 24, 9, 0))


def test_execution_arns_are_built_from_the_state_machine_arn() -> None:
    """arn:...:stateMachine:M becomes arn:...:execution:M:NAME, in any partition."""
    machine = "arn:aws-cn:states:cn-north-1:123456789012:stateMachine:mailblast-send"
    assert execution_arn(machine, "send-x-v1") == (
        "arn:aws-cn:states:cn-north-1:123456789012:execution:mailblast-send:send-x-v1"
    )
    with pytest.raises(InvalidInputError):
        execution_arn("arn:aws:sqs:us-east-1:1:queue", "x")
