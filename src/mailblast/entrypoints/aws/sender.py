"""The SQS-triggered sender: one `sending.send_batch` per record, partial batch responses.

The event source mapping has ``FunctionResponseTypes: [ReportBatchItemFailures]``: only
the records named in ``batchItemFailures`` return to the queue (and, after three
receives, to the dead-letter queue). A record whose body cannot be read is reported,
never allowed to crash the whole batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from mailblast.domain.errors import InvalidInputError
from mailblast.entrypoints.aws.compose import LambdaContext, invoke
from mailblast.ports.codec import decode_batch
from mailblast.services import sending
from mailblast.services.deps import Deps

__all__ = ["handler", "records"]

log = structlog.get_logger("mailblast.lambda")


def records(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The SQS records of an event (an empty list for anything else)."""
    found = event.get("Records") if isinstance(event, Mapping) else None
    return [r for r in found if isinstance(r, Mapping)] if isinstance(found, list) else []


def _message_id(record: Mapping[str, Any], index: int) -> str:
    value = record.get("messageId")
    return value if isinstance(value, str) and value else f"record-{index}"


def handler(event: Mapping[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    """Send each record's batch; ``{"batchItemFailures": [{"itemIdentifier": id}]}``
    names the records that failed (malformed ones included)."""

    async def work(deps: Deps) -> dict[str, Any]:
        failures: list[dict[str, str]] = []
        for index, record in enumerate(records(event)):
            message_id = _message_id(record, index)
            try:
                message = decode_batch(str(record.get("body", "")))
            except InvalidInputError as exc:
                log.error("mailblast.batch.malformed", message_id=message_id, errors=exc.errors)
                failures.append({"itemIdentifier": message_id})
                continue
            try:
                await sending.send_batch(deps, message)
            except Exception:
                log.exception("mailblast.batch.failed", message_id=message_id)
                failures.append({"itemIdentifier": message_id})
        return {"batchItemFailures": failures}

    return invoke(work, function="sender", context=context)
