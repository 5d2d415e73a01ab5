"""End to end: the real state machine definitions (``infra/statemachines/*.asl.json``)
executed by moto's Step Functions interpreter, their Lambda tasks reaching the real step
handlers, against moto S3/SQS (server mode), the SES v2 emulation and real PostgreSQL.

How the pieces meet:
- moto runs a definition when ``stepfunctions.execute_state_machine`` is on in its
  config; a Task whose Resource is a Lambda ARN calls Lambda ``Invoke`` on the moto
  server (``http://localhost:$MOTO_PORT``). A WSGI layer in front of the server answers
  those calls by running the named handler in this process, as the Lambda runtime would
  (an exception becomes a function error whose ``errorType`` is the class name).
- The handlers run on the production composition (`compose.build_aws_deps`): S3, SQS,
  Step Functions and SES through the moto endpoint, PostgreSQL from ``pg_dsn``.
- The send workflow is started by a step handler through the `WorkflowEngine` port
  (moto's own ``states:startExecution`` integration is not used, see moto issue 10076).
- The SQS event source mapping is played by `Poller`: it receives up to 10 messages,
  calls the sender handler, deletes what succeeded and makes what failed visible again
  (as the visibility timeout would); the dead-letter queue is polled the same way.

Lambda containers handle one event at a time; here one container serves every function,
so invocations are serialized by one lock (Map iterations queue up on it).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import types
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import attrs
import boto3
import pytest

from backends.aws import ACCOUNT, REGION, ROLE_ARN, MotoServer
from backends.postgres import truncate
from mailblast.domain.errors import TransientError
from mailblast.domain.recipient import ClaimResult, RecipientStatus
from mailblast.entrypoints.aws import api, compose, dlq, sender, steps
from mailblast.services.deps import Deps

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

pytestmark = pytest.mark.integration

_T = TypeVar("_T")

INFRA = Path(__file__).resolve().parents[2] / "infra"
#: Substitution variable -> the handler behind it (as the SAM template wires them).
HANDLERS: Mapping[str, Callable[..., Any]] = {
    "ImportSplitFunctionArn": steps.import_split,
    "ImportInsertChunkFunctionArn": steps.import_insert_chunk,
    "ImportFinalizeFunctionArn": steps.import_finalize,
    "ImportScheduleSendFunctionArn": steps.import_schedule_send,
    "ImportDiscardFunctionArn": steps.import_discard,
    "ImportFailFunctionArn": steps.import_fail,
    "SendBeginFunctionArn": steps.send_begin,
    "SendPlanPagesFunctionArn": steps.send_plan_pages,
    "SendEnqueuePageFunctionArn": steps.send_enqueue_page,
    "SendCountPendingFunctionArn": steps.send_count_pending,
    "SendFinalizeFunctionArn": steps.send_finalize,
    "SendFailFunctionArn": steps.send_fail,
}
DEADLINE = 180.0  # seconds: a hung workflow fails the test instead of hanging it
_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


def function_arn(variable: str) -> str:
    """The Lambda ARN standing for a substitution variable."""
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{variable.removesuffix('Arn')}"


# --- the Lambda runtime, in process ----------------------------------------------------


class LambdaLayer:
    """WSGI layer in front of moto: Lambda ``Invoke`` runs the named handler here."""

    def __init__(self, app: WSGIApplication, lock: threading.Lock) -> None:
        self.app = app
        self.lock = lock
        self.handlers = {function_arn(v).rsplit(":", 1)[1]: h for v, h in HANDLERS.items()}
        self.invocations: list[tuple[str, str]] = []  # (function, outcome)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer Invoke for known functions; pass everything else to moto."""
        match = _INVOKE.match(unquote(environ.get("PATH_INFO", "")))
        if match is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        name = match["name"].split(":function:")[-1].split(":")[0]
        handler = self.handlers.get(name)
        if handler is None:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        event = json.loads(environ["wsgi.input"].read(length) or b"null")
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
        context = types.SimpleNamespace(aws_request_id=str(uuid.uuid4()))
        with self.lock:
            try:
                payload: Any = handler(event, context)
                outcome = "ok"
            except Exception as exc:  # the Lambda runtime's answer to an unhandled error
                payload = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
                payload["stackTrace"] = []
                headers.append(("X-Amz-Function-Error", "Unhandled"))
                outcome = type(exc).__name__
        self.invocations.append((name, outcome))
        data = json.dumps(payload).encode()
        headers.append(("Content-Length", str(len(data))))
        start_response("200 OK", headers)
        return [data]


# --- a recipient repository that fails claims of chosen recipients -------------------


@attrs.define
class FlakyClaims:
    """Delegates to the real repository, but a claim that includes a poisoned id fails
    as a lost database connection would (`TransientError`). Everything else is real."""

    inner: Any
    poisoned: set[int] = attrs.field(factory=set)
    failures: int = 0

    async def claim(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, ids: Sequence[int], **kw: Any
    ) -> ClaimResult:
        """Fail if a poisoned recipient is in the batch."""
        if self.poisoned.intersection(ids):
            self.failures += 1
            msg = "PostgreSQL: connection was closed in the middle of operation"
            raise TransientError(msg)
        result: ClaimResult = await self.inner.claim(campaign_id, import_id, ids, **kw)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# --- the world ---------------------------------------------------------------------------


@attrs.define
class World:
    """The emulated deployment: resources, the handlers' composition, and helpers."""

    server: MotoServer
    lock: threading.Lock
    layer: LambdaLayer
    bucket: str
    queue_url: str
    dlq_url: str
    import_arn: str
    send_arn: str
    flaky: list[FlakyClaims]

    def client(self, service: str) -> Any:
        """A plain boto3 client on the emulator."""
        return boto3.client(service, region_name=REGION, endpoint_url=self.server.endpoint_url)

    def run(self, work: Callable[[Deps], Any]) -> Any:
        """Run ``work`` on the handlers' composition (holding the container)."""
        with self.lock:
            return compose.invoke(work, function="test")

    def api(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """Call the API handler with an API Gateway proxy event."""
        parts = path.strip("/").split("/")
        resource = path
        params = None
        if len(parts) >= 2 and parts[0] == "campaigns":
            params = {"id": parts[1]}
            resource = "/campaigns/{id}" + "".join(f"/{p}" for p in parts[2:])
        event = {
            "resource": resource,
            "path": path,
            "httpMethod": method,
            "headers": {"Content-Type": "application/json"},
            "queryStringParameters": None,
            "pathParameters": params,
            "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod"},
            "body": None if body is None else json.dumps(body),
            "isBase64Encoded": False,
        }
        with self.lock:
            response = api.handler(event, types.SimpleNamespace(aws_request_id="api"))
        return response["statusCode"], json.loads(response["body"])

    def upload(self, csv_text: str) -> str:
        """Upload a CSV the way the page does: presigned URL, then a plain HTTP PUT."""
        status, upload = self.api("GET", "/presigned-url")
        assert status == 200, upload
        request = urllib.request.Request(
            upload["presigned_url"],
            data=csv_text.encode(),
            method="PUT",
            headers={"Content-Type": "text/csv"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        return str(upload["s3_key"])

    def register(self, csv_text: str, *, scheduled_at: datetime) -> str:
        """POST /campaigns with a fresh upload; the campaign id."""
        body = {
            "name": "Winter sale",
            "from_address": "news@example.com",
            "subject": "Hello {{name}}",
            "text": "Dear {{name}}, see you soon.",
            "scheduled_at": scheduled_at.isoformat(),
            "s3_key": self.upload(csv_text),
        }
        status, answer = self.api("POST", "/campaigns", body)
        assert status == 201, answer
        return str(answer["campaign_id"])

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        """GET /campaigns/{id}."""
        status, answer = self.api("GET", f"/campaigns/{campaign_id}")
        assert status == 200, answer
        return dict(answer)

    def execution(self, machine_arn: str, name: str) -> dict[str, Any]:
        """DescribeExecution of an execution by name."""
        arn = machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        return dict(self.client("stepfunctions").describe_execution(executionArn=arn))

    def wait_for_execution(
        self, machine_arn: str, name: str, *, poller: Poller | None = None
    ) -> str:
        """Wait until the execution ends (driving the queues meanwhile); its status."""
        deadline = time.monotonic() + DEADLINE
        while True:
            status = str(self.execution(machine_arn, name)["status"])
            if status != "RUNNING":
                return status
            assert time.monotonic() < deadline, f"{name} still running after {DEADLINE} s"
            if poller is None or not poller.poll_once():
                time.sleep(0.2)

    def sent_to(self) -> list[str]:
        """Every address the SES emulation accepted a message for."""
        return [mail.to for mail in self.server.ses.sent]


class Poller:
    """The SQS event source mappings of the sender and of the dead-letter handler."""

    def __init__(self, world: World, on_status: Callable[[], None] | None = None) -> None:
        self.world = world
        self.sqs = world.client("sqs")
        self.on_status = on_status
        self.reported: list[str] = []

    def _deliver(self, url: str, handler: Callable[..., Any]) -> bool:
        got = self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return False
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url.rsplit('/', 1)[1]}",
                    "awsRegion": REGION,
                }
                for m in got
            ]
        }
        with self.world.lock:
            response = handler(event, types.SimpleNamespace(aws_request_id=str(uuid.uuid4())))
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        self.reported += sorted(failed)
        for message in got:
            if message["MessageId"] in failed:
                # what the visibility timeout would do, without waiting for it
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return True

    def poll_once(self) -> bool:
        """One receive on each queue; True if anything was delivered."""
        if self.on_status is not None:
            self.on_status()
        sent = self._deliver(self.world.queue_url, sender.handler)
        dead = self._deliver(self.world.dlq_url, dlq.handler)
        return sent or dead


def _create_resources(server: MotoServer) -> tuple[str, str, str, str, str]:
    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=server.endpoint_url)

    suffix = uuid.uuid4().hex[:10]
    bucket = f"mailblast-e2e-{suffix}"
    client("s3").create_bucket(Bucket=bucket)
    sqs = client("sqs")
    dlq_url = sqs.create_queue(QueueName=f"mailblast-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"mailblast-send-{suffix}",
        Attributes={
            "VisibilityTimeout": "360",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    arns = []
    for kind in ("import", "send"):
        text = (INFRA / "statemachines" / f"{kind}.asl.json").read_text()
        for variable in HANDLERS:  # what DefinitionSubstitutions does on deploy
            text = text.replace("${" + variable + "}", function_arn(variable))
        assert "${" not in text
        arns.append(
            client("stepfunctions").create_state_machine(
                name=f"mailblast-{kind}-{suffix}", definition=text, roleArn=ROLE_ARN
            )["stateMachineArn"]
        )
    return bucket, queue_url, dlq_url, arns[0], arns[1]


@pytest.fixture
def world(moto_server: MotoServer, pg_dsn: str) -> Iterator[World]:
    """moto executing state machines with the Lambda layer, clean PostgreSQL tables, and
    the handlers composed on both."""
    from moto.core.config import default_user_config

    asyncio.run(truncate(pg_dsn))
    moto_server.reset()
    lock = threading.Lock()
    wsgi = moto_server._server  # the harness has no hook for another layer yet
    original_app = wsgi.app
    layer = LambdaLayer(original_app, lock)
    saved_config = dict(default_user_config.get("stepfunctions", {}))
    default_user_config["stepfunctions"] = {**saved_config, "execute_state_machine": True}
    wsgi.app = layer
    bucket, queue_url, dlq_url, import_arn, send_arn = _create_resources(moto_server)
    flaky: list[FlakyClaims] = []

    async def factory(settings: compose.LambdaSettings) -> compose.Wiring:
        wiring = await compose.build_aws_deps(settings)
        wrapped = FlakyClaims(wiring.deps.recipients)
        flaky.append(wrapped)
        return attrs.evolve(wiring, deps=attrs.evolve(wiring.deps, recipients=wrapped))

    environ = {
        "MAILBLAST_AWS_REGION": REGION,
        "MAILBLAST_AWS_ENDPOINT_URL": moto_server.endpoint_url,
        "MAILBLAST_S3_BUCKET": bucket,
        "MAILBLAST_SQS_QUEUE_URL": queue_url,
        "MAILBLAST_SQS_DLQ_URL": dlq_url,
        "MAILBLAST_IMPORT_STATE_MACHINE_ARN": import_arn,
        "MAILBLAST_SEND_STATE_MACHINE_ARN": send_arn,
        "MAILBLAST_FROM_ADDRESS": "news@example.com",
        "MAILBLAST_SES_CONFIGURATION_SET": "mailblast-e2e",
        "MAILBLAST_DATABASE_URL": pg_dsn,
        "MAILBLAST_CHUNK_ROWS": "1000",
        "MAILBLAST_PAGE_SIZE": "1000",
        "MAILBLAST_POLL_SECONDS": "1",
    }
    compose.use(factory, environ=environ)
    made = World(moto_server, lock, layer, bucket, queue_url, dlq_url, import_arn, send_arn, flaky)
    try:
        yield made
    finally:
        sfn = made.client("stepfunctions")
        for arn in (import_arn, send_arn):
            for execution in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")[
                "executions"
            ]:
                sfn.stop_execution(executionArn=execution["executionArn"])
        with lock:
            compose.use(None)
        wsgi.app = original_app
        default_user_config["stepfunctions"] = saved_config


def people(n: int, *, prefix: str = "user") -> str:
    """A CSV of ``n`` distinct recipients with a ``name`` column."""
    rows = "".join(f"{prefix}{i}@example.com,{prefix.title()} {i}\r\n" for i in range(n))
    return "email,name\r\n" + rows


def later(**delta: float) -> datetime:
    """Now plus ``delta``, in UTC."""
    return datetime.now(UTC) + timedelta(**delta)


def import_name(world: World, campaign_id: str) -> str:
    """The import execution the campaign points at."""
    campaign = world.run(lambda deps: deps.campaigns.get(uuid.UUID(campaign_id)))
    return str(campaign.import_execution_id)


def send_name(world: World, campaign_id: str) -> str:
    """The send execution the campaign points at."""
    campaign = world.run(lambda deps: deps.campaigns.get(uuid.UUID(campaign_id)))
    return str(campaign.send_execution_id)


# --- the scenarios -----------------------------------------------------------------------


def test_a_5000_recipient_campaign_goes_from_importing_to_completed(world: World) -> None:
    """importing -> scheduled (waiting) -> edit A to now -> sending -> completed, each
    of 5,000 recipients mailed exactly once; the replaced send execution sends nothing."""
    campaign_id = world.register(people(5000), scheduled_at=later(days=1))
    seen = [world.campaign(campaign_id)["status"]]
    assert world.wait_for_execution(world.import_arn, import_name(world, campaign_id)) == (
        "SUCCEEDED"
    )
    got = world.campaign(campaign_id)
    seen.append(got["status"])
    assert got["total_count"] == 5000
    first_send = send_name(world, campaign_id)
    assert world.execution(world.send_arn, first_send)["status"] == "RUNNING"  # waiting

    # edit A: the same campaign, now
    status, edited = world.api(
        "PUT", f"/campaigns/{campaign_id}", {"scheduled_at": later(seconds=-1).isoformat()}
    )
    assert status == 200, edited
    second_send = send_name(world, campaign_id)
    assert second_send != first_send
    assert world.execution(world.send_arn, first_send)["status"] == "ABORTED"

    def observe() -> None:
        status = world.campaign(campaign_id)["status"]
        if status != seen[-1]:
            seen.append(status)

    poller = Poller(world, on_status=observe)
    assert world.wait_for_execution(world.send_arn, second_send, poller=poller) == "SUCCEEDED"
    observe()
    assert seen == ["importing", "scheduled", "sending", "completed"]
    got = world.campaign(campaign_id)
    assert (got["sent_count"], got["failed_count"], got["progress"]) == (5000, 0, 1.0)
    sent = world.sent_to()
    assert len(sent) == 5000
    assert len(set(sent)) == 5000
    assert poller.reported == []
    # the Map states ran one iteration per page (5 pages of 1,000)
    enqueued = [n for n, outcome in world.layer.invocations if n == "SendEnqueuePageFunction"]
    assert len(enqueued) == 5


def test_edit_b_while_scheduled_replaces_the_list_and_stops_the_old_send(world: World) -> None:
    """A new CSV while scheduled: the old send execution is stopped and sends nothing, the
    new import replaces the old recipients, the new send mails only the new list."""
    campaign_id = world.register(people(30, prefix="old"), scheduled_at=later(days=1))
    assert world.wait_for_execution(world.import_arn, import_name(world, campaign_id)) == (
        "SUCCEEDED"
    )
    old_send = send_name(world, campaign_id)
    body = {
        "s3_key": world.upload(people(12, prefix="new")),
        "scheduled_at": later(seconds=-1).isoformat(),
    }
    status, answer = world.api("PUT", f"/campaigns/{campaign_id}", body)
    assert (status, answer["status"]) == (200, "importing"), answer
    assert world.execution(world.send_arn, old_send)["status"] == "ABORTED"
    assert world.wait_for_execution(world.import_arn, import_name(world, campaign_id)) == (
        "SUCCEEDED"
    )
    new_send = send_name(world, campaign_id)
    assert world.wait_for_execution(world.send_arn, new_send, poller=Poller(world)) == "SUCCEEDED"
    got = world.campaign(campaign_id)
    assert (got["status"], got["total_count"], got["sent_count"]) == ("completed", 12, 12)
    assert sorted(world.sent_to()) == sorted(f"new{i}@example.com" for i in range(12))
    status, page = world.api("GET", f"/campaigns/{campaign_id}/recipients")
    assert {r["email"] for r in page["items"]} == {f"new{i}@example.com" for i in range(12)}


def test_an_import_failure_sets_import_failed_with_a_readable_reason(world: World) -> None:
    """A CSV without an address column fails the import workflow: import_failed, reason."""
    campaign_id = world.register("name,phone\r\nAlice,123\r\n", scheduled_at=later(days=1))
    assert world.wait_for_execution(world.import_arn, import_name(world, campaign_id)) == "FAILED"
    got = world.campaign(campaign_id)
    assert got["status"] == "import_failed"
    assert got["last_error"]
    assert "internal error" not in got["last_error"]
    assert ("ImportFailFunction", "ok") in world.layer.invocations


def test_a_batch_that_fails_three_times_is_dead_lettered(world: World) -> None:
    """A batch whose sends fail 3 times lands in the DLQ; its recipients end failed and
    the campaign still completes with counts that add up."""
    campaign_id = world.register(people(120), scheduled_at=later(days=1))
    assert world.wait_for_execution(world.import_arn, import_name(world, campaign_id)) == (
        "SUCCEEDED"
    )
    campaign = world.run(lambda deps: deps.campaigns.get(uuid.UUID(campaign_id)))
    first = world.run(
        lambda deps: deps.recipients.list_page(campaign.id, campaign.current_import_id, limit=1)
    )
    world.flaky[0].poisoned.add(first[0].id)
    status, _ = world.api(
        "PUT", f"/campaigns/{campaign_id}", {"scheduled_at": later(seconds=-1).isoformat()}
    )
    assert status == 200
    poller = Poller(world)
    assert world.wait_for_execution(
        world.send_arn, send_name(world, campaign_id), poller=poller
    ) == ("SUCCEEDED")
    assert world.flaky[0].failures == 3
    assert len(poller.reported) == 3
    got = world.campaign(campaign_id)
    assert (got["status"], got["sent_count"], got["failed_count"]) == ("completed", 70, 50)
    failed = world.run(
        lambda deps: deps.recipients.list_page(
            campaign.id, campaign.current_import_id, limit=200, status=RecipientStatus.FAILED
        )
    )
    assert {r.error for r in failed} == {dlq.DEAD_LETTER_REASON}
    assert first[0].email not in world.sent_to()
