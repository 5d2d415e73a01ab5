"""The wire format of port payloads (queue messages), one cattrs converter for it.

Real queues carry bytes; the fake round-trips through the same codec so a message that
would not survive SQS does not survive the fake either.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn

from mailblast.domain.batching import MAX_QUEUE_MESSAGE_BYTES, BatchMessage
from mailblast.domain.errors import InvalidInputError

__all__ = ["decode_batch", "encode_batch", "error_paths", "wire"]

wire = cattrs.Converter(forbid_extra_keys=True)
wire.register_structure_hook(uuid.UUID, lambda value, _: uuid.UUID(str(value)))
wire.register_unstructure_hook(uuid.UUID, str)
wire.register_structure_hook(
    BatchMessage, make_dict_structure_fn(BatchMessage, wire, _cattrs_forbid_extra_keys=True)
)


def error_paths(exc: Exception, *, root: str = "$") -> dict[str, str]:
    """Field path -> reason for a cattrs error, for messages a person can read."""
    if isinstance(exc, cattrs.BaseValidationError):
        paths: dict[str, str] = {}
        for message in cattrs.transform_error(exc, path=root):
            reason, _, path = message.partition(" @ ")
            paths[path or root] = reason
        return paths
    return {root: str(exc)}


def encode_batch(message: BatchMessage) -> str:
    """The JSON body of a queue message; refuses one over the SQS size limit."""
    body = json.dumps(wire.unstructure(message), separators=(",", ":"))
    if len(body.encode()) > MAX_QUEUE_MESSAGE_BYTES:
        msg = f"queue message of {len(body)} bytes exceeds {MAX_QUEUE_MESSAGE_BYTES}"
        raise ValueError(msg)
    return body


def decode_batch(body: str | bytes) -> BatchMessage:
    """Parse a queue message body; `InvalidInputError` with field paths if malformed."""
    try:
        data: Any = json.loads(body)
        if not isinstance(data, dict):
            raise InvalidInputError({"$": "must be a JSON object"})
        return wire.structure(data, BatchMessage)
    except json.JSONDecodeError as exc:
        raise InvalidInputError({"$": f"not JSON: {exc.msg}"}) from exc
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise InvalidInputError(error_paths(exc)) from exc
