"""``mailblast csv-check PATH [--json]``: check a recipient CSV the way an import would.

The file goes through the same ``CsvIntake`` as an import, in 1 MiB chunks, so what this
command says is what the import will do: which encoding, how many rows, which rows are
rejected and why, which merge fields the template may use.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import IO, TextIO

import attrs

from mailblast.domain.errors import CsvFileError
from mailblast.domain.intake import CsvIntake, IntakeRow, RejectedRow

__all__ = ["run_csv_check"]

CHUNK_SIZE = 1024 * 1024
SHOWN_REJECTIONS = 20
EXIT_OK = 0
EXIT_NOT_IMPORTABLE = 2

_ENCODING_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "cp932": "Shift_JIS (CP932)",
}


@attrs.define
class _Check:
    """What reading the file found; rejected rows wait in a spool, not in memory."""

    spool: IO[str] | None
    """Every rejected row as a JSON line, for the JSON report; None in human mode."""
    encoding: str | None = None
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    fields: tuple[str, ...] = ()
    error: str | None = None
    unreadable: bool = False
    shown: list[RejectedRow] = attrs.Factory(list)

    def take(self, rows: list[IntakeRow]) -> None:
        for row in rows:
            if isinstance(row, RejectedRow):
                if len(self.shown) < SHOWN_REJECTIONS:
                    self.shown.append(row)
                if self.spool is not None:
                    entry = {"line": row.line, "email": row.email, "reason": row.reason}
                    self.spool.write(json.dumps(entry) + "\n")


def run_csv_check(path: str, *, as_json: bool, out: TextIO, err: TextIO | None = None) -> int:
    """Check the CSV file at ``path``; print a report to ``out``; return the exit code.

    0 when the file is importable, 2 when it is not (the reason goes to ``err``,
    stderr by default, in one line; with ``as_json`` it is in the JSON object instead).
    """
    err = sys.stderr if err is None else err
    # Rejected rows can be millions: they are spooled to a temporary file (in memory up
    # to a few MiB) and copied into the report at the end.
    with tempfile.SpooledTemporaryFile(
        max_size=4 * CHUNK_SIZE, mode="w+", encoding="utf-8"
    ) as spool:
        check = _Check(spool if as_json else None)
        _read(path, check)
        if as_json:
            _print_json(check, out)
        else:
            if not check.unreadable:
                _print_human(path, check, out)
            if check.error is not None:
                print(f"csv-check: {path}: not importable: {check.error}", file=err)
    return EXIT_OK if check.error is None else EXIT_NOT_IMPORTABLE


def _read(path: str, check: _Check) -> None:
    try:
        with open(path, "rb") as file:
            intake = CsvIntake(expected_bytes=os.fstat(file.fileno()).st_size)
            try:
                while chunk := file.read(CHUNK_SIZE):
                    check.take(intake.feed(chunk))
                check.take(intake.flush())
                intake.finish()
            except CsvFileError as exc:
                check.error = exc.reason
            finally:
                check.encoding = intake.encoding
                check.rows = intake.rows
                check.accepted = intake.accepted
                check.rejected = intake.rejected
                check.fields = intake.fields
    except OSError as exc:
        check.error = f"cannot read the file: {exc.strerror or exc}"
        check.unreadable = True


def _print_json(check: _Check, out: TextIO) -> None:
    head = {
        "importable": check.error is None,
        "error": check.error,
        "encoding": check.encoding or "unknown",
        "rows": check.rows,
        "accepted": check.accepted,
    }
    # One JSON object, written in pieces so that the rejected rows stream from the spool.
    out.write(json.dumps(head)[:-1] + ', "rejected": [')
    assert check.spool is not None
    check.spool.seek(0)
    for n, line in enumerate(check.spool):
        out.write((", " if n else "") + line.rstrip("\n"))
    out.write('], "fields": ' + json.dumps(list(check.fields)) + "}\n")


def _print_human(path: str, check: _Check, out: TextIO) -> None:
    def show(label: str, value: object) -> None:
        print(f"{label:<14}{value}", file=out)

    show("file", path)
    show("encoding", _ENCODING_NAMES.get(check.encoding or "", "unknown"))
    show("rows", f"{check.rows:,}")
    show("accepted", f"{check.accepted:,}")
    show("rejected", f"{check.rejected:,}")
    show("merge fields", ", ".join(f"{{{{{name}}}}}" for name in check.fields) or "(none)")
    if check.shown:
        more = check.rejected - len(check.shown)
        title = "rejected rows" + (f" (the first {len(check.shown)})" if more > 0 else "")
        print(f"{title}:", file=out)
        for row in check.shown:
            email = f" {row.email!r}" if row.email else ""
            print(f"  line {row.line}:{email} {row.reason}", file=out)
        if more > 0:
            print(f"  ... and {more:,} more (--json lists them all)", file=out)
    show("result", "importable" if check.error is None else f"NOT importable: {check.error}")
