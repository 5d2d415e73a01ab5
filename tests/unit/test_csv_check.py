"""``csv-check``: the report, its JSON shape and exit codes, on real files."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mailblast.entrypoints.csv_check import run_csv_check

ROOT = Path(__file__).parent.parent.parent
CSV_FIXTURES = ROOT / "tests" / "fixtures" / "csv"


def _generator() -> ModuleType:
    """bench/_gen.py, the generator the benchmarks use (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("_bench_gen", ROOT / "bench" / "_gen.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(path: Path | str, *, as_json: bool) -> tuple[int, str, str]:
    """Run the check; return the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = run_csv_check(str(path), as_json=as_json, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def check_json(path: Path | str) -> tuple[int, dict[str, Any]]:
    """Run the check in JSON mode; stdout must be exactly one JSON object."""
    code, out, err = check(path, as_json=True)
    assert err == ""
    assert out.endswith("\n")
    assert out.count("\n") == 1
    report = json.loads(out)
    assert isinstance(report, dict)
    return code, report


def write(tmp_path: Path, data: bytes, name: str = "list.csv") -> Path:
    """A CSV file with these bytes."""
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_json_report_of_an_importable_file() -> None:
    """An importable file: exit 0 and a JSON object with exactly the documented keys."""
    code, report = check_json(CSV_FIXTURES / "keila_import_external_ids_duplicate.csv")
    assert code == 0
    assert report == {
        "importable": True,
        "error": None,
        "encoding": "utf-8",
        "rows": 4,
        "accepted": 2,
        "rejected": [
            {"line": 3, "email": "foo@example.com", "reason": "duplicate of line 2"},
            {
                "line": 4,
                "email": "foo2@example.com",
                "reason": "too few columns (1, the header has 2)",
            },
        ],
        "fields": ["External ID"],
    }


def test_json_report_of_a_file_that_is_not_importable() -> None:
    """A file with no valid row: exit 2, importable false, the error set, the rows listed."""
    code, report = check_json(CSV_FIXTURES / "keila_import_malformed2.csv")
    assert code == 2
    assert report["importable"] is False
    assert "line 2: missing address" in report["error"]
    assert report["rejected"] == [{"line": 2, "email": "", "reason": "missing address"}]
    assert report["fields"] == ["First name", "Last name"]


@pytest.mark.parametrize(
    ("data", "encoding", "error_part"),
    [
        (b"", "utf-8", "empty"),
        (b"name,phone\nTaro,1\n", "utf-8", 'found "name", "phone"'),
        (b"PK\x03\x04\x14\x00\x06\x00rest", "unknown", "save it as CSV"),
        ("email\n山田@example.com\n".encode("cp932"), "cp932", "no row can be imported"),
    ],
)
def test_json_report_of_file_level_errors(
    tmp_path: Path, data: bytes, encoding: str, error_part: str
) -> None:
    """File-level failures keep the JSON shape, with the reason in "error"."""
    code, report = check_json(write(tmp_path, data))
    assert code == 2
    assert report["importable"] is False
    assert error_part in report["error"]
    assert report["encoding"] == encoding
    assert set(report) == {
        "importable",
        "error",
        "encoding",
        "rows",
        "accepted",
        "rejected",
        "fields",
    }


def test_human_report() -> None:
    """The human report names the encoding, the counts, the merge fields and rejected rows."""
    code, out, err = check(CSV_FIXTURES / "keila_import_excel.csv", as_json=False)
    assert code == 0
    assert err == ""
    assert "UTF-8 with BOM" in out
    assert "201" in out
    assert "{{First name}}, {{Last name}}" in out
    assert out.rstrip().endswith("importable")


def test_human_report_shows_the_first_twenty_rejected_rows(tmp_path: Path) -> None:
    """Only the first 20 rejected rows are printed, with a count of the rest."""
    data = b"email\nok@example.com\n" + b"".join(b"bad%d\n" % i for i in range(25))
    code, out, _ = check(write(tmp_path, data), as_json=False)
    assert code == 0
    assert "line 22: 'bad19'" in out
    assert "bad20" not in out
    assert "and 5 more" in out


def test_human_failure_goes_to_stderr_in_one_line() -> None:
    """A file that is not importable exits 2 with a one-line reason on stderr."""
    code, out, err = check(CSV_FIXTURES / "csvspectrum_empty.csv", as_json=False)
    assert code == 2
    assert err.count("\n") == 1
    assert "not importable: no address column" in err
    assert "NOT importable" in out


@pytest.mark.parametrize("as_json", [False, True])
def test_missing_file(tmp_path: Path, *, as_json: bool) -> None:
    """A missing file exits 2 with a one-line message, no traceback."""
    code, out, err = check(tmp_path / "nope.csv", as_json=as_json)
    assert code == 2
    if as_json:
        assert json.loads(out)["error"] == "cannot read the file: No such file or directory"
    else:
        assert out == ""
        assert err == (
            f"csv-check: {tmp_path / 'nope.csv'}: not importable: "
            "cannot read the file: No such file or directory\n"
        )
    assert "Traceback" not in out + err


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    """A directory is reported like any unreadable path."""
    code, _, err = check(tmp_path, as_json=False)
    assert code == 2
    assert "cannot read the file" in err


def test_generated_200k_cp932_file_gives_exact_counts(tmp_path: Path) -> None:
    """200,000 CP932 rows with 1% invalid and 1% duplicate addresses give the exact counts."""
    path = tmp_path / "recipients.csv"
    expected = _generator().write_csv(path, 200_000, encoding="cp932", seed=7)
    code, report = check_json(path)
    assert code == 0
    assert report["encoding"] == "cp932"
    assert report["rows"] == expected.rows == 200_000
    assert report["accepted"] == expected.accepted == 196_000
    reasons = [row["reason"] for row in report["rejected"]]
    assert len(reasons) == expected.invalid + expected.duplicates
    assert sum(r.startswith("duplicate of line") for r in reasons) == expected.duplicates
    assert sum(r.startswith("invalid address") for r in reasons) == expected.invalid
    assert report["fields"] == ["氏名", "会社名", "会員番号", "登録日", "備考"]
