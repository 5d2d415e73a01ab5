"""SesMailer: the exact SES v2 SendBulkEmail requests (checked against botocore's service
model by aiobotocore's AioStubber), every per-destination status, call-level failures
translated precisely, and the calls over HTTP to the emulator (never retried)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import pytest
from aiobotocore.stub import AioStubber
from botocore.loaders import Loader

from backends.aws import SesEmulator, unused_endpoint
from mailblast.adapters.aws import AwsClients, AwsSettings, SesMailer
from mailblast.adapters.aws.ses import MAX_TEMPLATE_DATA_CHARS, build_request, sanitize_tag
from mailblast.domain.campaign import MessageContent
from mailblast.domain.errors import (
    NotSentError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from mailblast.domain.messages import BulkEmail, Destination
from mailblast.domain.ses import SES_STATUSES

CONTENT = MessageContent(
    subject="{{name}}さん、お知らせ", text="Hello {{name}}", html="<p>{{name}}</p>"
)
SENDER = "news@example.com"


def destination(i: int, **changes: Any) -> Destination:
    """Recipient ``i`` with a name field and the tags the sender sets."""
    base = Destination(
        recipient_id=i,
        email=f"user{i}@example.com",
        replacements={"name": f"名前{i}"},
        tags={"campaign_id": "7f1c2a9e-0000-4000-8000-000000000001", "recipient_id": str(i)},
    )
    return attrs.evolve(base, **changes)


def bulk(*destinations: Destination, sender: str = SENDER) -> BulkEmail:
    """One call's worth for these destinations."""
    return BulkEmail(from_address=sender, content=CONTENT, destinations=list(destinations))


def entry(dest: Destination, **extra: Any) -> dict[str, Any]:
    """The BulkEmailEntry the adapter must build for ``dest``."""
    data = json.dumps(dict(dest.replacements), ensure_ascii=False, separators=(",", ":"))
    return {
        "Destination": {"ToAddresses": [dest.email]},
        "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": data}},
        "ReplacementTags": [{"Name": k, "Value": v} for k, v in dest.tags.items()],
        **extra,
    }


def request(*entries: dict[str, Any], sender: str = SENDER) -> dict[str, Any]:
    """The SendBulkEmail parameters the adapter must send."""
    return {
        "FromEmailAddress": sender,
        "DefaultContent": {
            "Template": {
                "TemplateContent": {
                    "Subject": CONTENT.subject,
                    "Text": CONTENT.text,
                    "Html": CONTENT.html,
                },
                "TemplateData": "{}",
            }
        },
        "BulkEmailEntries": list(entries),
        "ConfigurationSetName": "mailblast-test",
    }


@contextmanager
def stubbed(client: Any) -> Iterator[AioStubber]:
    """Stub ``client``; every queued response must be used."""
    with AioStubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
async def offline_mailer(offline_aws_clients: AwsClients) -> tuple[SesMailer, Any]:
    """A mailer whose SES v2 client is ready to be stubbed."""
    return SesMailer(offline_aws_clients), await offline_aws_clients.sesv2()


# --- requests, checked against the service model -----------------------------------------


async def test_request_is_exactly_the_sesv2_bulk_template_call(offline_mailer: Any) -> None:
    """Inline template, "{}" defaults, per-entry data/tags/headers, configuration set."""
    mailer, client = offline_mailer
    first = destination(1)
    second = destination(2, headers={"List-Unsubscribe": "<https://example.com/u/2>"})
    headers = [{"Name": "List-Unsubscribe", "Value": "<https://example.com/u/2>"}]
    expected = request(entry(first), entry(second, ReplacementHeaders=headers))
    answer = {
        "BulkEmailEntryResults": [
            {"Status": "SUCCESS", "MessageId": "m-1"},
            {"Status": "SUCCESS", "MessageId": "m-2"},
        ]
    }
    with stubbed(client) as stub:
        stub.add_response("send_bulk_email", answer, expected)
        reports = await mailer.send_bulk(bulk(first, second))
    assert [(r.recipient_id, r.status, r.message_id) for r in reports] == [
        (1, "SUCCESS", "m-1"),
        (2, "SUCCESS", "m-2"),
    ]


async def test_tags_are_sanitized_to_ses_characters(offline_mailer: Any) -> None:
    """Tag names and values keep only letters, digits, _ and -; at most 256 characters."""
    mailer, client = offline_mailer
    dest = destination(3, tags={"campaign id": "a/b c.d", "long": "x" * 300})
    tags = [{"Name": "campaign_id", "Value": "a_b_c_d"}, {"Name": "long", "Value": "x" * 256}]
    expected = request({**entry(dest), "ReplacementTags": tags})
    with stubbed(client) as stub:
        stub.add_response(
            "send_bulk_email", {"BulkEmailEntryResults": [{"Status": "SUCCESS"}]}, expected
        )
        await mailer.send_bulk(bulk(dest))
    assert sanitize_tag("") == "_"


async def test_international_sender_and_domain_are_encoded(offline_mailer: Any) -> None:
    """A Japanese display name is MIME-encoded and an IDN domain sent as punycode."""
    mailer, client = offline_mailer
    dest = destination(4, email="user4@例え.jp")
    sender = "お知らせ <news@例え.jp>"
    expected = request(
        {**entry(dest), "Destination": {"ToAddresses": ["user4@xn--r8jz45g.jp"]}},
        sender="=?utf-8?b?44GK55+l44KJ44Gb?= <news@xn--r8jz45g.jp>",
    )
    with stubbed(client) as stub:
        stub.add_response(
            "send_bulk_email", {"BulkEmailEntryResults": [{"Status": "SUCCESS"}]}, expected
        )
        await mailer.send_bulk(bulk(dest, sender=sender))


async def test_entries_ses_would_refuse_are_reported_without_sinking_the_call(
    offline_mailer: Any,
) -> None:
    """Oversized data, a non-ASCII local part or a bad header fail only that recipient."""
    mailer, client = offline_mailer
    big = destination(1, replacements={"note": "x" * MAX_TEMPLATE_DATA_CHARS})
    fine = destination(2)
    non_ascii = destination(3, email="名前@example.com")
    bad_header = destination(4, headers={"X-Note": "línea"})
    with stubbed(client) as stub:
        stub.add_response(
            "send_bulk_email",
            {"BulkEmailEntryResults": [{"Status": "SUCCESS", "MessageId": "m-2"}]},
            request(entry(fine)),
        )
        reports = await mailer.send_bulk(bulk(big, fine, non_ascii, bad_header))
    assert [(r.recipient_id, r.status) for r in reports] == [
        (1, "INVALID_PARAMETER"),
        (2, "SUCCESS"),
        (3, "INVALID_PARAMETER"),
        (4, "INVALID_PARAMETER"),
    ]
    assert "262,144" in (reports[0].error or "")


async def test_template_data_at_the_limit_is_sent(offline_mailer: Any) -> None:
    """ReplacementTemplateData of exactly 262,144 characters is still sent."""
    mailer, client = offline_mailer
    filler = MAX_TEMPLATE_DATA_CHARS - len('{"note":""}')
    dest = destination(5, replacements={"note": "x" * filler})
    with stubbed(client) as stub:
        stub.add_response(
            "send_bulk_email",
            {"BulkEmailEntryResults": [{"Status": "SUCCESS", "MessageId": "m"}]},
            request(entry(dest)),
        )
        (report,) = await mailer.send_bulk(bulk(dest))
    assert report.status == "SUCCESS"


async def test_nothing_left_to_send_makes_no_call(offline_mailer: Any) -> None:
    """When every entry is refused locally, SES is not called at all."""
    mailer, client = offline_mailer
    with stubbed(client):  # an unexpected call would raise UnStubbedResponseError
        reports = await mailer.send_bulk(bulk(destination(1, email="ü@example.com")))
    assert [r.status for r in reports] == ["INVALID_PARAMETER"]


async def test_more_than_fifty_destinations_are_refused_before_calling(offline_mailer: Any) -> None:
    """51 destinations raise ValueError and make no call."""
    mailer, client = offline_mailer
    with stubbed(client), pytest.raises(ValueError, match="50"):
        await mailer.send_bulk(bulk(*(destination(i) for i in range(51))))


def test_the_configured_sender_fills_in_and_no_sender_is_refused() -> None:
    """A campaign without a sender uses MAILBLAST_FROM_ADDRESS; with neither, nothing is
    sent and the error is permanent (not an unknown outcome)."""
    request, _ = build_request(bulk(destination(1), sender=""), default_from="ops@example.com")
    assert request is not None
    assert request["FromEmailAddress"] == "ops@example.com"
    with pytest.raises(PermanentError, match="no sender"):
        build_request(bulk(destination(1), sender=""), default_from=None)


# --- responses ----------------------------------------------------------------------------


def test_the_domain_knows_every_status_of_the_service_model() -> None:
    """The statuses classified by the domain are exactly botocore's BulkEmailStatus enum."""
    model = Loader().load_service_model("sesv2", "service-2")
    assert set(model["shapes"]["BulkEmailStatus"]["enum"]) == set(SES_STATUSES)


@pytest.mark.parametrize("status", sorted(SES_STATUSES))
async def test_every_per_destination_status_is_reported(offline_mailer: Any, status: str) -> None:
    """Each status comes back on its own recipient with SES's error and message id."""
    mailer, client = offline_mailer
    first, second = destination(1), destination(2)
    result: dict[str, str] = {"Status": status}
    if status == "SUCCESS":
        result["MessageId"] = "m-2"
    else:
        result["Error"] = f"because {status}"
    answer = {"BulkEmailEntryResults": [{"Status": "SUCCESS", "MessageId": "m-1"}, result]}
    with stubbed(client) as stub:
        stub.add_response("send_bulk_email", answer, request(entry(first), entry(second)))
        reports = await mailer.send_bulk(bulk(first, second))
    assert reports[0].status == "SUCCESS"
    assert reports[0].message_id == "m-1"
    assert reports[1].recipient_id == 2
    assert reports[1].status == status
    assert reports[1].message_id == result.get("MessageId")
    assert reports[1].error == result.get("Error")


async def test_a_destination_ses_did_not_answer_gets_no_report(offline_mailer: Any) -> None:
    """Fewer results than entries: the missing ones stay unreported (outcome unknown)."""
    mailer, client = offline_mailer
    first, second = destination(1), destination(2)
    answer = {"BulkEmailEntryResults": [{"Status": "SUCCESS", "MessageId": "m-1"}]}
    with stubbed(client) as stub:
        stub.add_response("send_bulk_email", answer, request(entry(first), entry(second)))
        reports = await mailer.send_bulk(bulk(first, second))
    assert [r.recipient_id for r in reports] == [1]


CALL_ERRORS = [
    ("TooManyRequestsException", 429, "Maximum sending rate exceeded.", ThrottledError),
    ("LimitExceededException", 400, "Daily message quota exceeded.", ThrottledError),
    ("Throttling", 400, "Maximum sending rate exceeded.", ThrottledError),
    ("MessageRejected", 400, "Email address is not verified.", PermanentError),
    ("AccountSuspendedException", 400, "Account suspended.", PermanentError),
    ("SendingPausedException", 400, "Sending is paused.", PermanentError),
    ("MailFromDomainNotVerifiedException", 400, "Not verified.", PermanentError),
    ("NotFoundException", 404, "Configuration set does not exist.", PermanentError),
    ("BadRequestException", 400, "Invalid parameter.", PermanentError),
    ("ExpiredTokenException", 403, "The security token has expired.", NotSentError),
    ("InternalServiceErrorException", 500, "Internal failure.", TransientError),
    ("ServiceUnavailable", 503, "Service unavailable.", TransientError),
]


@pytest.mark.parametrize(("code", "http", "message", "expected"), CALL_ERRORS)
async def test_call_level_errors_are_translated_precisely(
    offline_mailer: Any, code: str, http: int, message: str, expected: type[Exception]
) -> None:
    """Rate -> Throttled; refusals -> Permanent; 5xx -> outcome unknown (plain Transient)."""
    mailer, client = offline_mailer
    with stubbed(client) as stub:
        stub.add_client_error(
            "send_bulk_email",
            service_error_code=code,
            service_message=message,
            http_status_code=http,
            expected_params=request(entry(destination(1))),
        )
        with pytest.raises(expected) as raised:
            await mailer.send_bulk(bulk(destination(1)))
    assert type(raised.value) is expected
    assert code in str(raised.value)


async def test_error_messages_never_carry_addresses(offline_mailer: Any) -> None:
    """An address in SES's message is redacted before it reaches logs or recipient rows."""
    mailer, client = offline_mailer
    with stubbed(client) as stub:
        stub.add_client_error(
            "send_bulk_email",
            service_error_code="MessageRejected",
            service_message="Email address is not verified: news@example.com, x@y.jp",
        )
        with pytest.raises(PermanentError) as raised:
            await mailer.send_bulk(bulk(destination(1)))
    assert "@" not in str(raised.value)
    assert "<address>" in str(raised.value)


async def test_quota_reads_get_account(offline_mailer: Any) -> None:
    """quota() turns GetAccount's SendQuota into rate and daily maximum."""
    mailer, client = offline_mailer
    answer = {"SendQuota": {"Max24HourSend": 200.0, "MaxSendRate": 1.0, "SentLast24Hours": 5.0}}
    with stubbed(client) as stub:
        stub.add_response("get_account", answer, {})
        quota = await mailer.quota()
    assert quota is not None
    assert (quota.max_send_rate, quota.max_24_hour_send) == (1.0, 200.0)


# --- over HTTP, against the emulator ------------------------------------------------------

integration = pytest.mark.integration


@integration
async def test_sends_over_http_and_the_recipient_gets_the_rendered_message(
    mailer_ses: SesMailer, ses_emulator: SesEmulator
) -> None:
    """The emulator receives one call and renders each entry with its own data."""
    dest = destination(9, headers={"List-Unsubscribe": "<mailto:u@example.com>"})
    (report,) = await mailer_ses.send_bulk(bulk(dest))
    (mail,) = ses_emulator.sent
    assert report.message_id == mail.message_id
    assert (mail.to, mail.subject, mail.html) == (
        "user9@example.com",
        "名前9さん、お知らせ",
        "<p>名前9</p>",
    )
    assert mail.recipient_id == 9
    assert mail.headers == {"List-Unsubscribe": "<mailto:u@example.com>"}
    assert mail.configuration_set == "mailblast-test"
    assert ses_emulator.calls == 1


@integration
async def test_a_throttled_call_is_tried_once(
    mailer_ses: SesMailer, ses_emulator: SesEmulator
) -> None:
    """ "Maximum sending rate exceeded" raises ThrottledError and botocore does not retry."""
    ses_emulator.throttle_next(2)
    with pytest.raises(ThrottledError):
        await mailer_ses.send_bulk(bulk(destination(1)))
    assert ses_emulator.calls == 1
    assert ses_emulator.sent == []


@integration
async def test_a_server_error_is_an_unknown_outcome_and_not_retried(
    mailer_ses: SesMailer, ses_emulator: SesEmulator
) -> None:
    """A 500 raises TransientError that is not NotSentError, after exactly one call."""
    ses_emulator.fail_next("InternalServiceErrorException", "boom", status=500, calls=2)
    with pytest.raises(TransientError) as raised:
        await mailer_ses.send_bulk(bulk(destination(1)))
    assert not isinstance(raised.value, NotSentError)
    assert ses_emulator.calls == 1


@integration
async def test_a_read_timeout_is_an_unknown_outcome(
    aws_settings: AwsSettings, ses_emulator: SesEmulator
) -> None:
    """No answer within the read timeout: TransientError, never NotSentError, one call."""
    settings = attrs.evolve(aws_settings, read_timeout=0.5)
    ses_emulator.hang_next()
    try:
        async with AwsClients(settings) as clients:
            with pytest.raises(TransientError) as raised:
                await SesMailer(clients).send_bulk(bulk(destination(1)))
    finally:
        ses_emulator.release()
    assert not isinstance(raised.value, NotSentError)
    assert ses_emulator.calls == 1


@integration
async def test_a_refused_connection_is_certainly_not_sent(aws_settings: AwsSettings) -> None:
    """Nothing listening: NotSentError (safe to retry later)."""
    settings = attrs.evolve(aws_settings, endpoint_url=unused_endpoint())
    async with AwsClients(settings) as clients:
        with pytest.raises(NotSentError):
            await SesMailer(clients).send_bulk(bulk(destination(1)))


@integration
async def test_quota_over_http(mailer_ses: SesMailer, ses_emulator: SesEmulator) -> None:
    """quota() reads GetAccount through the emulator."""
    quota = await mailer_ses.quota()
    assert quota is not None
    assert (quota.max_send_rate, quota.max_24_hour_send) == (
        ses_emulator.max_send_rate,
        ses_emulator.max_24_hour_send,
    )
