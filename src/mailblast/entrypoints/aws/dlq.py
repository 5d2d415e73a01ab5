"""The dead-letter queue handler: a batch that failed three times fails its recipients.

Each still-pending recipient of the message is marked ``failed`` (reason
``dead_letter``), so the send workflow's poll loop sees nothing pending and completes. A
body that cannot be read is logged and dropped: no recipient can be named from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from mailblast.domain.errors import InvalidInputError
from mailblast.entrypoints.aws.compose import LambdaContext, invoke
from mailblast.entrypoints.aws.sender import records
from mailblast.ports.codec import decode_batch
from mailblast.services import sending
from mailblast.services.deps import Deps

__all__ = ["DEAD_LETTER_REASON", "handler"]

log = structlog.get_logger("mailblast.lambda")

#: The error stored on recipients whose batch ended in the dead-letter queue.
DEAD_LETTER_REASON = "dead_letter"


def handler(event: Mapping[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    """Fail the pending recipients of each dead-lettered batch; records that could not
    be handled now (the database is down) are returned as ``batchItemFailures``."""

    async def work(deps: Deps) -> dict[str, Any]:
        failures: list[dict[str, str]] = []
        for index, record in enumerate(records(event)):
            message_id = str(record.get("messageId") or f"record-{index}")
            try:
                message = decode_batch(str(record.get("body", "")))
            except InvalidInputError as exc:
                log.error("mailblast.dead_letter.dropped", message_id=message_id, errors=exc.errors)
                continue
            try:
                await sending.handle_dead_letter(deps, message, reason=DEAD_LETTER_REASON)
            except Exception:
                log.exception("mailblast.dead_letter.failed", message_id=message_id)
                failures.append({"itemIdentifier": message_id})
        return {"batchItemFailures": failures}

    return invoke(work, function="dlq", context=context)
