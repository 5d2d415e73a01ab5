"""Benchmark the CSV intake: decode + validate + de-duplicate, against a bare csv.reader.

    python bench/intake_bench.py [--rows N] [--json] [--repeat K] [--encoding cp932|utf-8]

Generates a realistic recipient CSV (bench/_gen.py: Japanese names, extra columns, quoted
fields, ~1% invalid and ~1% duplicate addresses) into a temporary file, then, in the same
run, times

- the baseline: one ``csv.reader`` pass over the same file, decoded by ``open()``;
- ``CsvIntake`` over the file in 1 MiB chunks, as ``csv-check`` and an import read it
  (told the file size, which sizes its de-duplication table once), and once more without
  the size, the way a caller that does not know it would.

Peak RSS is measured in a fresh child process that only runs the intake over the file, so
neither the generator nor the baseline counts. Times are the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gen import write_csv
from mailblast.domain.intake import CsvIntake

CHUNK = 1024 * 1024


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_intake(path: Path, *, sized: bool = True) -> CsvIntake:
    """Read the file through CsvIntake in 1 MiB chunks, as csv-check does."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size if sized else None
        intake = CsvIntake(expected_bytes=size)
        while chunk := file.read(CHUNK):
            intake.feed(chunk)
        intake.finish()
    return intake


def run_baseline(path: Path, encoding: str) -> int:
    """A bare csv.reader pass over the decoded file; returns the data rows."""
    with path.open(encoding=encoding, newline="") as file:
        return sum(1 for _ in csv.reader(file)) - 1


def best_of(repeat: int, action: Any) -> tuple[float, Any]:
    """The shortest of ``repeat`` timed calls, and the last result."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


# Linux keeps a process's peak RSS across exec, and a forked (or vforked) child starts
# from its parent's: a child of this process would report at least our own peak (the
# generator, the timed runs). So a tiny Python starts the measured process: its peak
# (~10 MB) is below any Python that imports mailblast, so it cannot show.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def child_rss(path: Path) -> dict[str, float]:
    """Peak RSS of a fresh process that only runs the intake over ``path``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child-rss", str(path)]
    done = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *command],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def child_main(path: Path) -> None:
    """In the child: measure startup RSS (imports), then the peak over one intake."""
    startup = _peak_rss_mb()
    run_intake(path)
    print(
        json.dumps({"startup_rss_mb": round(startup, 1), "peak_rss_mb": round(_peak_rss_mb(), 1)})
    )


def measure(rows: int, *, encoding: str, repeat: int) -> dict[str, Any]:
    """Generate the file and take every measurement; the JSON report as a dict."""
    with tempfile.TemporaryDirectory(prefix="mailblast-bench-") as folder:
        path = Path(folder) / "recipients.csv"
        expected = write_csv(path, rows, encoding=encoding)
        codec = "cp932" if encoding == "cp932" else "utf-8-sig"
        baseline_s, baseline_rows = best_of(repeat, lambda: run_baseline(path, codec))
        intake_s, intake = best_of(repeat, lambda: run_intake(path))
        unsized_s, _ = best_of(1, lambda: run_intake(path, sized=False))
        rss = child_rss(path)
        size = path.stat().st_size
    if baseline_rows != rows or (intake.accepted, intake.rejected) != (
        expected.accepted,
        expected.invalid + expected.duplicates,
    ):
        print(
            f"unexpected counts: {intake.accepted=} {intake.rejected=} {expected}", file=sys.stderr
        )
        raise SystemExit(1)
    return {
        "rows": rows,
        "rows_per_s": round(rows / intake_s),
        "baseline_rows_per_s": round(rows / baseline_s),
        "ratio": round(baseline_s / intake_s, 3),
        "peak_rss_mb": rss["peak_rss_mb"],
        "startup_rss_mb": rss["startup_rss_mb"],
        "seconds": round(intake_s, 3),
        "baseline_seconds": round(baseline_s, 3),
        "rows_per_s_unsized": round(rows / unsized_s),
        "accepted": intake.accepted,
        "rejected": intake.rejected,
        "encoding": intake.encoding,
        "file_mb": round(size / (1024 * 1024), 1),
        "repeat": repeat,
    }


def print_table(report: dict[str, Any]) -> None:
    """The human-readable form of the report."""
    print(
        f"CSV intake, {report['rows']:,} rows ({report['encoding']}, {report['file_mb']} MiB, "
        f"~1% invalid, ~1% duplicate), best of {report['repeat']}"
    )
    print(f"  {'':34}{'seconds':>9}{'rows/s':>12}")
    unsized = report["rows_per_s_unsized"]
    lines = [
        ("csv.reader pass (baseline)", report["baseline_seconds"], report["baseline_rows_per_s"]),
        ("CsvIntake (file size known)", report["seconds"], report["rows_per_s"]),
        ("CsvIntake (size unknown, 1 run)", report["rows"] / unsized, unsized),
    ]
    for label, seconds, rate in lines:
        print(f"  {label:34}{seconds:>9.3f}{rate:>12,}")
    print(f"  ratio intake/baseline: {report['ratio']:.3f}")
    print(
        f"  peak RSS of a fresh process running the intake: {report['peak_rss_mb']} MB "
        f"(after imports: {report['startup_rss_mb']} MB)"
    )
    print(f"  accepted {report['accepted']:,}, rejected {report['rejected']:,} (as generated)")


def main() -> None:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (best counts)")
    parser.add_argument("--encoding", choices=["cp932", "utf-8"], default="cp932")
    parser.add_argument("--child-rss", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        child_main(args.child_rss)
        return
    report = measure(args.rows, encoding=args.encoding, repeat=args.repeat)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
