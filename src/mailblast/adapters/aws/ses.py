"""`Mailer` on Amazon SES v2 ``SendBulkEmail`` (never the v1 API).

One call carries the campaign's content as an inline template and up to 50 entries,
each with its own ``ReplacementTemplateData`` (the recipient's CSV fields), tags and
headers. The call is tried exactly once: botocore retries are off for SES (see
`AwsClients.sesv2`) and failures are translated so the sender knows whether anything
may have been sent (`mailblast.adapters.aws._errors`).
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mailblast.adapters.aws._errors import TRANSLATED, translate
from mailblast.adapters.aws.session import AwsClients
from mailblast.domain.errors import PermanentError
from mailblast.domain.messages import BulkEmail, DeliveryReport, Destination
from mailblast.ports import SendQuota

if TYPE_CHECKING:
    from types_aiobotocore_sesv2.type_defs import (
        BulkEmailEntryTypeDef,
        EmailTemplateContentTypeDef,
        MessageHeaderTypeDef,
        MessageTagTypeDef,
        SendBulkEmailRequestTypeDef,
    )

__all__ = [
    "MAX_DESTINATIONS",
    "MAX_TEMPLATE_DATA_CHARS",
    "SesMailer",
    "build_request",
    "sanitize_tag",
]

#: SendBulkEmail takes at most 50 entries.
MAX_DESTINATIONS = 50
#: SES's limit on one entry's ReplacementTemplateData (and on TemplateData).
MAX_TEMPLATE_DATA_CHARS = 262_144
#: SES's limits on headers (MessageHeader in the SES v2 model).
MAX_HEADERS = 15
_HEADER_NAME = re.compile(r"[!-9;-@A-~]{1,126}")
_HEADER_VALUE = re.compile(r"[ -~]{1,870}")
#: Tag names and values: ASCII letters, digits, underscore and dash, at most 256.
_TAG_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")
_MAX_TAG_CHARS = 256
#: The per-destination status we report for an entry refused before calling SES.
LOCAL_REFUSAL = "INVALID_PARAMETER"


def sanitize_tag(text: str) -> str:
    """A tag name or value SES accepts: other characters become ``_``, at most 256."""
    cleaned = _TAG_FORBIDDEN.sub("_", text)[:_MAX_TAG_CHARS]
    return cleaned or "_"


def _ascii_address(address: str) -> str | None:
    """The address with an internationalized domain in punycode, as SES wants it; None
    when it cannot be sent (SES takes only 7-bit ASCII local parts)."""
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii():
        return None
    if domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return None


def _sender(address: str) -> str:
    """``Name <local@domain>`` as SES wants it: a non-ASCII display name MIME-encoded
    (RFC 2047) and an internationalized domain in punycode."""
    name, addr = email.utils.parseaddr(address)
    converted = _ascii_address(addr) if addr else None
    if converted is None:
        return address  # let SES refuse it with its own words
    if not name:
        return converted
    return email.utils.formataddr((name, converted), charset="utf-8")


def _entry_problem(dest: Destination, data: str) -> str | None:
    """Why SES would refuse this entry (and with it the whole call), or None."""
    if _ascii_address(dest.email) is None:
        return "the address must have a 7-bit ASCII local part and a valid domain"
    if len(data) > MAX_TEMPLATE_DATA_CHARS:
        return (
            f"ReplacementTemplateData is {len(data):,} characters; "
            f"SES takes at most {MAX_TEMPLATE_DATA_CHARS:,}"
        )
    if len(dest.headers) > MAX_HEADERS:
        return f"{len(dest.headers)} headers; SES takes at most {MAX_HEADERS}"
    for name, value in dest.headers.items():
        if not _HEADER_NAME.fullmatch(name):
            return f"header name {name!r} is not allowed by SES"
        if not _HEADER_VALUE.fullmatch(value):
            return f"the value of header {name!r} must be 1 to 870 printable ASCII characters"
    return None


def _tags(tags: Mapping[str, str]) -> list[MessageTagTypeDef]:
    return [
        {"Name": sanitize_tag(name), "Value": sanitize_tag(value)} for name, value in tags.items()
    ]


def _entry(dest: Destination, data: str) -> BulkEmailEntryTypeDef:
    entry: BulkEmailEntryTypeDef = {
        "Destination": {"ToAddresses": [_ascii_address(dest.email) or dest.email]},
        "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": data}},
    }
    if dest.tags:
        entry["ReplacementTags"] = _tags(dest.tags)
    if dest.headers:
        headers: list[MessageHeaderTypeDef] = [
            {"Name": name, "Value": value} for name, value in dest.headers.items()
        ]
        entry["ReplacementHeaders"] = headers
    return entry


def build_request(
    email: BulkEmail,
    *,
    default_from: str | None = None,
    configuration_set: str | None = None,
) -> tuple[SendBulkEmailRequestTypeDef | None, dict[int, str]]:
    """The SendBulkEmail parameters for ``email`` and the destinations refused locally
    (index -> reason), which are left out of the call so one bad entry cannot make SES
    refuse the others. The request is None when no destination is left."""
    if not 0 < len(email.destinations) <= MAX_DESTINATIONS:
        # a caller's bug, not bad input: the same ValueError as the in-memory mailer
        msg = (
            f"SendBulkEmail takes 1 to {MAX_DESTINATIONS} destinations, "
            f"not {len(email.destinations)}"
        )
        raise ValueError(msg)
    sender = email.from_address or default_from
    if not sender:
        # nothing was sent: PermanentError, so the sender does not call it "unknown"
        msg = "no sender: the campaign has no from_address and MAILBLAST_FROM_ADDRESS is unset"
        raise PermanentError(msg)
    refused: dict[int, str] = {}
    entries: list[BulkEmailEntryTypeDef] = []
    for index, dest in enumerate(email.destinations):
        data = json.dumps(dict(dest.replacements), ensure_ascii=False, separators=(",", ":"))
        problem = _entry_problem(dest, data)
        if problem is not None:
            refused[index] = problem
            continue
        entries.append(_entry(dest, data))
    if not entries:
        return None, refused
    content: EmailTemplateContentTypeDef = {"Subject": email.content.subject}
    if email.content.text:
        content["Text"] = email.content.text
    if email.content.html:
        content["Html"] = email.content.html
    request: SendBulkEmailRequestTypeDef = {
        "FromEmailAddress": _sender(sender),
        "DefaultContent": {"Template": {"TemplateContent": content, "TemplateData": "{}"}},
        "BulkEmailEntries": entries,
    }
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    return request, refused


class SesMailer:
    """Sends through SES v2 ``SendBulkEmail``; one report per destination, in order."""

    def __init__(
        self,
        clients: AwsClients,
        *,
        configuration_set: str | None = None,
        from_address: str | None = None,
    ) -> None:
        self._clients = clients
        self.configuration_set = configuration_set or clients.settings.configuration_set
        self.from_address = from_address or clients.settings.from_address

    async def send_bulk(self, email: BulkEmail) -> list[DeliveryReport]:
        """Send one call of at most 50 destinations.

        Raises `ThrottledError` when SES refused the call for rate or quota and
        `NotSentError` when the request never left this process (nothing was sent:
        retry later), `PermanentError` when SES refused the call as a whole (nothing was
        sent), `TransientError` when the outcome is unknown (it may have been sent).
        An entry SES would refuse anyway (oversized data, a non-ASCII local part, a
        malformed header) is reported ``INVALID_PARAMETER`` without being sent. A
        destination missing from SES's answer gets no report (its outcome is unknown).
        More than 50 destinations is a `ValueError`, as with the in-memory mailer.
        """
        request, refused = build_request(
            email, default_from=self.from_address, configuration_set=self.configuration_set
        )
        results = []
        if request is not None:
            client = await self._clients.sesv2()
            try:
                response = await client.send_bulk_email(**request)
            except TRANSLATED as exc:
                raise translate(exc, action="SES SendBulkEmail") from exc
            results = response.get("BulkEmailEntryResults", [])
        reports: list[DeliveryReport] = []
        answers = iter(results)
        for index, dest in enumerate(email.destinations):
            if index in refused:
                reports.append(
                    DeliveryReport(
                        recipient_id=dest.recipient_id, status=LOCAL_REFUSAL, error=refused[index]
                    )
                )
                continue
            result = next(answers, None)
            if result is None:
                continue  # SES said nothing about it: outcome unknown, never resent
            status = result.get("Status")
            if not status:
                continue  # an answer without a status says nothing either
            reports.append(
                DeliveryReport(
                    recipient_id=dest.recipient_id,
                    status=status,
                    message_id=result.get("MessageId") or None,
                    error=result.get("Error") or None,
                )
            )
        return reports

    async def quota(self) -> SendQuota | None:
        """The account's ``MaxSendRate`` and ``Max24HourSend`` (SES GetAccount)."""
        client = await self._clients.sesv2()
        try:
            response = await client.get_account()
        except TRANSLATED as exc:
            raise translate(exc, action="SES GetAccount") from exc
        quota = response.get("SendQuota")
        if quota is None or "MaxSendRate" not in quota or "Max24HourSend" not in quota:
            return None
        return SendQuota(
            max_send_rate=float(quota["MaxSendRate"]),
            max_24_hour_send=float(quota["Max24HourSend"]),
        )
