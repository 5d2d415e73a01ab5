"""Streaming CSV intake: encodings, quoting, row and file-level errors, chunk independence."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailblast.domain.errors import CsvFileError
from mailblast.domain.intake import (
    AcceptedRow,
    CsvIntake,
    IntakeLimits,
    IntakeRow,
    RejectedRow,
    _FirstSeen,
    intake_file,
)

CSV_FIXTURES = Path(__file__).parent.parent / "fixtures" / "csv"


@attrs.frozen
class Outcome:
    """Everything an intake reports about one file."""

    rows: list[IntakeRow]
    encoding: str | None
    fields: tuple[str, ...]
    counts: tuple[int, int, int]  # rows, accepted, rejected
    error: tuple[str, str] | None  # code, reason

    @property
    def accepted(self) -> list[AcceptedRow]:
        return [row for row in self.rows if isinstance(row, AcceptedRow)]

    @property
    def rejected(self) -> list[RejectedRow]:
        return [row for row in self.rows if isinstance(row, RejectedRow)]


def read(
    data: bytes,
    cuts: Sequence[int] = (),
    *,
    limits: IntakeLimits | None = None,
    expected_bytes: int | None = None,
) -> Outcome:
    """Feed ``data`` cut at ``cuts``, flush, finish; collect the outcome."""
    intake = CsvIntake(limits=limits or IntakeLimits(), expected_bytes=expected_bytes)
    bounds = [0, *sorted(cuts), len(data)]
    rows: list[IntakeRow] = []
    error = None
    try:
        for start, end in itertools.pairwise(bounds):
            rows += intake.feed(data[start:end])
        rows += intake.flush()
        intake.finish()
    except CsvFileError as exc:
        error = (exc.code, exc.reason)
    counts = (intake.rows, intake.accepted, intake.rejected)
    return Outcome(rows, intake.encoding, intake.fields, counts, error)


def ok(data: bytes, cuts: Sequence[int] = ()) -> Outcome:
    """Read a file that must be importable."""
    outcome = read(data, cuts)
    assert outcome.error is None, outcome.error
    return outcome


def failure(data: bytes, *, limits: IntakeLimits | None = None) -> CsvFileError:
    """Read a file that must fail as a whole; return the error."""
    with pytest.raises(CsvFileError) as caught:
        list(intake_file([data], limits=limits or IntakeLimits()))
    return caught.value


# A file with every feature the reader must get right at any chunk boundary: CRLF, a
# quoted field with a comma and one with line breaks, Japanese text, blank lines, a
# duplicate in another case, an invalid and a missing address, a short row, a stray
# quote, a row of empty cells, trailing empty cells and no final line break.
MIXED_TEXT = (
    "email,氏名,備考\r\n"
    'taro@example.com,山田 太郎,"東京都, 千代田区"\r\n'
    'hanako@example.jp,佐藤 花子,"一行目\r\n二行目\r\n""三行目"""\r\n'
    "\r\n"
    "TARO@Example.COM,山田 太郎,重複\r\n"
    "not-an-address,名無し,\r\n"
    ",空欄,\r\n"
    "short@example.com\r\n"
    'quote@example.com, "引用",\r\n'
    ",,\r\n"
    "ｶﾀｶﾅ@example.com,半角,\r\n"
    "last@example.com,最後,,,"
)
MIXED_UTF8 = MIXED_TEXT.encode("utf-8")
MIXED_CP932 = MIXED_TEXT.encode("cp932")
MIXED_BOM_SEMICOLON = b"\xef\xbb\xbf" + MIXED_TEXT.replace(",", ";").encode("utf-8")
# ASCII for longer than the encoding sniffer's window before the first Japanese text.
LATE_CP932 = (
    "email,name\n"
    + "".join(f"user{i}@example.com,User {i}\n" for i in range(300))
    + "yamada@example.com,山田\n"
).encode("cp932")
UNCLOSED_AT_END = b'email,note\nfirst@example.com,ok\nsecond@example.com,"never closed\nx,y\n'
BAD_UTF8_LATE = MIXED_UTF8 + b"\r\nbad@example.com,\xff\xfe,\r\n"
BAD_CP932 = "email,name\n山田@example.com,山田\n".encode("cp932") + b"x@example.com,\x85\x40\n"
SAMPLES = {
    "mixed-utf8": MIXED_UTF8,
    "mixed-cp932": MIXED_CP932,
    "mixed-bom-semicolon": MIXED_BOM_SEMICOLON,
    "late-cp932": LATE_CP932,
    "unclosed-at-end": UNCLOSED_AT_END,
    "bad-utf8-late": BAD_UTF8_LATE,
    "bad-cp932": BAD_CP932,
}


def _comparable(outcome: Outcome) -> Outcome:
    # Rows handed out before a mid-file failure depend on where the chunks end; the
    # failure itself, and everything of a file that reads to the end, must not.
    if outcome.error is not None and outcome.error[0] not in {"no_valid_rows", "empty"}:
        return attrs.evolve(outcome, rows=[], counts=(0, 0, 0))
    return outcome


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_single_cut_gives_the_same_result(name: str) -> None:
    """Cutting the file in two anywhere (in a character, CRLF or quoted newline) changes nothing."""
    data = SAMPLES[name]
    whole = _comparable(read(data))
    for cut in range(1, len(data), 1 if len(data) < 2000 else 7):
        assert _comparable(read(data, [cut])) == whole, f"cut at byte {cut}"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_one_byte_chunks_give_the_same_result(name: str) -> None:
    """Feeding one byte at a time gives the same rows as feeding the whole file."""
    data = SAMPLES[name]
    assert _comparable(read(data, range(1, len(data)))) == _comparable(read(data))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_chunk_splits_give_the_same_result(data: st.DataObject) -> None:
    """Any split of a file into chunks gives the rows, counts and errors of the whole file."""
    name = data.draw(st.sampled_from(sorted(SAMPLES)))
    content = SAMPLES[name]
    cuts = data.draw(st.lists(st.integers(0, len(content)), max_size=40))
    assert _comparable(read(content, cuts)) == _comparable(read(content))


def test_mixed_file_rows() -> None:
    """The mixed sample gives the expected row for every record, with physical line numbers."""
    outcome = ok(MIXED_UTF8)
    assert outcome.encoding == "utf-8"
    assert outcome.fields == ("氏名", "備考")
    assert outcome.rows == [
        AcceptedRow(2, "taro@example.com", {"氏名": "山田 太郎", "備考": "東京都, 千代田区"}),
        AcceptedRow(
            3, "hanako@example.jp", {"氏名": "佐藤 花子", "備考": '一行目\r\n二行目\r\n"三行目"'}
        ),
        RejectedRow(7, "TARO@Example.COM", "duplicate of line 2"),
        RejectedRow(8, "not-an-address", "invalid address: an email address must have an @-sign"),
        RejectedRow(9, "", "missing address"),
        RejectedRow(10, "short@example.com", "too few columns (1, the header has 3)"),
        RejectedRow(
            11,
            "quote@example.com",
            'malformed row: a field with a " in it must be enclosed in quotes as a whole, '
            'with each " in it doubled',
        ),
        RejectedRow(
            13,
            "ｶﾀｶﾅ@example.com",
            "invalid address: internationalized characters before the @-sign are not "
            "supported: 'ｶ', 'ﾀ', 'ﾅ'",
        ),
        AcceptedRow(14, "last@example.com", {"氏名": "最後", "備考": ""}),
    ]
    assert outcome.counts == (9, 3, 6)


def test_cp932_and_bom_read_like_utf8() -> None:
    """CP932 and UTF-8 with a BOM (and ';') give the same rows as plain UTF-8."""
    utf8 = ok(MIXED_UTF8)
    cp932 = ok(MIXED_CP932)
    bom = ok(MIXED_BOM_SEMICOLON)
    assert cp932.encoding == "cp932"
    assert bom.encoding == "utf-8-sig"
    assert cp932.rows == utf8.rows
    # The stray-quote row reads differently with ';' (its comma is data there).
    assert [row.line for row in bom.rows] == [row.line for row in utf8.rows]


def test_late_japanese_text_is_still_detected() -> None:
    """A CP932 file whose first non-ASCII byte comes after thousands of ASCII bytes decodes."""
    outcome = ok(LATE_CP932)
    assert outcome.encoding == "cp932"
    assert outcome.accepted[-1] == AcceptedRow(302, "yamada@example.com", {"name": "山田"})
    assert outcome.counts == (301, 301, 0)


def test_plain_ascii_counts_as_utf8() -> None:
    """A file with no byte over 0x7F is reported as UTF-8."""
    assert ok(b"email\na@example.com\n").encoding == "utf-8"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiter_is_detected_from_the_header(delimiter: str) -> None:
    """Comma, semicolon and tab files all split into the same fields."""
    text = (
        f"name{delimiter}email{delimiter}city\nTaro{delimiter}t@example.com{delimiter}Tokyo, JP\n"
    )
    if delimiter == ",":
        text = text.replace("Tokyo, JP", '"Tokyo, JP"')
    outcome = ok(text.encode())
    assert outcome.fields == ("name", "city")
    assert outcome.accepted == [
        AcceptedRow(2, "t@example.com", {"name": "Taro", "city": "Tokyo, JP"})
    ]


@pytest.mark.parametrize(
    "header",
    ["email", "Email", "EMAIL", " email ", "メールアドレス", "ｅｍａｉｌ", "\ufeffemail", "E-mail"],
)
def test_address_column_names(header: str) -> None:
    """The address column is "email" in any case, with spaces, full-width, or メールアドレス."""
    outcome = read(b"\xef\xbb\xbf" + f"{header},name\na@example.com,A\n".encode())
    if header == "E-mail":
        assert outcome.error is not None
        assert outcome.error[0] == "no_address_column"
    else:
        assert outcome.error is None
        assert outcome.accepted == [AcceptedRow(2, "a@example.com", {"name": "A"})]


def test_crlf_and_lf_give_the_same_rows() -> None:
    """Line ends do not show in the values, and CRLF inside quotes is kept."""
    lf = ok(b'email,note\na@example.com,"x\ny"\nb@example.com,z\n')
    crlf = ok(b'email,note\r\na@example.com,"x\ny"\r\nb@example.com,z\r\n')
    assert lf.rows == crlf.rows
    assert lf.accepted[1] == AcceptedRow(4, "b@example.com", {"note": "z"})


def test_blank_lines_are_skipped_but_counted_as_lines() -> None:
    """Blank lines and rows of empty cells are not rows, yet line numbers stay physical."""
    outcome = ok(b"\n\nemail,name\n\n , \na@example.com,A\n\n,\na@example.com,B\n\n")
    assert outcome.rows == [
        AcceptedRow(6, "a@example.com", {"name": "A"}),
        RejectedRow(9, "a@example.com", "duplicate of line 6"),
    ]
    assert outcome.counts == (2, 1, 1)


def test_carriage_returns_in_blank_lines_are_harmless() -> None:
    """Blank lines made of CRs (before the header and between rows) are skipped."""
    outcome = ok(b"\r\r\nemail\r\n\r\r\nx@example.com\r\n")
    assert outcome.rows == [AcceptedRow(4, "x@example.com", {})]


def test_duplicates_are_case_insensitive_and_ignore_spaces() -> None:
    """A repeated address, in any case and with spaces around it, is a duplicate of the first."""
    outcome = ok(
        b"email\nTaro@Example.com\n taro@example.com \nTARO@EXAMPLE.COM\njiro@example.com\n"
    )
    assert outcome.rejected == [
        RejectedRow(3, " taro@example.com ", "duplicate of line 2"),
        RejectedRow(4, "TARO@EXAMPLE.COM", "duplicate of line 2"),
    ]
    assert outcome.accepted[0].email == "Taro@example.com"


def test_column_count_mismatch() -> None:
    """Rows with too many or too few cells are rejected; empty extra cells are tolerated."""
    outcome = ok(b"email,a,b\nx@example.com,1\ny@example.com,1,2,3\nz@example.com,1,2,,\n")
    assert outcome.rows == [
        RejectedRow(2, "x@example.com", "too few columns (2, the header has 3)"),
        RejectedRow(3, "y@example.com", "too many columns (4, the header has 3)"),
        AcceptedRow(4, "z@example.com", {"a": "1", "b": "2"}),
    ]


def test_unnamed_columns_are_not_merge_fields() -> None:
    """Columns with an empty header cell are read but not offered as merge fields."""
    outcome = ok(b"email,,name,\nx@example.com,junk,X,more\n")
    assert outcome.fields == ("name",)
    assert outcome.accepted == [AcceptedRow(2, "x@example.com", {"name": "X"})]


def test_unclosed_quote_at_the_end_is_a_rejected_row() -> None:
    """A quoted field that never closes is reported on the line where it opens."""
    outcome = ok(UNCLOSED_AT_END)
    assert outcome.accepted == [AcceptedRow(2, "first@example.com", {"note": "ok"})]
    assert outcome.rejected == [
        RejectedRow(
            3,
            "",
            'malformed row: a quoted field opened on this line is never closed (a " is missing)',
        )
    ]


def test_lone_carriage_return_in_an_unquoted_field() -> None:
    """A CR inside an unquoted field rejects that row and the rows after it still read."""
    outcome = ok(b"email,name\na@example.com,A\rB\nb@example.com,B\n")
    assert outcome.rows == [
        RejectedRow(2, "", "malformed row: a line break (CR) inside a field that is not quoted"),
        AcceptedRow(3, "b@example.com", {"name": "B"}),
    ]


def test_rows_hide_addresses_and_values_in_repr() -> None:
    """The repr of a row masks the address and leaves out merge-field values."""
    row = AcceptedRow(2, "taro@example.com", {"氏名": "山田 太郎"})
    rejected = RejectedRow(3, "taro@example.com", "duplicate of line 2")
    assert "taro@" not in repr(row)
    assert "山田" not in repr(row)
    assert "t***@example.com" in repr(row)
    assert "taro@" not in repr(rejected)


def test_expected_bytes_changes_nothing() -> None:
    """Sizing the de-duplication table from the file size gives the same rows."""
    data = b"email\n" + b"".join(b"u%d@example.com\n" % (i % 1500) for i in range(3000))
    hinted = read(data, range(100, len(data), 997), expected_bytes=len(data))
    assert hinted == read(data)
    assert hinted.counts == (3000, 1500, 1500)


# --- file-level errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "reason_part"),
    [
        (b"", "empty", "empty"),
        (b"\r\n \r\n\n", "empty", "empty"),
        (b"\xef\xbb\xbf", "empty", "empty"),
        (b"email,name\r\n", "no_valid_rows", "no data rows"),
        (b"email\n\n\n", "no_valid_rows", "no data rows"),
        (b"name,phone\nTaro,123\n", "no_address_column", '"name", "phone"'),
        (b"taro@example.com,Taro\njiro@example.com,Jiro\n", "no_header", "looks like data"),
        (b"email,name,Name,name\nx@example.com,1,2,3\n", "duplicate_columns", '"name"'),
        (b"email,Email\nx@example.com,y@example.com\n", "duplicate_columns", "address column"),
        (b'"email,name\nx@example.com\n', "no_header", "never closed"),
        (b"email\x00\x00\x00\n", "binary", "save it as CSV"),
        (b"PK\x03\x04\x14\x00\x06\x00", "binary", "Excel"),
        (b"\xff\xfee\x00m\x00", "undecodable", "UTF-16"),
        (b"email\r\n\r\n\r", "no_valid_rows", "no data rows"),
        (b"email\nfoo\n", "no_valid_rows", "the only data row was rejected (line 2: invalid"),
        (
            b"email\n\nfoo\n,x\nbar@\n",
            "no_valid_rows",
            "all 3 data rows were rejected (the first, line 3: invalid address",
        ),
    ],
)
def test_file_level_errors(data: bytes, code: str, reason_part: str) -> None:
    """A file that cannot be imported at all fails with a code and a reason a person reads."""
    error = failure(data)
    assert error.code == code
    assert reason_part in error.reason


def test_binary_later_in_the_file() -> None:
    """NUL bytes after a text start still mark the file as binary."""
    data = b"email\n" + b"a@example.com\n" * 1000 + b"\x00\x01"
    assert read(data, [len(data) - 1]).error == read(data).error
    assert failure(data).code == "binary"


def test_undecodable_utf8_names_the_byte_and_line() -> None:
    """A byte that is not UTF-8 after the encoding was chosen fails, naming offset and line."""
    error = failure(BAD_UTF8_LATE)
    assert error.code == "undecodable"
    offset = BAD_UTF8_LATE.index(b"\xff")
    assert f"byte {offset:,} (line 15, 0xFF)" in error.reason
    assert "UTF-8" in error.reason


def test_undecodable_cp932_names_the_byte_and_line() -> None:
    """An illegal Shift_JIS sequence fails, naming offset and line."""
    error = failure(BAD_CP932)
    assert error.code == "undecodable"
    offset = BAD_CP932.index(b"\x85\x40")
    assert f"byte {offset:,} (line 3, 0x85)" in error.reason
    assert "Shift_JIS" in error.reason


def test_truncated_character_at_the_end() -> None:
    """A file that ends inside a multibyte character cannot be decoded."""
    data = "email,name\na@example.com,山田\n".encode() + "田".encode()[:2]
    error = failure(data)
    assert error.code == "undecodable"
    assert f"byte {len(data) - 2:,}" in error.reason


def test_too_large() -> None:
    """A file over max_bytes fails as soon as the limit is passed."""
    data = b"email\n" + b"a@example.com\n" * 10
    assert failure(data, limits=IntakeLimits(max_bytes=len(data) - 1)).code == "too_large"
    assert read(data, limits=IntakeLimits(max_bytes=len(data))).error is None


def test_too_many_rows() -> None:
    """More data rows than max_rows fails; blank lines and the header do not count."""
    data = b"email\n\na@example.com\n\nb@example.com\n\n"
    assert read(data, limits=IntakeLimits(max_rows=2)).error is None
    error = failure(data + b"c@example.com\n", limits=IntakeLimits(max_rows=2))
    assert error.code == "too_many_rows"
    assert "2" in error.reason


def test_limits_must_be_positive() -> None:
    """A zero or negative limit is a programming error, caught when the limits are made."""
    with pytest.raises(ValueError, match="max_rows"):
        IntakeLimits(max_rows=0)


def test_unclosed_quote_rejects_its_row_once_the_field_passes_the_csv_limit() -> None:
    """A quote never closed rejects its row when the field outgrows csv's limit; reading goes on."""
    data = b'email,note\na@example.com,"oops\n' + b"b@example.com,fine\n" * 10_000
    outcome = ok(data)
    assert outcome.rejected[0] == RejectedRow(
        2, "", "malformed row: a field longer than 131,072 characters"
    )
    assert outcome.accepted[0].email == "b@example.com"
    assert read(data, range(0, len(data), 50_000)) == outcome


def test_overlong_line_fails_the_file() -> None:
    """A line over 1 MiB (no line break in sight) fails the file, naming the line."""
    error = failure(b"email\n" + b"x" * (1024 * 1024 + 1))
    assert error.code == "malformed"
    assert "line 2" in error.reason


@pytest.mark.parametrize("size", [10, 200_000])
def test_old_mac_line_ends_fail_the_file(size: int) -> None:
    """A file whose lines end with a lone CR fails with a reason that says so."""
    data = b"email,name\r" + b"a@example.com,A\r" * size
    error = failure(data)
    assert error.code == "malformed"
    assert "CR" in error.reason


def test_a_failed_intake_keeps_failing_and_a_finished_one_refuses_data() -> None:
    """After a file-level error every call raises it again; after finish, feed is an error."""
    intake = CsvIntake()
    with pytest.raises(CsvFileError):
        intake.feed(b"\x00\x00\x00\x00")
    with pytest.raises(CsvFileError, match="binary"):
        intake.finish()
    done = CsvIntake()
    done.feed(b"email\na@example.com\n")
    done.finish()
    with pytest.raises(RuntimeError):
        done.feed(b"b@example.com\n")


def test_flush_then_finish_reports_rejected_rows_of_a_failing_file() -> None:
    """flush hands out the last rows, so a caller can report them before finish fails."""
    intake = CsvIntake()
    assert intake.feed(b"email\nnot-an-address") == []
    assert [row.line for row in intake.flush()] == [2]
    with pytest.raises(CsvFileError, match="no row can be imported"):
        intake.finish()


# --- the de-duplication table ----------------------------------------------------------


@given(st.lists(st.integers(-(2**63), 2**63 - 1).filter(bool), max_size=400), st.booleans())
def test_first_seen_table_behaves_like_a_dict(hashes: list[int], reserve: bool) -> None:
    """The hash table answers like a dict from hash to first line, across growth and reserve."""
    table = _FirstSeen(capacity=4)
    if reserve:
        table.reserve(len(hashes))
    model: dict[int, int] = {}
    for line, key in enumerate(hashes, start=2):
        expected = model.setdefault(key, line)
        assert table.first_line(key, line) == (0 if expected == line else expected)
    assert len(table) == len(model)
    assert table.capacity >= 2 * len(model)


# --- real-world samples ----------------------------------------------------------------


def _fixture(name: str) -> bytes:
    return (CSV_FIXTURES / name).read_bytes()


@pytest.mark.parametrize(
    "name",
    [
        "csvspectrum_empty.csv",
        "csvspectrum_newlines_crlf.csv",
        "csvspectrum_quotes_and_newlines.csv",
    ],
)
def test_csv_spectrum_parses_as_expected(name: str) -> None:
    """csv-spectrum bodies parse to the published values (each column in turn read as "email")."""
    expected = json.loads((CSV_FIXTURES / "csv_spectrum_expected.json").read_text())[name]
    data = _fixture(name)
    header, sep, body = data.partition(b"\n")
    columns = header.rstrip(b"\r").decode().split(",")
    assert failure(data).code == "no_address_column"
    for column in columns:
        # Renaming one column to "email" makes its values visible in the rejected rows,
        # and leaves every byte of the body as it is.
        renamed = ",".join("email" if c == column else c for c in columns).encode()
        intake = CsvIntake()
        rows = intake.feed(renamed + header[len(header.rstrip(b"\r")) :] + sep + body)
        rows += intake.flush()
        assert [row.email for row in rows] == [record[column] for record in expected]
        assert intake.rows == len(expected)


def test_keila_excel_export_imports() -> None:
    """Keila's Excel export (BOM, ';', CRLF, accented names) imports every row."""
    outcome = ok(_fixture("keila_import_excel.csv"))
    assert outcome.encoding == "utf-8-sig"
    assert outcome.fields == ("First name", "Last name")
    assert outcome.counts == (201, 201, 0)
    assert outcome.accepted[0] == AcceptedRow(
        2, "foo-1@example.com", {"First name": "Joël", "Last name": "Müller-Schultheiß"}
    )


def test_keila_template_imports_with_json_data() -> None:
    """Keila's template keeps its quoted JSON column intact."""
    outcome = ok(_fixture("keila_import_template.csv"))
    assert outcome.counts == (2, 2, 0)
    data = json.loads(outcome.accepted[0].fields["Data"])
    assert data["birthplace"] == "Paris"


def test_keila_malformed_quote_is_rejected_on_its_line() -> None:
    """A space before an opening quote rejects that row, naming line 4."""
    outcome = ok(_fixture("keila_import_malformed1.csv"))
    assert [row.line for row in outcome.accepted] == [2, 3]
    assert len(outcome.rejected) == 1
    assert outcome.rejected[0].line == 4
    assert outcome.rejected[0].reason.startswith("malformed row")


def test_keila_blank_email_fails_the_file_naming_the_line() -> None:
    """Keila's only row has no address: no valid row, and the reason names line 2."""
    error = failure(_fixture("keila_import_malformed2.csv"))
    assert error.code == "no_valid_rows"
    assert "line 2: missing address" in error.reason


def test_keila_duplicates_and_short_rows() -> None:
    """Keila's duplicate sample: a duplicate and a short row rejected, the rest imported."""
    outcome = ok(_fixture("keila_import_external_ids_duplicate.csv"))
    assert outcome.rows == [
        AcceptedRow(2, "foo@example.com", {"External ID": ""}),
        RejectedRow(3, "foo@example.com", "duplicate of line 2"),
        RejectedRow(4, "foo2@example.com", "too few columns (1, the header has 2)"),
        AcceptedRow(5, "foo2@example.com", {"External ID": "1"}),
    ]


def test_listmonk_samples_import() -> None:
    """listmonk's samples import whole; mixed-case domains come out lowercased."""
    subs = ok(_fixture("listmonk_subs.csv"))
    assert subs.counts == (100, 100, 0)
    assert subs.fields == ("name", "attributes")
    assert json.loads(subs.accepted[0].fields["attributes"])["clientId"] == "DAXX79"
    blocklist = ok(_fixture("listmonk_subs-domain-blocklist.csv"))
    assert [row.email for row in blocklist.accepted] == [
        "noban1-import@mail.com",
        "ban1-import@ban.net",
        "noban2-import1@mail.com",
        "ban2-import@ban.org",
    ]
