"""The import chunk format: what the split step writes and the insert step stores.

One CSV line per recipient, ``email,"{json of the merge fields}"`` (UTF-8, LF). It is
chosen so that a database can COPY a chunk as it is, with no per-row work in Python:
validated addresses never contain a comma, a quote or a line break, and JSON text never
contains a raw line break (it writes ``\\n``), so the only escaping is CSV's doubled
quote. Every CSV reader reads it back.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring

from mailblast.domain.recipient import NewRecipient

__all__ = ["ChunkEncoder", "decode_chunk", "encode_chunk"]


class ChunkEncoder:
    """Encodes rows into chunk lines.

    Every row of one CSV has the same columns in the same order, so the JSON keys are
    encoded once into a template and each row only encodes its values.
    """

    def __init__(self) -> None:
        self._keys: tuple[str, ...] | None = None
        self._template = ""

    def _fields(self, fields: Mapping[str, str]) -> str:
        keys = tuple(fields)
        if keys != self._keys:
            self._keys = keys
            encoded = (encode_basestring(k).replace("{", "{{").replace("}", "}}") for k in keys)
            self._template = "{{" + ",".join(f"{key}:{{}}" for key in encoded) + "}}"
        return self._template.format(*map(encode_basestring, fields.values()))

    def line(self, email: str, fields: Mapping[str, str]) -> str:
        """One recipient's line."""
        if any(c in email for c in ',"\r\n'):
            msg = "a chunk address cannot contain a comma, a quote or a line break"
            raise ValueError(msg)
        return f'{email},"{self._fields(fields).replace(chr(34), chr(34) * 2)}"\n'

    def encode(self, rows: Iterable[tuple[str, Mapping[str, str]]]) -> bytes:
        """A whole chunk."""
        return "".join([self.line(email, fields) for email, fields in rows]).encode()


def encode_chunk(rows: Iterable[tuple[str, Mapping[str, str]]]) -> bytes:
    """A whole chunk from (email, fields) pairs."""
    return ChunkEncoder().encode(rows)


def decode_chunk(data: bytes) -> list[NewRecipient]:
    """The rows of a chunk."""
    reader = csv.reader(io.StringIO(data.decode()), strict=True)
    return [NewRecipient(email, json.loads(fields)) for email, fields in reader]
