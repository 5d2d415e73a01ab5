"""The REST API: one Lambda handler for API Gateway (REST, proxy integration) events.

Routes (``openapi.json`` beside this file describes them):
``GET /presigned-url``, ``POST /campaigns``, ``GET /campaigns``,
``GET /campaigns/{id}``, ``PUT /campaigns/{id}``, ``GET /campaigns/{id}/recipients``,
``GET /campaigns/{id}/report``.

Bodies are structured with one cattrs converter for this boundary (extra keys
forbidden); every error is an ``application/problem+json`` document (RFC 9457): 400
with the field paths and reasons, 404, 405, 409 naming the campaign's current status,
500 without any detail. No stack trace ever reaches the client.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import attrs
import cattrs
import structlog
from cattrs.v import format_exception

from mailblast.domain.campaign import Campaign, CampaignStatus
from mailblast.domain.errors import (
    ConcurrentUpdateError,
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
)
from mailblast.domain.recipient import Recipient, RecipientStatus, Tally
from mailblast.entrypoints.aws.compose import LambdaContext, invoke
from mailblast.services import campaigns, importing
from mailblast.services.campaigns import CampaignEdit, NewCampaign
from mailblast.services.deps import Deps

__all__ = ["MAX_PAGE", "Response", "api_converter", "handler"]

log = structlog.get_logger("mailblast.api")

#: The most items one page of a list returns.
MAX_PAGE = 500
_DEFAULT_CAMPAIGNS = 50
_DEFAULT_RECIPIENTS = 100

Response = dict[str, Any]


# --- the boundary's converter --------------------------------------------------------


class _FieldError(ValueError):
    """A reason written for a person, shown as it is."""


def _structure_str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise _FieldError("must be a string")
    if "\x00" in value:
        raise _FieldError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _FieldError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _structure_datetime(value: object, _: object) -> datetime:
    example = "e.g. 2026-12-24T09:00:00+09:00"
    if not isinstance(value, str):
        raise _FieldError(f"must be an ISO 8601 date-time string, {example}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _FieldError(f"must be an ISO 8601 date-time, {example}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _FieldError(f"must carry a UTC offset, {example}")
    return parsed


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(datetime, _structure_datetime)
    return converter


#: The one converter of the API boundary.
api_converter = _make_converter()


def _format(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, _FieldError):
        return str(exc)
    return format_exception(exc, type_)


def _field(path: str) -> str:
    field = path.removeprefix("$").removeprefix(".")
    return field or "(body)"


def _paths(exc: Exception) -> dict[str, str]:
    if isinstance(exc, cattrs.BaseValidationError):
        paths: dict[str, str] = {}
        for message in cattrs.transform_error(exc, path="$", format_exception=_format):
            reason, _, path = message.partition(" @ ")
            paths[_field(path)] = reason
        return paths
    return {"(body)": str(exc)}


def _structure(body: object, cls: type[Any]) -> Any:
    try:
        return api_converter.structure(body, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise InvalidInputError(_paths(exc)) from None


# --- responses -----------------------------------------------------------------------


def _json(status: int, body: object, headers: Mapping[str, str] | None = None) -> Response:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    }


def problem(status: int, title: str, detail: str, **extra: object) -> Response:
    """An ``application/problem+json`` response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/problem+json"},
        "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    }


def _invalid(errors: Mapping[str, str]) -> Response:
    return problem(
        400,
        "Invalid request",
        "; ".join(f"{field}: {reason}" for field, reason in errors.items()),
        errors=[{"field": field, "reason": reason} for field, reason in errors.items()],
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _campaign_view(
    campaign: Campaign, counts: Mapping[RecipientStatus, int] | None = None
) -> dict[str, Any]:
    total = campaign.total_count
    if counts is not None:
        tally = Tally.of(counts)
        sent, failed, bounced, pending = tally.sent, tally.failed, tally.bounced, tally.pending
    else:
        sent, failed, bounced = campaign.sent_count, campaign.failed_count, campaign.bounced_count
        pending = max(0, total - sent - failed)
    return {
        "id": str(campaign.id),
        "name": campaign.name,
        "from_address": campaign.from_address,
        "subject": campaign.content.subject,
        "text": campaign.content.text,
        "html": campaign.content.html,
        "scheduled_at": campaign.scheduled_at.isoformat(),
        "status": campaign.status.value,
        "status_label": campaign.status.label,
        "total_count": total,
        "sent_count": sent,
        "failed_count": failed,
        "bounced_count": bounced,
        "pending_count": pending,
        "progress": round((total - pending) / total, 4) if total else 0.0,
        "last_error": campaign.last_error,
        "version": campaign.version,
        "created_at": campaign.created_at.isoformat(),
        "updated_at": campaign.updated_at.isoformat(),
    }


def _campaign_summary(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": str(campaign.id),
        "name": campaign.name,
        "status": campaign.status.value,
        "status_label": campaign.status.label,
        "scheduled_at": campaign.scheduled_at.isoformat(),
        "total_count": campaign.total_count,
        "created_at": campaign.created_at.isoformat(),
    }


def _recipient_view(recipient: Recipient) -> dict[str, Any]:
    return {
        "id": recipient.id,
        "email": recipient.email,
        "status": recipient.status.value,
        "status_label": recipient.status.label,
        "message_id": recipient.message_id,
        "error": recipient.error,
        "updated_at": _iso(recipient.updated_at),
    }


# --- the request ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Request:
    method: str
    route: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: str | None


_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("/presigned-url", re.compile(r"^/presigned-url/?$")),
    ("/campaigns", re.compile(r"^/campaigns/?$")),
    ("/campaigns/{id}", re.compile(r"^/campaigns/(?P<id>[^/]+)/?$")),
    ("/campaigns/{id}/recipients", re.compile(r"^/campaigns/(?P<id>[^/]+)/recipients/?$")),
    ("/campaigns/{id}/report", re.compile(r"^/campaigns/(?P<id>[^/]+)/report/?$")),
)


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _request(event: Mapping[str, Any]) -> _Request | None:
    method = str(event.get("httpMethod") or "GET").upper()
    resource = event.get("resource")
    params = _strings(event.get("pathParameters"))
    route: str | None = None
    if isinstance(resource, str) and any(resource == name for name, _ in _ROUTES):
        route = resource
    else:
        path = str(event.get("path") or "/")
        for name, pattern in _ROUTES:
            match = pattern.match(path)
            if match:
                route, params = name, {**params, **match.groupdict()}
                break
    if route is None:
        return None
    body = event.get("body")
    if isinstance(body, str) and event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidInputError({"(body)": "not valid base64-encoded UTF-8"}) from None
    return _Request(
        method=method,
        route=route,
        params=params,
        query=_strings(event.get("queryStringParameters")),
        body=body if isinstance(body, str) else None,
    )


def _json_body(request: _Request) -> object:
    if not request.body:
        raise InvalidInputError({"(body)": "a JSON object is required"})
    try:
        data = json.loads(request.body)
    except ValueError as exc:
        raise InvalidInputError({"(body)": f"not valid JSON: {exc}"}) from None
    if not isinstance(data, dict):
        raise InvalidInputError({"(body)": "must be a JSON object"})
    return data


class _UnknownCampaignError(NotFoundError):
    def __init__(self, raw: str) -> None:
        super().__init__(f"campaign {raw} does not exist")


def _campaign_id(request: _Request) -> uuid.UUID:
    raw = request.params.get("id", "")
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise _UnknownCampaignError(raw) from None


def _limit(request: _Request, default: int) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidInputError({"limit": f"must be a whole number from 1 to {MAX_PAGE}"})
    return int(raw)


def _encode_cursor(value: object) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(raw: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidInputError({"cursor": "not a cursor this API returned"}) from None


# --- the routes ----------------------------------------------------------------------


async def _presigned_url(deps: Deps, _: _Request) -> Response:
    upload = await campaigns.presign_upload(deps)
    return _json(
        200,
        {
            "s3_key": upload.s3_key,
            "presigned_url": upload.url,
            "expires_at": upload.expires_at.isoformat(),
        },
    )


async def _register(deps: Deps, request: _Request) -> Response:
    new = _structure(_json_body(request), NewCampaign)
    campaign = await campaigns.register(deps, new)
    return _json(
        201,
        {"campaign_id": str(campaign.id), "status": campaign.status.value},
        {"Location": f"/campaigns/{campaign.id}"},
    )


async def _list_campaigns(deps: Deps, request: _Request) -> Response:
    limit = _limit(request, _DEFAULT_CAMPAIGNS)
    before: tuple[datetime, uuid.UUID] | None = None
    if "cursor" in request.query:
        value = _decode_cursor(request.query["cursor"])
        try:
            before = (datetime.fromisoformat(value[0]), uuid.UUID(value[1]))
        except (TypeError, ValueError, IndexError, KeyError):
            raise InvalidInputError({"cursor": "not a cursor this API returned"}) from None
    page = await deps.campaigns.list_page(limit=limit + 1, before=before)
    items, more = page[:limit], len(page) > limit
    cursor = _encode_cursor([items[-1].created_at.isoformat(), str(items[-1].id)]) if more else None
    return _json(200, {"items": [_campaign_summary(c) for c in items], "next_cursor": cursor})


async def _get_campaign(deps: Deps, request: _Request) -> Response:
    campaign = await campaigns.get(deps, _campaign_id(request))
    counts = None
    if campaign.status is CampaignStatus.SENDING and campaign.current_import_id is not None:
        counts = await deps.recipients.count_by_status(campaign.id, campaign.current_import_id)
    return _json(200, _campaign_view(campaign, counts))


async def _edit_campaign(deps: Deps, request: _Request) -> Response:
    campaign_id = _campaign_id(request)
    edit = _structure(_json_body(request), CampaignEdit)
    campaign = await campaigns.edit(deps, campaign_id, edit)
    return _json(200, _campaign_view(campaign))


async def _list_recipients(deps: Deps, request: _Request) -> Response:
    campaign = await campaigns.get(deps, _campaign_id(request))
    limit = _limit(request, _DEFAULT_RECIPIENTS)
    status: RecipientStatus | None = None
    if request.query.get("status"):
        try:
            status = RecipientStatus(request.query["status"])
        except ValueError:
            choices = ", ".join(s.value for s in RecipientStatus)
            raise InvalidInputError({"status": f"must be one of {choices}"}) from None
    after: int | None = None
    if "cursor" in request.query:
        value = _decode_cursor(request.query["cursor"])
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise InvalidInputError({"cursor": "not a cursor this API returned"})
        after = value
    if campaign.current_import_id is None:
        return _json(200, {"items": [], "next_cursor": None})
    page = await deps.recipients.list_page(
        campaign.id, campaign.current_import_id, limit=limit + 1, status=status, after_id=after
    )
    items, more = page[:limit], len(page) > limit
    cursor = _encode_cursor(items[-1].id) if more else None
    return _json(200, {"items": [_recipient_view(r) for r in items], "next_cursor": cursor})


def _latest_import(campaign: Campaign) -> uuid.UUID | None:
    name = campaign.import_execution_id or ""
    try:
        return uuid.UUID(name.removeprefix("import-"))
    except ValueError:
        return campaign.pending_import_id or campaign.current_import_id


async def _report(deps: Deps, request: _Request) -> Response:
    campaign = await campaigns.get(deps, _campaign_id(request))
    import_id = _latest_import(campaign)
    if import_id is None:
        return problem(404, "Not Found", "this campaign has no import yet")
    data = await importing.read_report(deps, campaign.id, import_id)
    return {
        "statusCode": 200,
        "headers": {
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="rejected-{campaign.id}.csv"',
        },
        "body": data.decode("utf-8"),
    }


_Handler = Callable[[Deps, _Request], Awaitable[Response]]

_TABLE: Mapping[str, Mapping[str, _Handler]] = {
    "/presigned-url": {"GET": _presigned_url},
    "/campaigns": {"GET": _list_campaigns, "POST": _register},
    "/campaigns/{id}": {"GET": _get_campaign, "PUT": _edit_campaign},
    "/campaigns/{id}/recipients": {"GET": _list_recipients},
    "/campaigns/{id}/report": {"GET": _report},
}


async def _route(deps: Deps, event: Mapping[str, Any]) -> Response:
    request = _request(event)
    if request is None:
        return problem(404, "Not Found", "no such resource")
    methods = _TABLE[request.route]
    route = methods.get(request.method)
    if route is None:
        response = problem(
            405, "Method Not Allowed", f"{request.method} is not allowed on {request.route}"
        )
        response["headers"]["Allow"] = ", ".join(sorted(methods))
        return response
    structlog.contextvars.bind_contextvars(route=f"{request.method} {request.route}")
    return await route(deps, request)


def _error_response(exc: Exception) -> Response:
    match exc:
        case InvalidInputError():
            return _invalid(exc.errors)
        case NotFoundError():
            return problem(404, "Not Found", str(exc))
        case InvalidTransitionError():
            return problem(409, "Conflict", str(exc), current_status=exc.current)
        case ConcurrentUpdateError():
            return problem(409, "Conflict", "the campaign changed meanwhile; read it and retry")
    log.error("mailblast.api.failed", exc_info=exc)
    return problem(500, "Internal Server Error", "the request could not be completed")


async def _dispatch(deps: Deps, event: Mapping[str, Any]) -> Response:
    try:
        return await _route(deps, event)
    except Exception as exc:
        return _error_response(exc)


def handler(event: Mapping[str, Any], context: LambdaContext | None = None) -> Response:
    """Answer one API Gateway proxy (REST, payload 1.0) event."""
    if not isinstance(event, Mapping):
        return problem(400, "Bad Request", "not an API Gateway event")
    bind: dict[str, str] = {}
    ctx = event.get("requestContext")
    if isinstance(ctx, Mapping) and ctx.get("requestId"):
        bind["api_request_id"] = str(ctx["requestId"])
    return invoke(lambda deps: _dispatch(deps, event), function="api", context=context, **bind)
