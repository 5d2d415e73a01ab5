"""The Lambda handlers driven with real-shaped events (API Gateway proxy v1, SQS, Step
Functions task input) on a composition of in-memory fakes.

The handlers run exactly as in Lambda: each call goes through the composition root's
one event loop; only the wiring (`compose.use`) is the fakes instead of AWS. So these
tests are plain synchronous functions, like the Lambda runtime calling a handler.
"""

from __future__ import annotations

import asyncio
import json
import types
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import attrs
import pytest

from factories import PORTS, T0, fake_deps
from mailblast.adapters.memory import (
    InMemoryBatchQueue,
    InMemoryBlobStore,
    InMemoryCampaignRepo,
    InMemoryClock,
    InMemoryMailer,
    InMemoryRecipientRepo,
    InMemoryWorkflowEngine,
)
from mailblast.domain.campaign import CampaignStatus
from mailblast.domain.errors import StaleExecutionError, StaleImportError
from mailblast.domain.recipient import RecipientStatus
from mailblast.entrypoints.aws import api, compose, dlq, sender, steps
from mailblast.ports import ExecutionStatus
from mailblast.ports.codec import encode_batch
from mailblast.services import Deps

pytestmark = pytest.mark.integration

_T = TypeVar("_T")

CONTEXT = types.SimpleNamespace(aws_request_id="lambda-request-1")
CSV = (
    "email,name\r\n"
    + "".join(f"user{i}@example.com,User {i}\r\n" for i in range(10))
    + "not-an-address,Broken\r\n"
    + "USER3@example.com,Again\r\n"
)


# --- real-shaped events --------------------------------------------------------------


def api_event(
    method: str,
    path: str,
    *,
    body: object = None,
    query: Mapping[str, str] | None = None,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy (payload 1.0) event, as the console's test shows it."""
    parts = path.strip("/").split("/")
    params = None
    resource = path
    if len(parts) >= 2 and parts[0] == "campaigns":
        params = {"id": parts[1]}
        resource = "/campaigns/{id}" + ("/" + "/".join(parts[2:]) if len(parts) > 2 else "")
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Host": "api.example.com"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "203.0.113.7", "userArn": "arn:aws:iam::1:user/staff"},
        },
        "body": text,
        "isBase64Encoded": False,
    }


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    """An SQS event as the event source mapping delivers it."""
    return {
        "Records": [
            {
                "messageId": f"msg-{index}",
                "receiptHandle": f"receipt-{index}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1764579600000",
                    "SenderId": "AROAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1764579600001",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:mailblast-send",
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def body_of(response: Mapping[str, Any]) -> Any:
    """The decoded JSON body of a handler response."""
    return json.loads(response["body"])


# --- the composition on fakes --------------------------------------------------------


@attrs.define
class Fakes:
    """The fakes behind the handlers, and a way to run code on the handlers' loop."""

    deps: Deps
    campaigns: InMemoryCampaignRepo
    recipients: InMemoryRecipientRepo
    blobs: InMemoryBlobStore
    mailer: InMemoryMailer
    queue: InMemoryBatchQueue
    workflows: InMemoryWorkflowEngine
    clock: InMemoryClock

    def run(self, work: Callable[[Deps], Awaitable[_T]]) -> _T:
        """Run ``work`` on the composition's event loop (where the handlers run)."""
        return compose.invoke(work, function="test")

    def upload(self, text: str) -> str:
        """Put a CSV where a presigned upload would have put it."""

        async def put(deps: Deps) -> str:
            upload = await deps.blobs.presign_upload()
            await deps.blobs.put(upload.s3_key, text.encode())
            return upload.s3_key

        return self.run(put)

    def drain_queue(self) -> list[dict[str, Any]]:
        """Deliver every queued batch to the sender handler as SQS events of up to 10."""
        responses = []
        while True:
            got = self.run(lambda _: self.queue.receive(max_messages=10))
            if not got:
                return responses
            responses.append(sender.handler(sqs_event([encode_batch(r.message) for r in got])))
            for received in got:
                self.run(lambda _, r=received: self.queue.ack(r))  # type: ignore[misc]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    """The handlers wired to fresh fakes (chunks of 3 rows, pages of 4 recipients)."""
    # plain repositories: the handlers' tests drive late steps on purpose
    deps = fake_deps(recipients=InMemoryRecipientRepo(), chunk_rows=3, page_size=4)
    made = Fakes(deps, *(getattr(deps, port) for port in PORTS))

    async def factory(_: compose.LambdaSettings) -> compose.Wiring:
        return compose.Wiring(deps=deps)

    compose.use(factory, environ={"MAILBLAST_POLL_SECONDS": "7"})
    try:
        yield made
    finally:
        compose.use(None)


def register(fakes: Fakes, **overrides: object) -> str:
    """POST /campaigns with a fresh upload; the new campaign's id."""
    body = {
        "name": "Winter sale",
        "from_address": "news@example.com",
        "subject": "Hello {{name}}",
        "text": "Dear {{name}}",
        "scheduled_at": (T0 + timedelta(hours=1)).isoformat(),
        "s3_key": fakes.upload(CSV),
        **overrides,
    }
    response = api.handler(api_event("POST", "/campaigns", body=body), CONTEXT)
    assert response["statusCode"] == 201, response
    return str(body_of(response)["campaign_id"])


def run_import(fakes: Fakes, campaign_id: str) -> dict[str, Any]:
    """The import state machine's happy path, step handler by step handler."""
    campaign = fakes.run(lambda deps: deps.campaigns.get(uuid.UUID(campaign_id)))
    state = {"campaign_id": campaign_id, "import_id": str(campaign.pending_import_id)}
    split = steps.import_split(state, CONTEXT)
    for key in split["chunk_keys"]:
        steps.import_insert_chunk({**state, "chunk_key": key}, CONTEXT)
    steps.import_finalize(state, CONTEXT)
    steps.import_schedule_send(state, CONTEXT)
    return {**state, "split": split}


def send_input(fakes: Fakes, campaign_id: str) -> dict[str, Any]:
    """The send state machine's input, as `StepFunctionsWorkflowEngine` starts it."""
    campaign = fakes.run(lambda deps: deps.campaigns.get(uuid.UUID(campaign_id)))
    return {"campaign_id": campaign_id, "execution_id": campaign.send_execution_id}


# --- the API -------------------------------------------------------------------------


def test_presigned_url_names_a_key_under_uploads(fakes: Fakes) -> None:
    """GET /presigned-url answers an upload key under uploads/ and a URL to PUT to."""
    response = api.handler(api_event("GET", "/presigned-url"), CONTEXT)
    assert response["statusCode"] == 200
    body = body_of(response)
    assert body["s3_key"].startswith("uploads/")
    assert body["presigned_url"]
    assert body["expires_at"]


def test_register_starts_the_import_and_answers_the_id(fakes: Fakes) -> None:
    """POST /campaigns creates an importing campaign and starts its import workflow."""
    campaign_id = register(fakes)
    got = body_of(api.handler(api_event("GET", f"/campaigns/{campaign_id}"), CONTEXT))
    assert got["status"] == "importing"
    assert got["status_label"] == "取込中"
    assert [e.kind for e in fakes.workflows.running("import")] == ["import"]


def test_scheduled_at_without_offset_is_a_400_naming_the_field(fakes: Fakes) -> None:
    """A scheduled_at without a UTC offset is refused with its field path."""
    body = {
        "name": "n",
        "from_address": "news@example.com",
        "subject": "s",
        "text": "t",
        "scheduled_at": "2026-12-24T09:00:00",
        "s3_key": fakes.upload(CSV),
    }
    response = api.handler(api_event("POST", "/campaigns", body=body), CONTEXT)
    assert response["statusCode"] == 400
    assert response["headers"]["Content-Type"] == "application/problem+json"
    problem = body_of(response)
    assert problem["status"] == 400
    fields = {e["field"]: e["reason"] for e in problem["errors"]}
    assert "UTC offset" in fields["scheduled_at"]
    assert "Traceback" not in response["body"]


def test_body_errors_name_every_field(fakes: Fakes) -> None:
    """Missing, mistyped and unknown fields are all reported with their paths."""
    body = {"name": 5, "from_address": "a@example.com", "subject": "s", "text": "t", "x": 1}
    problem = body_of(api.handler(api_event("POST", "/campaigns", body=body), CONTEXT))
    fields = {e["field"]: e["reason"] for e in problem["errors"]}
    assert fields["name"] == "must be a string"
    assert "required field missing" in fields["scheduled_at"]
    assert "required field missing" in fields["s3_key"]
    assert any("x" in reason for reason in fields.values())


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", ""])
def test_a_body_that_is_not_a_json_object_is_a_400(fakes: Fakes, raw: str) -> None:
    """A body that is not a JSON object is a 400 problem, not a crash."""
    response = api.handler(api_event("POST", "/campaigns", raw_body=raw), CONTEXT)
    assert response["statusCode"] == 400
    assert body_of(response)["errors"][0]["field"] == "(body)"


@pytest.mark.parametrize("value", ["bad\u0000name", "\ud800"])
def test_text_a_database_cannot_store_is_a_400(fakes: Fakes, value: str) -> None:
    """NUL characters and lone surrogates are refused on the field, never a 500."""
    body = {
        "name": value,
        "from_address": "news@example.com",
        "subject": "s",
        "text": "t",
        "scheduled_at": "2026-12-24T09:00:00+09:00",
        "s3_key": "uploads/x.csv",
    }
    response = api.handler(api_event("POST", "/campaigns", body=body), CONTEXT)
    assert response["statusCode"] == 400
    assert [e["field"] for e in body_of(response)["errors"]] == ["name"]


@pytest.mark.parametrize("limit", ["\u00b2", "0", "-1", "x"])
def test_a_bad_page_size_is_a_400(fakes: Fakes, limit: str) -> None:
    """A limit that is not a plain positive number is a 400 on limit."""
    response = api.handler(api_event("GET", "/campaigns", query={"limit": limit}), CONTEXT)
    assert response["statusCode"] == 400


def test_an_upload_key_that_was_never_uploaded_is_a_400(fakes: Fakes) -> None:
    """Registering with an s3_key nobody uploaded is refused on the s3_key field."""
    body = {
        "name": "n",
        "from_address": "news@example.com",
        "subject": "s",
        "text": "t",
        "scheduled_at": "2026-12-24T09:00:00+09:00",
        "s3_key": "uploads/nothing-here.csv",
    }
    problem = body_of(api.handler(api_event("POST", "/campaigns", body=body), CONTEXT))
    assert [e["field"] for e in problem["errors"]] == ["s3_key"]


@pytest.mark.parametrize("campaign_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_campaign_is_a_404(fakes: Fakes, campaign_id: str) -> None:
    """GET of a campaign that does not exist (or a malformed id) is a 404 problem."""
    response = api.handler(api_event("GET", f"/campaigns/{campaign_id}"), CONTEXT)
    assert response["statusCode"] == 404
    assert response["headers"]["Content-Type"] == "application/problem+json"


def test_unknown_routes_and_methods(fakes: Fakes) -> None:
    """An unknown path is a 404, a known path with another method a 405 with Allow."""
    assert api.handler(api_event("GET", "/nothing"), CONTEXT)["statusCode"] == 404
    response = api.handler(api_event("DELETE", "/campaigns"), CONTEXT)
    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "GET, POST"


def test_replacing_the_csv_while_importing_is_a_409_naming_the_status(fakes: Fakes) -> None:
    """Edit B during an import is refused with 409 and the current status."""
    campaign_id = register(fakes)
    body = {"s3_key": fakes.upload(CSV)}
    response = api.handler(api_event("PUT", f"/campaigns/{campaign_id}", body=body), CONTEXT)
    assert response["statusCode"] == 409
    problem = body_of(response)
    assert problem["current_status"] == "importing"
    assert "importing" in problem["detail"]


def test_an_internal_error_is_a_500_without_details(fakes: Fakes) -> None:
    """An unexpected exception answers a generic 500 problem, never a stack trace."""

    async def broken(**_: object) -> list[Any]:
        msg = "secret internals"
        raise RuntimeError(msg)

    fakes.campaigns.list_page = broken  # type: ignore[method-assign]
    response = api.handler(api_event("GET", "/campaigns"), CONTEXT)
    assert response["statusCode"] == 500
    assert "secret internals" not in response["body"]
    assert "Traceback" not in response["body"]


def test_campaign_list_is_keyset_paged(fakes: Fakes) -> None:
    """GET /campaigns pages newest first with an opaque cursor until there is none."""
    ids = []
    for _ in range(3):
        ids.append(register(fakes))
        fakes.clock.set(fakes.clock.now() + timedelta(seconds=1))
    seen: list[str] = []
    query: dict[str, str] = {"limit": "2"}
    while True:
        page = body_of(api.handler(api_event("GET", "/campaigns", query=query), CONTEXT))
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        query = {"limit": "2", "cursor": page["next_cursor"]}
    assert seen == list(reversed(ids))
    bad = api.handler(api_event("GET", "/campaigns", query={"cursor": "!!"}), CONTEXT)
    assert bad["statusCode"] == 400


# --- the workflow steps, the sender and the API together -----------------------------


def test_a_campaign_goes_through_every_step_handler_to_completed(fakes: Fakes) -> None:
    """import steps -> scheduled; send steps + sender -> completed; the API shows it all."""
    campaign_id = register(fakes)
    state = run_import(fakes, campaign_id)
    assert state["split"]["accepted"] == 10
    assert state["split"]["rejected"] == 2
    assert state["split"]["chunk_keys"]
    got = body_of(api.handler(api_event("GET", f"/campaigns/{campaign_id}"), CONTEXT))
    assert (got["status"], got["total_count"], got["progress"]) == ("scheduled", 10, 0.0)

    report = api.handler(api_event("GET", f"/campaigns/{campaign_id}/report"), CONTEXT)
    assert report["headers"]["Content-Type"].startswith("text/csv")
    assert "line,email,reason" in report["body"]
    assert "not-an-address" in report["body"]

    send = send_input(fakes, campaign_id)
    assert steps.send_begin(send, CONTEXT)["status"] == "sending"
    pages = steps.send_plan_pages(send, CONTEXT)["pages"]
    assert len(pages) == 3
    queued = sum(steps.send_enqueue_page({**send, "page": p}, CONTEXT)["queued"] for p in pages)
    assert queued == 10
    assert steps.send_count_pending(send, CONTEXT) == {"pending": 10, "wait_seconds": 7}
    # nothing moved since the last count: the workflow waits longer, not forever at 7 s
    stalled = {**send, "previous_pending": 10, "previous_wait_seconds": 7}
    assert steps.send_count_pending(stalled, CONTEXT) == {"pending": 10, "wait_seconds": 14}
    got = body_of(api.handler(api_event("GET", f"/campaigns/{campaign_id}"), CONTEXT))
    assert got["status"] == "sending"
    assert got["pending_count"] == 10

    responses = fakes.drain_queue()
    assert all(r == {"batchItemFailures": []} for r in responses)
    assert steps.send_count_pending(send, CONTEXT)["pending"] == 0
    assert steps.send_finalize(send, CONTEXT) == {
        "status": "completed",
        "sent_count": 10,
        "failed_count": 0,
    }
    got = body_of(api.handler(api_event("GET", f"/campaigns/{campaign_id}"), CONTEXT))
    assert (got["status"], got["sent_count"], got["progress"]) == ("completed", 10, 1.0)
    assert len(fakes.mailer.sent) == 10
    assert fakes.mailer.duplicates() == {}

    # the recipients, paged with a cursor and filtered by status
    seen: list[int] = []
    query = {"limit": "4", "status": "sent"}
    while True:
        page = body_of(
            api.handler(api_event("GET", f"/campaigns/{campaign_id}/recipients", query=query))
        )
        seen += [r["id"] for r in page["items"]]
        assert {r["status"] for r in page["items"]} <= {"sent"}
        if page["next_cursor"] is None:
            break
        query = {**query, "cursor": page["next_cursor"]}
    assert len(seen) == 10
    assert seen == sorted(seen)
    bad = api.handler(
        api_event("GET", f"/campaigns/{campaign_id}/recipients", query={"status": "lost"})
    )
    assert body_of(bad)["errors"][0]["field"] == "status"

    # sending is over: edits are refused, naming the status
    edit = api_event("PUT", f"/campaigns/{campaign_id}", body={"name": "Late"})
    refused = api.handler(edit, CONTEXT)
    assert (refused["statusCode"], body_of(refused)["current_status"]) == (409, "completed")


def test_edit_a_reschedules_the_send_workflow(fakes: Fakes) -> None:
    """PUT with a new scheduled_at (no s3_key) stops the waiting send and starts another."""
    campaign_id = register(fakes)
    run_import(fakes, campaign_id)
    old = send_input(fakes, campaign_id)["execution_id"]
    later = (T0 + timedelta(days=2)).isoformat()
    response = api.handler(
        api_event("PUT", f"/campaigns/{campaign_id}", body={"scheduled_at": later}), CONTEXT
    )
    assert response["statusCode"] == 200
    assert body_of(response)["status"] == "scheduled"
    new = send_input(fakes, campaign_id)["execution_id"]
    assert new != old
    assert fakes.workflows.executions[old].status is ExecutionStatus.ABORTED
    assert [e.id for e in fakes.workflows.running("send")] == [new]
    # the old execution wakes up anyway: it sends nothing
    with pytest.raises(StaleExecutionError):
        steps.send_begin({"campaign_id": campaign_id, "execution_id": old}, CONTEXT)


def test_edit_b_replaces_the_csv_and_a_late_step_of_the_old_import_is_stale(
    fakes: Fakes,
) -> None:
    """PUT with an s3_key while scheduled starts a new import; the old one is stale."""
    campaign_id = register(fakes)
    old = run_import(fakes, campaign_id)
    body = {"s3_key": fakes.upload("email,name\r\nsolo@example.com,Solo\r\n")}
    response = api.handler(api_event("PUT", f"/campaigns/{campaign_id}", body=body), CONTEXT)
    assert response["statusCode"] == 200
    assert body_of(response)["status"] == "importing"
    with pytest.raises(StaleImportError):
        steps.import_split({"campaign_id": campaign_id, "import_id": old["import_id"]}, CONTEXT)
    assert steps.import_discard(
        {"campaign_id": campaign_id, "import_id": old["import_id"]}, CONTEXT
    ) == {"discarded": False}  # still the current import until the swap
    run_import(fakes, campaign_id)
    got = body_of(api.handler(api_event("GET", f"/campaigns/{campaign_id}"), CONTEXT))
    assert (got["status"], got["total_count"]) == ("scheduled", 1)


def test_import_fail_stores_a_csv_reason_as_it_is(fakes: Fakes) -> None:
    """The fail step turns a caught CsvFileError into import_failed with its message."""
    campaign_id = register(fakes)
    campaign = fakes.run(lambda deps: deps.campaigns.get(uuid.UUID(campaign_id)))
    cause = {"errorMessage": "the file has no address column", "errorType": "CsvFileError"}
    event = {
        "campaign_id": campaign_id,
        "import_id": str(campaign.pending_import_id),
        "error": {"Error": "CsvFileError", "Cause": json.dumps(cause)},
    }
    assert steps.import_fail(event, CONTEXT)["status"] == "import_failed"
    got = body_of(api.handler(api_event("GET", f"/campaigns/{campaign_id}"), CONTEXT))
    assert (got["status"], got["last_error"]) == ("import_failed", cause["errorMessage"])


def test_failure_reason_hides_internal_messages() -> None:
    """A non-CSV error is named in the reason but its message stays in the logs."""
    cause = json.dumps({"errorMessage": "password=hunter2", "errorType": "PermanentError"})
    reason = steps.failure_reason({"Error": "PermanentError", "Cause": cause}, step="import")
    assert reason == "the import stopped on an internal error (PermanentError)"
    assert steps.failure_reason({"Error": "States.Timeout"}, step="import").endswith(
        "States.Timeout"
    )


def test_a_step_with_a_malformed_input_names_the_field(fakes: Fakes) -> None:
    """A step given a malformed document raises InvalidInputError naming the field."""
    with pytest.raises(Exception, match=r"\$\.import_id"):
        steps.import_split({"campaign_id": str(uuid.uuid4())}, CONTEXT)


# --- the sender and the dead-letter handler ------------------------------------------


def test_sender_reports_only_the_records_that_failed(fakes: Fakes) -> None:
    """Good records are sent; a malformed body and a raising record are reported."""
    campaign_id = register(fakes)
    run_import(fakes, campaign_id)
    send = send_input(fakes, campaign_id)
    steps.send_begin(send, CONTEXT)
    for page in steps.send_plan_pages(send, CONTEXT)["pages"]:
        steps.send_enqueue_page({**send, "page": page}, CONTEXT)
    got = fakes.run(lambda _: fakes.queue.receive(max_messages=10))
    good = [encode_batch(r.message) for r in got]
    unknown = encode_batch(attrs.evolve(got[0].message, campaign_id=uuid.uuid4()))
    event = sqs_event([good[0], "{not json", unknown, *good[1:]])
    response = sender.handler(event, CONTEXT)
    assert response == {
        "batchItemFailures": [{"itemIdentifier": "msg-1"}, {"itemIdentifier": "msg-2"}]
    }
    assert len(fakes.mailer.sent) == 10


def test_dead_letter_handler_fails_the_pending_recipients(fakes: Fakes) -> None:
    """A dead-lettered batch fails its pending recipients; a malformed one is dropped."""
    campaign_id = register(fakes)
    run_import(fakes, campaign_id)
    send = send_input(fakes, campaign_id)
    steps.send_begin(send, CONTEXT)
    for page in steps.send_plan_pages(send, CONTEXT)["pages"]:
        steps.send_enqueue_page({**send, "page": page}, CONTEXT)
    got = fakes.run(lambda _: fakes.queue.receive(max_messages=10))
    first = got[0].message
    response = dlq.handler(sqs_event([encode_batch(first), "[]"]), CONTEXT)
    assert response == {"batchItemFailures": []}
    recipients = fakes.run(
        lambda deps: deps.recipients.list_page(
            first.campaign_id, first.import_id, limit=100, status=RecipientStatus.FAILED
        )
    )
    assert sorted(r.id for r in recipients) == sorted(first.recipient_ids)
    assert {r.error for r in recipients} == {dlq.DEAD_LETTER_REASON}


def test_settings_are_read_once_and_malformed_ones_named() -> None:
    """LambdaSettings.from_env reads the tunables and names a malformed variable."""
    settings = compose.LambdaSettings.from_env(
        {"MAILBLAST_PAGE_SIZE": "1000", "MAILBLAST_POLL_SECONDS": "5"}
    )
    assert (settings.service.page_size, settings.poll_seconds) == (1000, 5)
    with pytest.raises(Exception, match="MAILBLAST_CHUNK_ROWS"):
        compose.LambdaSettings.from_env({"MAILBLAST_CHUNK_ROWS": "many"})


def test_the_container_keeps_one_loop_across_invocations(fakes: Fakes) -> None:
    """Warm invocations run on the same event loop (pools stay usable)."""
    loops = {fakes.run(lambda _: asyncio.sleep(0, asyncio.get_running_loop())) for _ in range(3)}
    assert len(loops) == 1


def test_campaign_status_values_match_the_api_document() -> None:
    """The OpenAPI document lists exactly the campaign and recipient statuses."""
    from importlib import resources

    document = json.loads(
        resources.files("mailblast.entrypoints.aws").joinpath("openapi.json").read_text()
    )
    schemas = document["components"]["schemas"]
    assert schemas["CampaignStatus"]["enum"] == [s.value for s in CampaignStatus]
    assert schemas["RecipientStatus"]["enum"] == [s.value for s in RecipientStatus]


def test_the_openapi_document_is_valid_and_names_every_route() -> None:
    """openapi.json validates as OpenAPI 3 and describes exactly the handler's routes."""
    from importlib import resources

    from openapi_spec_validator import validate

    document = json.loads(
        resources.files("mailblast.entrypoints.aws").joinpath("openapi.json").read_text()
    )
    validate(document)
    described = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    served = {(method, route) for route, methods in api._TABLE.items() for method in methods}
    assert described == served


def test_lambda_log_lines_mask_addresses() -> None:
    """The Lambda log renderer's last step masks any address an event or traceback quotes."""
    from mailblast.entrypoints.aws import compose

    line = compose._mask_rendered(None, "error", '{"error": "SES refused hanako@example.jp"}')
    assert "hanako@" not in line
    assert "h***@example.jp" in line
