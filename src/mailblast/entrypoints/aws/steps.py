"""Lambda handlers for the workflow steps, one per Task state of the two state machines
(``infra/statemachines/*.asl.json``).

Each takes the small JSON document its state passes (ids, a chunk key, a page range)
and returns a small one; errors leave as exceptions, which Step Functions sees under the
exception's class name (``StaleImportError``, ``StaleExecutionError``, ``CsvFileError``,
``TransientError``...), so the state machines catch and retry them by name.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import cattrs

from mailblast.domain.batching import PageRange, poll_wait_seconds
from mailblast.domain.errors import InvalidInputError
from mailblast.entrypoints.aws.compose import LambdaContext, container, invoke
from mailblast.ports.codec import error_paths
from mailblast.services import importing, sending
from mailblast.services.deps import Deps

__all__ = [
    "failure_reason",
    "import_discard",
    "import_fail",
    "import_finalize",
    "import_insert_chunk",
    "import_schedule_send",
    "import_split",
    "send_begin",
    "send_count_pending",
    "send_enqueue_page",
    "send_fail",
    "send_finalize",
    "send_plan_pages",
]

Event = Mapping[str, Any]

_steps = cattrs.Converter()
_steps.register_structure_hook(uuid.UUID, lambda value, _: uuid.UUID(str(value)))


def _field(event: Event, name: str) -> Any:
    if not isinstance(event, Mapping) or name not in event:
        raise InvalidInputError({f"$.{name}": "required field missing"})
    return event[name]


def _uuid(event: Event, name: str) -> uuid.UUID:
    value = _field(event, name)
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInputError({f"$.{name}": "must be a UUID"}) from None


def _str(event: Event, name: str) -> str:
    value = _field(event, name)
    if not isinstance(value, str) or not value:
        raise InvalidInputError({f"$.{name}": "must be a non-empty string"})
    return value


def _page(event: Event) -> PageRange:
    try:
        return _steps.structure(_field(event, "page"), PageRange)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise InvalidInputError(error_paths(exc, root="$.page")) from exc


def failure_reason(error: object, *, step: str) -> str:
    """A reason a person understands from a Catch's ``{Error, Cause}``: the message of a
    `CsvFileError` as it is, anything else named but not detailed (an internal error's
    message is for the logs, not for staff)."""
    if not isinstance(error, Mapping):
        return f"the {step} stopped on an internal error"
    name = str(error.get("Error") or "Unknown")
    cause: Any = error.get("Cause")
    try:
        cause = json.loads(cause) if isinstance(cause, str) else cause
    except ValueError:
        cause = None
    message = cause.get("errorMessage") if isinstance(cause, Mapping) else None
    if name == "CsvFileError" and isinstance(message, str) and message:
        return message
    if name.startswith("States."):
        return f"the {step} stopped: {name}"
    return f"the {step} stopped on an internal error ({name})"


# --- the import workflow -------------------------------------------------------------


def _import_ids(event: Event) -> tuple[uuid.UUID, uuid.UUID]:
    return _uuid(event, "campaign_id"), _uuid(event, "import_id")


def _bind(event: Event) -> dict[str, str]:
    if not isinstance(event, Mapping):
        return {}
    return {k: str(event[k]) for k in ("campaign_id", "import_id") if k in event}


def import_split(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """Split: validate the CSV and write chunks; ``{chunk_keys, accepted, rejected}``."""
    campaign_id, import_id = _import_ids(event)

    async def work(deps: Deps) -> dict[str, Any]:
        result = await importing.split(deps, campaign_id, import_id)
        return {
            "chunk_keys": result.chunk_keys,
            "accepted": result.accepted,
            "rejected": result.rejected,
        }

    return invoke(work, function="import_split", context=context, **_bind(event))


def import_insert_chunk(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """Insert one chunk (one Map iteration); ``{inserted}``."""
    campaign_id, import_id = _import_ids(event)
    key = _str(event, "chunk_key")

    async def work(deps: Deps) -> dict[str, Any]:
        return {"inserted": await importing.insert_chunk(deps, campaign_id, import_id, key)}

    return invoke(work, function="import_insert_chunk", context=context, **_bind(event))


def import_finalize(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """The swap; ``{status, total_count}``."""
    campaign_id, import_id = _import_ids(event)

    async def work(deps: Deps) -> dict[str, Any]:
        campaign = await importing.finalize(deps, campaign_id, import_id)
        return {"status": campaign.status.value, "total_count": campaign.total_count}

    return invoke(work, function="import_finalize", context=context, **_bind(event))


def import_schedule_send(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """Start the send workflow the campaign points at; ``{execution_id}`` (null when the
    campaign moved on)."""
    campaign_id, import_id = _import_ids(event)

    async def work(deps: Deps) -> dict[str, Any]:
        return {"execution_id": await importing.schedule_send(deps, campaign_id, import_id)}

    return invoke(work, function="import_schedule_send", context=context, **_bind(event))


def import_discard(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """A stale import: remove what it wrote; ``{discarded}``."""
    campaign_id, import_id = _import_ids(event)

    async def work(deps: Deps) -> dict[str, Any]:
        return {"discarded": await importing.discard_stale(deps, campaign_id, import_id)}

    return invoke(work, function="import_discard", context=context, **_bind(event))


def import_fail(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """The import failed (``error`` is the Catch's ``{Error, Cause}``): ``import_failed``
    with the reason; ``{status, reason}``."""
    campaign_id, import_id = _import_ids(event)
    reason = failure_reason(event.get("error"), step="import")

    async def work(deps: Deps) -> dict[str, Any]:
        campaign = await importing.fail(deps, campaign_id, import_id, reason)
        return {"status": campaign.status.value, "reason": reason}

    return invoke(work, function="import_fail", context=context, **_bind(event))


# --- the send workflow ---------------------------------------------------------------


def send_begin(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """``scheduled`` -> ``sending`` for the current execution; raises
    `StaleExecutionError` for any other (the state machine then ends quietly)."""
    campaign_id = _uuid(event, "campaign_id")
    execution_id = _str(event, "execution_id")

    async def work(deps: Deps) -> dict[str, Any]:
        campaign = await sending.begin(deps, campaign_id, execution_id)
        return {"status": campaign.status.value, "total_count": campaign.total_count}

    return invoke(work, function="send_begin", context=context, **_bind(event))


def send_plan_pages(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """Keyset page ranges of the pending recipients; ``{pages: [{first_id, last_id}]}``."""
    campaign_id = _uuid(event, "campaign_id")

    async def work(deps: Deps) -> dict[str, Any]:
        pages = await sending.plan_pages(deps, campaign_id)
        return {"pages": [{"first_id": p.first_id, "last_id": p.last_id} for p in pages]}

    return invoke(work, function="send_plan_pages", context=context, **_bind(event))


def send_enqueue_page(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """Queue one page's recipients in messages of at most 50; ``{queued}``."""
    campaign_id = _uuid(event, "campaign_id")
    page = _page(event)

    async def work(deps: Deps) -> dict[str, Any]:
        return {"queued": await sending.enqueue_page(deps, campaign_id, page)}

    return invoke(work, function="send_enqueue_page", context=context, **_bind(event))


def send_count_pending(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """Recipients still pending and how long to wait before counting again;
    ``{pending, wait_seconds}``."""
    campaign_id = _uuid(event, "campaign_id")
    base = container().settings.poll_seconds
    previous_pending = event.get("previous_pending", -1)
    previous_wait = event.get("previous_wait_seconds", 0)
    if not isinstance(previous_pending, int) or not isinstance(previous_wait, int | float):
        raise InvalidInputError({"previous_pending": "must be a number"})

    async def work(deps: Deps) -> dict[str, Any]:
        pending = await sending.count_pending(deps, campaign_id)
        wait = poll_wait_seconds(pending, previous_pending, previous_wait, base=base)
        return {"pending": pending, "wait_seconds": int(wait)}

    return invoke(work, function="send_count_pending", context=context, **_bind(event))


def send_finalize(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """``completed`` with the counts; ``{status, sent_count, failed_count}``."""
    campaign_id = _uuid(event, "campaign_id")

    async def work(deps: Deps) -> dict[str, Any]:
        campaign = await sending.finalize(deps, campaign_id)
        return {
            "status": campaign.status.value,
            "sent_count": campaign.sent_count,
            "failed_count": campaign.failed_count,
        }

    return invoke(work, function="send_finalize", context=context, **_bind(event))


def send_fail(event: Event, context: LambdaContext | None = None) -> dict[str, Any]:
    """The send workflow failed (``error`` is the Catch's ``{Error, Cause}``):
    ``send_failed`` with the reason, unless the execution is stale; ``{status, reason}``."""
    campaign_id = _uuid(event, "campaign_id")
    execution_id = _str(event, "execution_id")
    reason = failure_reason(event.get("error"), step="send workflow")

    async def work(deps: Deps) -> dict[str, Any]:
        campaign = await sending.fail(deps, campaign_id, execution_id, reason)
        return {"status": campaign.status.value, "reason": reason}

    return invoke(work, function="send_fail", context=context, **_bind(event))
