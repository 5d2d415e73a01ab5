"""Streaming CSV intake: bytes in, validated and de-duplicated recipient rows out.

The import reads a recipient list of up to millions of rows from S3 (or a local file)
and must keep memory flat, so the intake is *push*-based: the caller hands over byte
chunks as they arrive (an async S3 stream works as well as a file) and gets back the
rows each chunk completed. Nothing here does I/O.

What a file must look like (DESIGN.md section 5):

- a header row; the address column is ``email`` (any case, surrounding spaces ignored) or
  ``メールアドレス``; every other named column becomes a merge field;
- delimiter ``,``, ``;`` or tab, detected from the header (Excel in some locales, and
  Keila's export, use ``;``);
- UTF-8, UTF-8 with a BOM, or CP932 (Shift_JIS as Excel saves it in Japan), detected
  from the bytes; CRLF or LF line ends; quoted fields may hold delimiters and newlines.

A row with a bad or missing address, a repeated address (case-insensitive) or the wrong
number of columns is rejected with its line number and a reason; the import goes on. A
file that cannot be imported at all raises ``CsvFileError`` with a reason for a person and
a short ``code``.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, compress
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from mailblast.domain.addresses import dedupe_key, mask_email, normalize_address
from mailblast.domain.errors import CsvFileError, InvalidAddressError

if TYPE_CHECKING:
    from _csv import Reader as _Reader

__all__ = [
    "DEFAULT_LIMITS",
    "AcceptedRow",
    "CsvIntake",
    "IntakeLimits",
    "IntakeRow",
    "RejectedRow",
    "intake_file",
]


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        msg = f"{attribute.name} must be positive, not {value}"
        raise ValueError(msg)


@attrs.frozen(kw_only=True)
class IntakeLimits:
    """How much one file may hold before the whole import is refused."""

    max_bytes: int = attrs.field(default=1024 * 1024 * 1024, validator=_positive)
    max_rows: int = attrs.field(default=2_000_000, validator=_positive)
    """Data rows, the header excluded; blank lines do not count."""


DEFAULT_LIMITS: Final = IntakeLimits()


def _redact_fields(fields: dict[str, str]) -> str:
    # Merge fields hold names and the like: a repr shows which columns, never the values.
    return f"<{len(fields)} fields: {', '.join(fields)}>"


@attrs.frozen
class AcceptedRow:
    """A row that will become a recipient."""

    line: int
    """Physical line where the record starts (the header is line 1)."""
    email: str = attrs.field(repr=mask_email)
    """The address as it will be sent (see ``normalize_address``)."""
    fields: dict[str, str] = attrs.field(repr=_redact_fields)
    """Every other named column: header name -> value as written."""


@attrs.frozen
class RejectedRow:
    """A row left out of the import, with the reason a person reads in the report."""

    line: int
    email: str = attrs.field(repr=mask_email)
    """The address cell as written in the file ("" when there is none)."""
    reason: str


IntakeRow: TypeAlias = AcceptedRow | RejectedRow

# --- encodings ---------------------------------------------------------------------

_BOM_UTF8: Final = codecs.BOM_UTF8
# Enough bytes after the first non-ASCII byte to tell UTF-8 from CP932: Japanese text in
# CP932 is invalid UTF-8 within a character or two (its lead bytes 0x81-0x9F are UTF-8
# continuation bytes), and a window of this size makes an accidental UTF-8-valid run of
# half-width katakana practically impossible.
_SNIFF_WINDOW: Final = 4096
_NON_ASCII: Final = re.compile(rb"[\x80-\xff]")
_ENCODING_LABELS: Final = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "cp932": "Shift_JIS (CP932)"}

# --- records -----------------------------------------------------------------------

# The longest unfinished text kept while waiting for a record's end. Past it the file is
# refused: a file that is not line-based text would otherwise be held in memory whole.
# (An unclosed quote cannot get this far: csv.reader refuses a field over 128 Ki chars.)
_MAX_RECORD_CHARS: Final = 1024 * 1024
_SIZE_SAMPLE_ROWS: Final = 1000  # rows read before the table is sized from expected_bytes
_DELIMITERS: Final = (",", ";", "\t")
_QUOTED: Final = re.compile(r'"[^"]*"')
_ADDRESS_COLUMNS: Final = frozenset({"email", "メールアドレス"})
_BLANK: Final = ""  # the "reason" of a record that is a blank line: skipped, not a row
_STRAY_QUOTE: Final = (
    'malformed row: a field with a " in it must be enclosed in quotes as a whole, '
    'with each " in it doubled'
)


def _record_pattern(delimiter: str) -> re.Pattern[str]:
    """A record whose quotes are all RFC 4180 quoting (the quote opens the field).

    Python's csv reader reads a quote in the middle of an unquoted field (``a, "b"``) as
    a literal character, so such a record parses, but not as the person meant: rows with
    quotes are checked against this pattern and rejected with a reason when they fail.
    """
    d = re.escape(delimiter)
    field = rf'(?:"(?:[^"]|"")*"|[^"{d}\r\n]*)'
    return re.compile(rf"{field}(?:{d}{field})*\r?\n?")


class _EndOfChunk(Exception):
    """Raised into csv.reader when the lines of the current chunk run out."""


class _ChunkEnd:
    """Iterator that ends a chunk's lines by raising ``_EndOfChunk`` into csv.reader.

    A plain StopIteration would make csv.reader return a half-read record when a quoted
    field continues into the next chunk; an exception leaves it to us to keep those
    lines and parse the record again once its end has arrived.
    """

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raise _EndOfChunk


class _FirstSeen:
    """Open-addressing hash table: 64-bit key hash -> line of the key's first occurrence.

    Keeping every address string to find duplicates would cost ~150 bytes a row (the str,
    plus set or dict overhead). This keeps two 64-bit integers a slot, interleaved in one
    ``array('q')`` (hash, line, hash, line, ...) so that a probe touches one cache line,
    at most half full, doubling when it fills: 16-32 bytes a row, 8 MiB at 200,000 rows
    and 64 MiB at 2,000,000.

    Two different addresses with the same 64-bit hash would be reported as duplicates.
    With n keys the odds of any such pair are about n**2 / 2**65: 1 in 900 million at
    200,000 rows, 1 in 9 million at 2,000,000. The hash is Python's own string hash of
    the de-duplication key (SipHash, 64 bits, ten times faster than blake2b here: 0.04 us
    against 0.45 us a row), keyed per process, so nobody can craft two addresses that
    collide on purpose; only one intake's table ever holds these values.
    """

    __slots__ = ("_limit", "_mask", "_size", "_slots")

    def __init__(self, *, capacity: int = 1 << 14) -> None:
        self._size = 0
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        self._slots = array("q", bytes(16 * capacity))  # a zero hash marks an empty slot
        self._mask = capacity - 1
        # Linear probing: at most half full keeps a miss at about 2.5 probes.
        self._limit = capacity // 2

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Slots allocated."""
        return self._mask + 1

    def first_line(self, key_hash: int, line: int) -> int:
        """Return the first line seen with ``key_hash`` (non-zero), or record ``line``, return 0."""
        slots = self._slots
        wrap = len(slots) - 1
        i = (key_hash & self._mask) << 1
        found = slots[i]
        while found:
            if found == key_hash:
                return slots[i + 1]
            i = (i + 2) & wrap
            found = slots[i]
        slots[i] = key_hash
        slots[i + 1] = line
        self._size += 1
        if self._size > self._limit:
            self._rehash(2 * self.capacity)
        return 0

    def reserve(self, keys: int) -> None:
        """Make room for ``keys`` keys in one step instead of doubling on the way there."""
        capacity = self.capacity
        while capacity // 2 < keys:
            capacity *= 2
        if capacity > self.capacity:
            self._rehash(capacity)

    def _rehash(self, capacity: int) -> None:
        old = self._slots
        self._allocate(capacity)
        slots = self._slots
        mask = self._mask
        wrap = len(slots) - 1
        hashes = old[0::2]
        # compress skips the empty slots in C, so the Python loop runs once per key.
        for key_hash, line in compress(zip(hashes, old[1::2], strict=True), hashes):
            i = (key_hash & mask) << 1
            while slots[i]:
                i = (i + 2) & wrap
            slots[i] = key_hash
            slots[i + 1] = line


class CsvIntake:
    """Push-based reader of one recipient CSV file.

    Call ``feed`` with each chunk of bytes, in order, and ``finish`` at the end; both
    return the rows the data completed (accepted or rejected), in file order. The result
    does not depend on where the chunks are cut. ``feed`` raises ``CsvFileError`` as soon
    as the file as a whole is known to be unimportable; ``finish`` raises it for what only
    the end can tell (an empty file, no valid row). Callers that must report every
    rejected row even when the file fails call ``flush`` before ``finish``.

    Memory stays flat: the text of at most one chunk plus one unfinished record, and a
    compact table of 64-bit hashes for de-duplication.
    """

    def __init__(
        self, *, limits: IntakeLimits = DEFAULT_LIMITS, expected_bytes: int | None = None
    ) -> None:
        """Start reading one file.

        ``expected_bytes``, the file's size when known (S3 gives it, so does ``stat``),
        lets the de-duplication table be sized once, early, instead of doubling its way up
        (each doubling re-inserts every key so far). It changes no result.
        """
        self.limits = limits
        self._expected_bytes = expected_bytes
        self.encoding: str | None = None
        """"utf-8", "utf-8-sig" or "cp932" once detected; None before the first bytes.

        Plain ASCII reads as UTF-8, so while all bytes so far are ASCII this says "utf-8",
        and turns "cp932" if the first non-ASCII text turns out to be Shift_JIS.
        """
        self.fields: tuple[str, ...] = ()
        """The merge-field columns: every named header column but the address column."""
        self.rows = 0
        """Data rows read so far (accepted + rejected); blank lines are not rows."""
        self.accepted = 0
        self.rejected = 0
        self.bytes_read = 0
        self._failure: CsvFileError | None = None
        self._flushed = False
        self._finished = False
        # bytes not decoded yet while the encoding is still unknown
        self._probe = b""
        self._start_checked = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._decoded_bytes = 0  # byte offset up to which text has been produced
        self._decoded_newlines = 0  # b"\n" in those bytes, for decode error line numbers
        # text not parsed yet: an unfinished line or quoted record, and its first line
        self._tail = ""
        self._line = 1
        self._done = 0  # lines of the current chunk that complete records used
        self._delimiter: str | None = None
        self._record_ok: Callable[[str], re.Match[str] | None] | None = None
        self._header: list[str] | None = None
        self._address_name = ""
        self._address_index = 0
        self._drop_blank_names = False
        self._seen = _FirstSeen()
        self._first_rejection: RejectedRow | None = None  # an example for no_valid_rows

    # --- public API ------------------------------------------------------------------

    def feed(self, data: bytes) -> list[IntakeRow]:
        """Take the next chunk of the file; return the rows it completed."""
        self._check_open()
        rows = self._guarded(data, final=False)
        if self._expected_bytes is not None and self.rows >= _SIZE_SAMPLE_ROWS:
            # Rows so far per byte so far predicts the rows of the whole file well enough:
            # too low and the table still doubles, too high wastes at most one doubling.
            expected_rows = self.rows * self._expected_bytes // max(self._decoded_bytes, 1)
            self._seen.reserve(min(expected_rows, self.limits.max_rows))
            self._expected_bytes = None
        return rows

    def flush(self) -> list[IntakeRow]:
        """Mark the end of the file and return the last rows, without the file-level checks.

        ``finish`` calls it when it has not been called yet.
        """
        self._check_open(flushing=True)
        if self._flushed:
            return []
        self._flushed = True
        return self._guarded(b"", final=True)

    def finish(self) -> list[IntakeRow]:
        """End the file: return the last rows, or raise ``CsvFileError`` if it is unimportable."""
        rows = self.flush()
        self._finished = True
        if self._header is None:
            raise self._fail("the file is empty: there is not even a header row", "empty")
        if self.rows == 0:
            raise self._fail("the file has a header row but no data rows", "no_valid_rows")
        if self.accepted == 0:
            first = self._first_rejection
            example = f"line {first.line}: {first.reason}" if first else ""
            raise self._fail(
                "no row can be imported: "
                + (
                    f"the only data row was rejected ({example})"
                    if self.rows == 1
                    else f"all {self.rows:,} data rows were rejected (the first, {example})"
                ),
                "no_valid_rows",
            )
        return rows

    # --- bytes -------------------------------------------------------------------------

    def _check_open(self, *, flushing: bool = False) -> None:
        if self._failure is not None:
            raise self._failure
        if self._finished or (self._flushed and not flushing):
            msg = "this CsvIntake has reached the end of its file; start a new one"
            raise RuntimeError(msg)

    def _fail(self, reason: str, code: str) -> CsvFileError:
        self._failure = CsvFileError(reason, code=code)
        return self._failure

    def _guarded(self, data: bytes, *, final: bool) -> list[IntakeRow]:
        try:
            return self._take(data, final=final)
        except CsvFileError as exc:
            self._failure = exc
            raise

    def _take(self, data: bytes, *, final: bool) -> list[IntakeRow]:
        if data:
            self.bytes_read += len(data)
            if self.bytes_read > self.limits.max_bytes:
                raise CsvFileError(
                    f"the file is larger than the limit of {_size(self.limits.max_bytes)}",
                    code="too_large",
                )
        if self._decoder is not None:
            if b"\x00" in data:
                raise _binary()
            return self._decode(data, final=final)
        self._probe += data
        return self._sniff(final=final)

    def _sniff(self, *, final: bool) -> list[IntakeRow]:
        """Choose the encoding from the first bytes; until then pass plain ASCII through."""
        probe = self._probe
        if not self._start_checked:
            if len(probe) < 4 and not final:
                return []
            self._start_checked = True
            if probe.startswith(_BOM_UTF8):
                self._decoded_bytes = len(_BOM_UTF8)
                return self._commit("utf-8-sig", probe[len(_BOM_UTF8) :], final=final)
            if probe.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise CsvFileError(
                    "the file is UTF-16 text (Excel's 'Unicode Text'): save it as "
                    "'CSV UTF-8' instead",
                    code="undecodable",
                )
            if probe.startswith(b"PK\x03\x04"):
                raise CsvFileError(
                    "the file looks like an Excel workbook (or another ZIP file), not CSV: "
                    "save it as CSV",
                    code="binary",
                )
        if b"\x00" in probe:
            raise _binary()
        found = _NON_ASCII.search(probe)
        if found is None:
            if final:
                return self._commit("utf-8", probe, final=True)
            # ASCII reads the same in all three encodings, so it can go on before we know.
            self._probe = b""
            return self._push_ascii(probe)
        start = found.start()
        rows = self._push_ascii(probe[:start]) if start else []
        rest = probe[start:]
        encoding = _guess_encoding(rest[:_SNIFF_WINDOW])
        if encoding is None and len(rest) < _SNIFF_WINDOW and not final:
            self._probe = rest  # valid UTF-8 so far: wait for the whole window
            return rows
        rows.extend(self._commit(encoding or "utf-8", rest, final=final))
        return rows

    def _push_ascii(self, data: bytes) -> list[IntakeRow]:
        self.encoding = "utf-8"  # provisional: see the attribute's docstring
        self._decoded_bytes += len(data)
        self._decoded_newlines += data.count(b"\n")
        return self._push_text(data.decode("ascii"), final=False)

    def _commit(self, encoding: str, rest: bytes, *, final: bool) -> list[IntakeRow]:
        self.encoding = encoding
        # The BOM was stripped above, so UTF-8 with a BOM decodes as plain UTF-8 and
        # error offsets stay offsets into the file.
        codec = "cp932" if encoding == "cp932" else "utf-8"
        self._decoder = codecs.getincrementaldecoder(codec)("strict")
        self._probe = b""
        if b"\x00" in rest:
            raise _binary()
        return self._decode(rest, final=final)

    def _decode(self, data: bytes, *, final: bool) -> list[IntakeRow]:
        assert self._decoder is not None
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise self._undecodable(exc, len(data)) from None
        self._decoded_bytes += len(data)
        self._decoded_newlines += data.count(b"\n")
        return self._push_text(text, final=final)

    def _undecodable(self, exc: UnicodeDecodeError, fed: int) -> CsvFileError:
        # The decoder reports positions in (its buffered bytes + this chunk); the chunk is
        # always the end of that, which places the error in the file. Neither UTF-8 nor
        # CP932 has a 0x0A byte inside a multibyte character, so counting b"\n" counts lines.
        bad = bytes(exc.object)
        offset = self._decoded_bytes + fed - len(bad) + exc.start
        line = 1 + self._decoded_newlines + bad[: exc.start].count(b"\n")
        label = _ENCODING_LABELS.get(self.encoding or "", "text")
        shown = bad[exc.start : exc.start + 1].hex().upper() or "end of file"
        return CsvFileError(
            f"the file cannot be read as {label}: byte {offset:,} (line {line}, 0x{shown}) is "
            "not valid; save the file as 'CSV UTF-8' (or Shift_JIS CSV)",
            code="undecodable",
        )

    # --- text --------------------------------------------------------------------------

    def _push_text(self, text: str, *, final: bool) -> list[IntakeRow]:
        if not final and "\n" not in text and self._delimiter is not None:
            self._tail += text
            self._check_tail()
            return []
        data = self._tail + text if self._tail else text
        self._tail = ""
        if self._delimiter is None:
            delimiter = _sniff_delimiter(data, final=final)
            if delimiter is None:  # no complete non-blank line yet
                self._tail = data
                self._check_tail()
                return []
            self._delimiter = delimiter
            self._record_ok = _record_pattern(delimiter).fullmatch
        # StringIO splits on "\n" only (str.splitlines would also split inside fields on
        # \x0b, \x1c, \u2028, ...) and keeps the line ends, which csv.reader needs to keep
        # newlines inside quoted fields.
        lines = io.StringIO(data).readlines()
        partial = ""
        if not final and lines and not lines[-1].endswith("\n"):
            partial = lines.pop()
        out: list[IntakeRow] = []
        done = self._read(lines, out, quotes='"' in data)
        if done < len(lines):
            # A quoted field goes on past the lines we have.
            if final:
                self._reject_unclosed(done, out)
                done = len(lines)
            else:
                partial = "".join(lines[done:]) + partial
        self._line += done
        self._tail = partial
        self._check_tail()
        if self._first_rejection is None and self.rejected:
            self._first_rejection = next(r for r in out if isinstance(r, RejectedRow))
        return out

    def _check_tail(self) -> None:
        if len(self._tail) > _MAX_RECORD_CHARS:
            raise CsvFileError(
                f"line {self._line} goes on for more than {_MAX_RECORD_CHARS:,} "
                "characters without a line break: this does not look like a CSV file",
                code="malformed",
            )

    def _reject_unclosed(self, done: int, out: list[IntakeRow]) -> None:
        reason = 'a quoted field opened on this line is never closed (a " is missing)'
        if self._header is None:
            raise CsvFileError(
                f"the header row (line {self._line + done}): {reason}", code="no_header"
            )
        self._reject(out, self._line + done, "", f"malformed row: {reason}")

    def _read(self, lines: list[str], out: list[IntakeRow], *, quotes: bool) -> int:
        """Parse whole records from ``lines`` into ``out``; return how many lines they used."""
        reader = csv.reader(chain(lines, _ChunkEnd()), delimiter=self._delimiter or ",")
        self._done = 0
        while True:
            try:
                if self._header is None:
                    self._read_header(reader)
                self._read_rows(reader, lines, out, quotes=quotes)
            except _EndOfChunk:
                return self._done
            except csv.Error as exc:
                # Python's csv module names the problem; the reader goes on at the next line.
                line = self._line + self._done
                self._done = reader.line_num
                if self._header is None:
                    raise CsvFileError(
                        f"the header row (line {line}) cannot be read: {_csv_problem(exc)}",
                        code="no_header",
                    ) from None
                self._reject(out, line, "", f"malformed row: {_csv_problem(exc)}")

    def _read_header(self, reader: _Reader) -> None:
        for record in reader:
            start, self._done = self._done, reader.line_num
            if any(cell.strip() for cell in record):
                self._set_header(record, line=self._line + start)
                return

    def _read_rows(  # noqa: PLR0912, PLR0915 - one frame for the hot loop: calls cost ~5%
        self, reader: _Reader, lines: list[str], out: list[IntakeRow], *, quotes: bool
    ) -> None:
        """The hot loop: one record at a time until the chunk's lines run out."""
        # Locals, not attributes, inside the loop: each attribute lookup costs about as
        # much as the comparison it feeds. Rare cases go to helpers.
        line_base = self._line
        header = self._header
        assert header is not None
        columns = len(header)
        address_name = self._address_name
        drop_blank = self._drop_blank_names
        max_rows = self.limits.max_rows
        check_shape = self._check_shape
        first_line = self._seen.first_line
        dedupe = dedupe_key  # hashed inline: hash(dedupe(address)) or 1
        normalize = normalize_address
        append = out.append
        done = self._done
        rows = self.rows
        accepted = self.accepted
        rejected = self.rejected
        reason: str | None
        try:
            for record in reader:
                start = done
                done = reader.line_num
                reason = None
                # A record spanning lines opened a quote on its first line, so looking
                # at the first line finds every record with a quote.
                if quotes and '"' in lines[start]:
                    reason = check_shape(record, lines[start:done])
                    if reason == _BLANK:
                        continue
                elif len(record) != columns:
                    reason = check_shape(record, None)
                    if reason == _BLANK:
                        continue
                if reason is None:
                    values = dict(zip(header, record, strict=False))  # lengths checked above
                    raw_address = values.pop(address_name)
                    if drop_blank:
                        values.pop("", None)
                    try:
                        email = normalize(raw_address)
                    except InvalidAddressError as exc:
                        reason = _address_problem(raw_address, record, exc)
                        if reason == _BLANK:
                            continue
                else:
                    raw_address = self._raw_address(record)
                rows += 1
                if rows > max_rows:
                    raise _too_many_rows(max_rows)
                if reason is None:
                    first = first_line(hash(dedupe(email)) or 1, line_base + start)
                    if not first:
                        accepted += 1
                        append(AcceptedRow(line_base + start, email, values))
                        continue
                    reason = f"duplicate of line {first}"
                rejected += 1
                append(RejectedRow(line_base + start, raw_address, reason))
        finally:
            self._done = done
            self.rows = rows
            self.accepted = accepted
            self.rejected = rejected

    def _check_shape(self, record: list[str], raw_lines: list[str] | None) -> str | None:
        """Why a record with quotes or an unexpected length is rejected (``_BLANK``: skip it).

        Trims empty cells past the last column, which spreadsheets write.
        """
        if (
            raw_lines is not None
            and self._record_ok is not None
            and self._record_ok("".join(raw_lines)) is None
        ):
            return _STRAY_QUOTE
        columns = len(self._header or ())
        if len(record) == columns:
            return None
        if not any(cell.strip() for cell in record):
            return _BLANK
        if len(record) > columns and not any(cell.strip() for cell in record[columns:]):
            del record[columns:]
            return None
        return (
            f"too {'many' if len(record) > columns else 'few'} columns "
            f"({len(record)}, the header has {columns})"
        )

    def _raw_address(self, record: list[str]) -> str:
        index = self._address_index
        return record[index] if index < len(record) else ""

    def _reject(self, out: list[IntakeRow], line: int, email: str, reason: str) -> None:
        self.rows += 1
        if self.rows > self.limits.max_rows:
            raise _too_many_rows(self.limits.max_rows)
        self.rejected += 1
        out.append(RejectedRow(line, email, reason))

    def _set_header(self, record: list[str], *, line: int) -> None:
        # A stray BOM (a UTF-8 file saved twice with one) would hide the address column.
        names = [cell.replace("\ufeff", "").strip() for cell in record]
        address = [i for i, name in enumerate(names) if _is_address_column(name)]
        if not address:
            if any(_looks_like_address(name) for name in names):
                raise CsvFileError(
                    f"the first row (line {line}) looks like data, not a header: add a "
                    'header row that names the columns, with the addresses under "email"',
                    code="no_header",
                )
            found = ", ".join(f'"{name}"' for name in names)
            raise CsvFileError(
                'no address column: the header needs a column named "email" (or '
                f'"メールアドレス"); found {found}',
                code="no_address_column",
            )
        if len(address) > 1:
            found = ", ".join(f'"{names[i]}"' for i in address)
            raise CsvFileError(
                f"the header has more than one address column: {found}",
                code="duplicate_columns",
            )
        counts = Counter(name for name in names if name)
        repeated = sorted(name for name, count in counts.items() if count > 1)
        if repeated:
            found = ", ".join(f'"{name}"' for name in repeated)
            raise CsvFileError(
                f"the header names a column more than once: {found}",
                code="duplicate_columns",
            )
        self._header = names
        self._address_index = address[0]
        self._address_name = names[address[0]]
        self._drop_blank_names = "" in names
        self.fields = tuple(name for i, name in enumerate(names) if name and i != address[0])


def _csv_problem(exc: csv.Error) -> str:
    """Python's csv message, in words for the person who made the file."""
    message = str(exc)
    if "new-line character" in message:
        return "a line break (CR) inside a field that is not quoted"
    if "field larger than field limit" in message:
        return f"a field longer than {csv.field_size_limit():,} characters"
    return message


def _address_problem(raw_address: str, record: list[str], exc: InvalidAddressError) -> str:
    if raw_address.strip():
        return f"invalid address: {exc.reason}"
    if any(cell.strip() for cell in record):
        return "missing address"
    return _BLANK  # a row of empty cells (",,,") is a blank line


def _too_many_rows(max_rows: int) -> CsvFileError:
    return CsvFileError(
        f"the file has more than {max_rows:,} data rows, the limit for one import",
        code="too_many_rows",
    )


def _binary() -> CsvFileError:
    return CsvFileError(
        "the file looks like a binary file (it contains NUL bytes), not CSV text: save it as CSV",
        code="binary",
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _is_address_column(name: str) -> bool:
    # NFKC folds full-width letters (ｅｍａｉｌ), which Japanese input methods produce.
    return unicodedata.normalize("NFKC", name).strip().casefold() in _ADDRESS_COLUMNS


def _looks_like_address(cell: str) -> bool:
    if "@" not in cell:
        return False
    try:
        normalize_address(cell)
    except InvalidAddressError:
        return False
    return True


def _guess_encoding(window: bytes) -> str | None:
    """Guess "utf-8" or "cp932" for text that starts with ``window``; None: UTF-8 so far.

    Errors count only where a byte is wrong whatever follows, so the answer for the first
    bytes of a window is the answer for the whole window, however the file is cut.
    UTF-8 comes first: Japanese UTF-8 often also decodes as (nonsense) CP932, never the
    other way round. When both fail, the encoding that reads further is the file's, and
    its error is reported later with the offset.
    """
    try:
        codecs.getincrementaldecoder("utf-8")().decode(window, final=False)
    except UnicodeDecodeError as utf8_error:
        try:
            codecs.getincrementaldecoder("cp932")().decode(window, final=False)
        except UnicodeDecodeError as cp932_error:
            return "utf-8" if utf8_error.start >= cp932_error.start else "cp932"
        return "cp932"
    return None


def _sniff_delimiter(data: str, *, final: bool) -> str | None:
    """The delimiter of the first non-blank line, or None while that line is incomplete."""
    pos = 0
    while True:
        end = data.find("\n", pos)
        line = data[pos:] if end < 0 else data[pos:end]
        if line.strip():
            # A CR before the line's end (its CRLF aside) means CR-only line ends, which
            # would make the whole file one line.
            if "\r" in line.rstrip("\r"):
                raise CsvFileError(
                    "the file's lines end with a lone CR (old Mac line ends): save it again "
                    "as CSV with CRLF or LF line ends",
                    code="malformed",
                )
            if end < 0 and not final:
                return None
            unquoted = _QUOTED.sub("", line)
            counts = [unquoted.count(d) for d in _DELIMITERS]
            best = max(counts)
            return _DELIMITERS[counts.index(best)] if best else ","
        if end < 0:
            return None
        pos = end + 1


def intake_file(
    chunks: Iterable[bytes], *, limits: IntakeLimits = DEFAULT_LIMITS
) -> Iterator[IntakeRow]:
    """Read a whole file given as byte chunks; yield every row, then check the file.

    Raises ``CsvFileError`` (after the last row) when the file cannot be imported.
    """
    intake = CsvIntake(limits=limits)
    for chunk in chunks:
        yield from intake.feed(chunk)
    yield from intake.flush()
    intake.finish()
