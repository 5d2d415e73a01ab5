"""AwsSettings from the environment, AwsClients' lifetime, and the translation of botocore
and aiohttp failures (no network: nothing here needs the emulator)."""

from __future__ import annotations

import asyncio

import aioboto3
import aiohttp
import pytest
from botocore import exceptions as bx

from mailblast.adapters.aws import AwsClients, AwsSettings, S3BlobStore, SqsBatchQueue
from mailblast.adapters.aws._errors import translate
from mailblast.domain.errors import (
    InvalidInputError,
    NotSentError,
    PermanentError,
    ThrottledError,
    TransientError,
)

FULL_ENV = {
    "MAILBLAST_AWS_REGION": "ap-northeast-1",
    "MAILBLAST_AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    "MAILBLAST_S3_BUCKET": "bucket",
    "MAILBLAST_SQS_QUEUE_URL": "https://sqs/q",
    "MAILBLAST_SQS_DLQ_URL": "https://sqs/dlq",
    "MAILBLAST_IMPORT_STATE_MACHINE_ARN": "arn:aws:states:r:1:stateMachine:import",
    "MAILBLAST_SEND_STATE_MACHINE_ARN": "arn:aws:states:r:1:stateMachine:send",
    "MAILBLAST_SES_CONFIGURATION_SET": "mailblast",
    "MAILBLAST_FROM_ADDRESS": "news@example.com",
    "MAILBLAST_AWS_MAX_ATTEMPTS": "6",
    "MAILBLAST_AWS_CONNECT_TIMEOUT": "2.5",
    "MAILBLAST_AWS_READ_TIMEOUT": "12",
    "MAILBLAST_UPLOAD_EXPIRES_SECONDS": "300",
}


def test_from_env_reads_every_variable() -> None:
    """Each MAILBLAST_* variable lands in its field, numbers parsed."""
    settings = AwsSettings.from_env(FULL_ENV)
    assert settings == AwsSettings(
        region="ap-northeast-1",
        endpoint_url="http://127.0.0.1:5000",
        bucket="bucket",
        queue_url="https://sqs/q",
        dlq_url="https://sqs/dlq",
        import_state_machine_arn="arn:aws:states:r:1:stateMachine:import",
        send_state_machine_arn="arn:aws:states:r:1:stateMachine:send",
        configuration_set="mailblast",
        from_address="news@example.com",
        max_attempts=6,
        connect_timeout=2.5,
        read_timeout=12.0,
        upload_expires_seconds=300,
    )


def test_from_env_defaults_and_region_fallback() -> None:
    """Unset or empty variables mean defaults; the region falls back to AWS_REGION."""
    settings = AwsSettings.from_env({"AWS_REGION": "eu-west-1", "MAILBLAST_S3_BUCKET": " "})
    assert settings == AwsSettings(region="eu-west-1")
    assert AwsSettings.from_env({}).region is None


def test_from_env_names_every_malformed_variable() -> None:
    """Bad numbers and an expiry over 15 minutes are reported by variable name."""
    env = {
        "MAILBLAST_AWS_MAX_ATTEMPTS": "many",
        "MAILBLAST_AWS_READ_TIMEOUT": "-1",
        "MAILBLAST_UPLOAD_EXPIRES_SECONDS": "3600",
    }
    with pytest.raises(InvalidInputError) as raised:
        AwsSettings.from_env(env)
    assert set(raised.value.errors) == set(env)


def test_adapters_refuse_to_be_built_without_their_resources() -> None:
    """A missing bucket or queue URL is an error naming the variable to set."""
    clients = AwsClients(AwsSettings())
    with pytest.raises(InvalidInputError, match="MAILBLAST_S3_BUCKET"):
        S3BlobStore(clients)
    with pytest.raises(InvalidInputError, match="MAILBLAST_SQS_QUEUE_URL"):
        SqsBatchQueue(clients)


def _session() -> aioboto3.Session:
    return aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


async def test_clients_are_made_once_and_closed() -> None:
    """Concurrent first uses share one client; close() lets a new one be made."""
    clients = AwsClients(AwsSettings(region="us-east-1"), session=_session())
    first, second = await asyncio.gather(clients.sqs(), clients.sqs())
    assert first is second
    await clients.close()
    third = await clients.sqs()
    assert third is not first
    await clients.close()


def test_clients_refuse_a_second_event_loop() -> None:
    """Clients bound to one loop are not silently reused on another (warm-start bug)."""
    clients = AwsClients(AwsSettings(region="us-east-1"), session=_session())
    with asyncio.Runner() as first, asyncio.Runner() as second:
        first.run(clients.s3())
        with pytest.raises(RuntimeError, match="event loop"):
            second.run(clients.s3())
        first.run(clients.close())


def _client_error(code: str, status: int, message: str = "m") -> bx.ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return bx.ClientError(response, "Op")  # type: ignore[arg-type]


def _refused() -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(None, ConnectionRefusedError(111, "refused"))  # type: ignore[arg-type]


TRANSPORT = [
    (bx.EndpointConnectionError(endpoint_url="u", error=_refused()), NotSentError),
    (bx.ConnectTimeoutError(endpoint_url="u", error="t"), NotSentError),
    (bx.NoCredentialsError(), NotSentError),
    # a reset of an established connection is also wrapped as EndpointConnectionError
    (
        bx.EndpointConnectionError(
            endpoint_url="u", error=aiohttp.ClientOSError(104, "Connection reset by peer")
        ),
        TransientError,
    ),
    (bx.EndpointConnectionError(endpoint_url="u"), TransientError),
    (bx.ReadTimeoutError(endpoint_url="u", error="t"), TransientError),
    (bx.ConnectionClosedError(endpoint_url="u"), TransientError),
    (bx.SSLError(endpoint_url="u", error=OSError("e")), TransientError),
    (aiohttp.ClientPayloadError("truncated"), TransientError),
    (bx.ParamValidationError(report="bad"), PermanentError),
    (_client_error("SlowDown", 503), ThrottledError),
    (_client_error("Whatever", 429), ThrottledError),
    (_client_error("ThrottlingException", 400), ThrottledError),
    (_client_error("RequestTimeTooSkewed", 403), NotSentError),
    (_client_error("AccessDenied", 403), PermanentError),
    (_client_error("InternalError", 500), TransientError),
]


@pytest.mark.parametrize(("exc", "expected"), TRANSPORT, ids=lambda v: type(v).__name__)
def test_failures_translate_to_exactly_one_class(exc: Exception, expected: type[Exception]) -> None:
    """Only a connection never made is 'not sent'; anything after sending is unknown."""
    translated = translate(exc, action="Test Op")
    assert type(translated) is expected
    assert str(translated).startswith("Test Op failed")
