"""AWS emulated by moto in server mode, over real HTTP: fixtures for the integration tests
and the contract suites (``blob_store_s3``, ``batch_queue_sqs``, ``workflow_engine_sfn``,
``mailer_ses``).

One moto server runs in a thread for the whole session (``moto_server``); every test
starts from a reset server (``aws_settings`` posts ``/moto-api/reset``). In-process
``mock_aws`` does not work with aioboto3, hence the server.

moto 5.2.x implements neither SES v2 ``SendBulkEmail`` nor ``GetAccount``, so the server
here is moto's own WSGI application behind a thin test-only layer (`SesEmulator`) that
answers those two calls and records what was "sent". The product never sees this layer:
it talks to the endpoint like to AWS.

If the server cannot start the tests are skipped, unless ``MAILBLAST_REQUIRE_INTEGRATION=1``
makes that a failure.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import aioboto3
import attrs
import boto3
import pytest
import pytest_asyncio

from mailblast.adapters.aws import (
    AwsClients,
    AwsSettings,
    S3BlobStore,
    SesMailer,
    SqsBatchQueue,
    StepFunctionsWorkflowEngine,
)
from mailblast.domain.render import render

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "REGION",
    "SQS_MAX_RECEIVES",
    "SQS_VISIBILITY_TIMEOUT",
    "EmulatedEmail",
    "MotoServer",
    "SesEmulator",
    "aws_clients",
    "aws_environment",
    "aws_settings",
    "batch_queue_sqs",
    "blob_store_s3",
    "mailer_ses",
    "moto_server",
    "offline_aws_clients",
    "s3_bucket",
    "ses_emulator",
    "sqs_queues",
    "state_machines",
    "workflow_engine_sfn",
]

REGION = "us-east-1"
ACCOUNT = "123456789012"
#: Long enough that no test sees a message come back on its own; tests make a message
#: visible again with ``retry_later(delay_seconds=0)`` instead of waiting.
SQS_VISIBILITY_TIMEOUT = 30
SQS_MAX_RECEIVES = 3
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/mailblast-test"
IMPORT_DEFINITION = {
    "StartAt": "Import",
    "States": {"Import": {"Type": "Wait", "Seconds": 3600, "End": True}},
}
SEND_DEFINITION = {
    "StartAt": "WaitUntilScheduled",
    "States": {
        "WaitUntilScheduled": {"Type": "Wait", "TimestampPath": "$.scheduled_at", "End": True}
    },
}
_REQUIRE = "MAILBLAST_REQUIRE_INTEGRATION"

# --- the SES v2 emulation (test harness only) --------------------------------------------


@attrs.frozen
class EmulatedEmail:
    """One message the emulator accepted, rendered as the recipient would get it."""

    message_id: str
    from_address: str
    to: str = attrs.field(repr=False)
    subject: str = attrs.field(repr=False)
    text: str | None = attrs.field(repr=False)
    html: str | None = attrs.field(repr=False)
    tags: dict[str, str]
    headers: dict[str, str] = attrs.field(repr=False)
    configuration_set: str | None = None

    @property
    def recipient_id(self) -> int | None:
        """The ``recipient_id`` tag, when the sender set one."""
        value = self.tags.get("recipient_id")
        return int(value) if value and value.isdigit() else None


class SesEmulator:
    """Answers SES v2 ``SendBulkEmail`` and ``GetAccount`` like SES would, and records.

    Backdoors, named like `InMemoryMailer`'s: `answer`, `throttle_next`, `sent`,
    `calls`, `duplicates`; plus `fail_next` (any error), `hang_next` (no answer until
    `release`) and `requests` (every SendBulkEmail body as received).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.max_send_rate = 14.0
        self.max_24_hour_send = 50_000.0
        self.reset()

    def reset(self) -> None:
        """Forget everything (called on ``/moto-api/reset``)."""
        with self._lock:
            self.requests: list[dict[str, Any]] = []
            self.sent: list[EmulatedEmail] = []
            self.calls = 0
            self._statuses: dict[str, str] = {}
            self._errors: list[tuple[int, str, str]] = []
            self._ids = itertools.count(1)
            self._hang = 0
            self._released = threading.Event()

    # --- backdoors ---------------------------------------------------------------------

    def answer(self, address: str, status: str) -> None:
        """Answer ``status`` (a per-destination status) for this address from now on."""
        with self._lock:
            self._statuses[address.casefold()] = status

    def fail_next(self, code: str, message: str, *, status: int = 400, calls: int = 1) -> None:
        """Refuse the next ``calls`` SendBulkEmail calls with this error."""
        with self._lock:
            self._errors.extend([(status, code, message)] * calls)

    def throttle_next(self, calls: int = 1) -> None:
        """Refuse the next ``calls`` calls for rate, as SES does."""
        self.fail_next(
            "TooManyRequestsException", "Maximum sending rate exceeded.", status=429, calls=calls
        )

    def hang_next(self) -> None:
        """Do not answer the next call until `release` (for read timeouts)."""
        with self._lock:
            self._hang += 1

    def release(self) -> None:
        """Let hanging calls end (without sending)."""
        self._released.set()

    def duplicates(self) -> dict[str, int]:
        """Addresses sent more than once."""
        counts = Counter(mail.to.casefold() for mail in self.sent)
        return {address: n for address, n in counts.items() if n > 1}

    # --- the two operations ------------------------------------------------------------

    def get_account(self) -> tuple[int, dict[str, Any]]:
        """GetAccount's answer."""
        return 200, {
            "SendQuota": {
                "Max24HourSend": self.max_24_hour_send,
                "MaxSendRate": self.max_send_rate,
                "SentLast24Hours": float(len(self.sent)),
            },
            "SendingEnabled": True,
            "ProductionAccessEnabled": True,
        }

    def send_bulk_email(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """SendBulkEmail's answer; SUCCESS for every entry unless told otherwise."""
        with self._lock:
            self.calls += 1
            self.requests.append(body)
            hang, self._hang = self._hang > 0, max(0, self._hang - 1)
            error = self._errors.pop(0) if self._errors else None
        if hang:
            self._released.wait(timeout=30)
            return 500, {"__type": "InternalServiceErrorException", "message": "hung"}
        if error is not None:
            status, code, message = error
            return status, {"__type": code, "message": message}
        entries = body.get("BulkEmailEntries") or []
        template = (body.get("DefaultContent") or {}).get("Template") or {}
        content = template.get("TemplateContent")
        if not 0 < len(entries) <= 50 or not body.get("FromEmailAddress") or content is None:
            return 400, {"__type": "BadRequestException", "message": "invalid request"}
        defaults = json.loads(template.get("TemplateData") or "{}")
        results = []
        for entry in entries:
            to = entry["Destination"]["ToAddresses"][0]
            with self._lock:
                answer = self._statuses.get(to.casefold(), "SUCCESS")
            if answer != "SUCCESS":
                results.append({"Status": answer, "Error": f"emulated {answer}"})
                continue
            replacement = entry.get("ReplacementEmailContent", {}).get("ReplacementTemplate", {})
            data = {**defaults, **json.loads(replacement.get("ReplacementTemplateData") or "{}")}
            data = {key: str(value) for key, value in data.items()}
            with self._lock:
                message_id = f"emulated-{next(self._ids):010d}"
                self.sent.append(
                    EmulatedEmail(
                        message_id=message_id,
                        from_address=body["FromEmailAddress"],
                        to=to,
                        subject=render(content.get("Subject", ""), data),
                        text=render(content["Text"], data) if "Text" in content else None,
                        html=render(content["Html"], data) if "Html" in content else None,
                        tags={t["Name"]: t["Value"] for t in entry.get("ReplacementTags", [])},
                        headers={
                            h["Name"]: h["Value"] for h in entry.get("ReplacementHeaders", [])
                        },
                        configuration_set=body.get("ConfigurationSetName"),
                    )
                )
            results.append({"Status": "SUCCESS", "MessageId": message_id})
        return 200, {"BulkEmailEntryResults": results}


class _WithSesV2:
    """WSGI layer in front of moto: SES v2 SendBulkEmail/GetAccount, the rest to moto."""

    def __init__(self, app: WSGIApplication, ses: SesEmulator) -> None:
        self.app = app
        self.ses = ses

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/moto-api/reset" and method == "POST":
            self.ses.reset()
        if path == "/v2/email/outbound-bulk-emails" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            status, payload = self.ses.send_bulk_email(
                json.loads(environ["wsgi.input"].read(length))
            )
        elif path == "/v2/email/account" and method == "GET":
            status, payload = self.ses.get_account()
        else:
            return self.app(environ, start_response)
        data = json.dumps(payload).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        if status >= 400:
            headers.append(("x-amzn-ErrorType", payload["__type"]))
        start_response(f"{status} {'OK' if status < 400 else 'Error'}", headers)
        return [data]


# --- the server --------------------------------------------------------------------------


class MotoServer:
    """moto's server application (as `moto.server.ThreadedMotoServer` runs it) in a
    thread on 127.0.0.1 and a free port, with the SES v2 layer in front."""

    def __init__(self) -> None:
        self.ses = SesEmulator()
        self._thread: threading.Thread | None = None
        self._server: Any = None

    def start(self) -> None:
        """Serve in a daemon thread; returns once listening."""
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = _WithSesV2(DomainDispatcherApplication(create_backend_app), self.ses)
        self._server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        """What ``endpoint_url`` to give clients."""
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Drop every resource of every service (and the SES records)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def stop(self) -> None:
        """Shut the server down (idempotent)."""
        self.ses.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def _unavailable(reason: str) -> None:
    if os.environ.get(_REQUIRE) == "1":
        pytest.fail(f"the AWS emulator is required ({_REQUIRE}=1) but {reason}")
    pytest.skip(f"the AWS emulator is not available: {reason}")


_SERVER: MotoServer | None = None


def _shared_server() -> MotoServer:
    # one per process even if these fixtures are imported in more than one place
    global _SERVER  # noqa: PLW0603
    if _SERVER is None:
        server = MotoServer()
        try:
            server.start()
            server.reset()
        except Exception as exc:  # any reason not to start means "unavailable"
            server.stop()
            _unavailable(f"{type(exc).__name__}: {exc}")
        _SERVER = server
    return _SERVER


def _stop_shared() -> None:
    global _SERVER  # noqa: PLW0603
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
    "TZ": "UTC",
}
_UNSET = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE")


@pytest.fixture(scope="session")
def aws_environment() -> Iterator[None]:
    """Dummy credentials, the test region, no profile or endpoint from the machine, TZ=UTC."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _ENV.items():
            patch.setenv(name, value)
        for name in _UNSET:
            patch.delenv(name, raising=False)
        if hasattr(time, "tzset"):
            time.tzset()
        yield
    if hasattr(time, "tzset"):
        time.tzset()


@pytest.fixture(scope="session")
def moto_server(aws_environment: None) -> Iterator[MotoServer]:
    """The session's moto server (``MOTO_PORT`` set to its port)."""
    server = _shared_server()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_PORT", str(server.port))
        yield server
    _stop_shared()


@pytest.fixture
def aws_settings(moto_server: MotoServer) -> AwsSettings:
    """Settings pointing at a freshly reset emulator (resources are added by the
    resource fixtures; adapters take them as keyword arguments)."""
    moto_server.reset()
    return AwsSettings(
        region=REGION,
        endpoint_url=moto_server.endpoint_url,
        from_address="Mailblast Test <sender@example.com>",
        configuration_set="mailblast-test",
        max_attempts=2,
        connect_timeout=5.0,
        read_timeout=10.0,
    )


@pytest_asyncio.fixture
async def aws_clients(aws_settings: AwsSettings) -> AsyncIterator[AwsClients]:
    """One `AwsClients` per test, closed afterwards."""
    clients = AwsClients(aws_settings)
    yield clients
    await clients.close()


@pytest_asyncio.fixture
async def offline_aws_clients() -> AsyncIterator[AwsClients]:
    """`AwsClients` with dummy credentials and an endpoint nothing listens on: for tests
    that stub every call with aiobotocore's ``AioStubber``."""
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    settings = AwsSettings(
        region=REGION,
        endpoint_url=unused_endpoint(),
        from_address="sender@example.com",
        configuration_set="mailblast-test",
        bucket="mailblast-offline",
        queue_url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/offline",
        dlq_url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/offline-dlq",
        max_attempts=2,
    )
    clients = AwsClients(settings, session=session)
    yield clients
    await clients.close()


def boto3_client(settings: AwsSettings, service: Any) -> Any:
    """A plain (sync) boto3 client on the emulator, for setting up and inspecting."""
    return boto3.client(service, region_name=REGION, endpoint_url=settings.endpoint_url)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_bucket(aws_settings: AwsSettings) -> str:
    """A new empty bucket's name."""
    name = _name("mailblast")
    boto3_client(aws_settings, "s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def sqs_queues(aws_settings: AwsSettings) -> tuple[str, str]:
    """(queue URL, dead-letter queue URL): the queue redrives after 3 receives."""
    sqs = boto3_client(aws_settings, "sqs")
    base = _name("mailblast")
    dlq_url = sqs.create_queue(QueueName=f"{base}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=base,
        Attributes={
            "VisibilityTimeout": str(SQS_VISIBILITY_TIMEOUT),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(SQS_MAX_RECEIVES)}
            ),
        },
    )["QueueUrl"]
    return queue_url, dlq_url


@pytest.fixture
def state_machines(aws_settings: AwsSettings) -> tuple[str, str]:
    """(import state machine ARN, send state machine ARN); moto records executions but
    does not run them, so they stay RUNNING until stopped."""
    sfn = boto3_client(aws_settings, "stepfunctions")
    arns = []
    for kind, definition in (("import", IMPORT_DEFINITION), ("send", SEND_DEFINITION)):
        response = sfn.create_state_machine(
            name=_name(f"mailblast-{kind}"), definition=json.dumps(definition), roleArn=ROLE_ARN
        )
        arns.append(response["stateMachineArn"])
    return arns[0], arns[1]


@pytest.fixture
def ses_emulator(moto_server: MotoServer, aws_settings: AwsSettings) -> SesEmulator:
    """The SES v2 emulation behind ``mailer_ses`` (reset for this test)."""
    return moto_server.ses


@pytest.fixture
def blob_store_s3(aws_clients: AwsClients, s3_bucket: str) -> S3BlobStore:
    """`S3BlobStore` on a new bucket."""
    return S3BlobStore(aws_clients, bucket=s3_bucket)


@pytest.fixture
def batch_queue_sqs(aws_clients: AwsClients, sqs_queues: tuple[str, str]) -> SqsBatchQueue:
    """`SqsBatchQueue` on a new queue and dead-letter queue (3 receives)."""
    queue_url, dlq_url = sqs_queues
    return SqsBatchQueue(aws_clients, queue_url=queue_url, dlq_url=dlq_url)


@pytest.fixture
def workflow_engine_sfn(
    aws_clients: AwsClients, state_machines: tuple[str, str]
) -> StepFunctionsWorkflowEngine:
    """`StepFunctionsWorkflowEngine` on two new state machines."""
    import_arn, send_arn = state_machines
    return StepFunctionsWorkflowEngine(
        aws_clients, import_state_machine_arn=import_arn, send_state_machine_arn=send_arn
    )


@pytest.fixture
def mailer_ses(aws_clients: AwsClients, ses_emulator: SesEmulator) -> SesMailer:
    """`SesMailer` against the emulator's SES v2 layer (see `SesEmulator`)."""
    return SesMailer(aws_clients)


# --- a moto server in its own process ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def separate_moto_server(*, ready_within: float = 60.0) -> Iterator[str]:
    """A moto server in a child process (its memory is not this process's); yields its
    endpoint URL. For measuring this process's memory while moto serves big objects."""
    port = _free_port()
    env = {**os.environ, **_ENV}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as response:
                    response.read()
                break
            except (urllib.error.URLError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    _unavailable("a moto server process did not start")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def unused_endpoint() -> str:
    """An endpoint nothing listens on (connections are refused)."""
    return f"http://127.0.0.1:{_free_port()}"
