"""Import benchmark: a generated CSV through the real import steps into PostgreSQL.

    python bench/import_bench.py [--rows N] [--json]

Generates a CSV of N rows (default 200,000; about 1% invalid and 1% duplicate
addresses) in two variants, CP932 and UTF-8, then in a fresh temporary database:

- baseline: ``psql \\copy`` of each file into an UNLOGGED staging table (best of 3), what
  PostgreSQL itself can do with the bytes;
- import: a campaign registered with the CP932 file and imported through
  `mailblast.services.flows.run_import` (split: decode, validate, de-duplicate, write
  chunks; insert: COPY per chunk, 4 at a time, starting as soon as the first chunk is
  written, while the split goes on; finalize: the swap) until ``scheduled``;
  then the same campaign's CSV replaced by the UTF-8 file (edit B) and imported again,
  so the second swap replaces a live import of N rows and deletes it afterwards.

The database server comes from ``MAILBLAST_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); the benchmark creates and drops its
own database there. Blobs live in a temporary folder (`LocalFolderBlobStore`), so the
CSV is streamed from disk as it would be from S3.

``seconds`` is the slower of the two imports, ``swap_ms`` the slower finalize
transaction (the compare-and-set that flips the campaign to the new import),
``peak_rss_mb`` this process's peak resident set (the CSVs are generated in a child).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

import asyncpg
import structlog

from mailblast.adapters.memory import (
    InMemoryBatchQueue,
    InMemoryMailer,
    InMemoryWorkflowEngine,
    LocalFolderBlobStore,
    SystemClock,
)
from mailblast.adapters.postgres import (
    PostgresCampaignRepo,
    PostgresPool,
    PostgresRecipientRepo,
    PostgresSettings,
    upgrade_dsn,
)
from mailblast.domain.campaign import Campaign, CampaignStatus
from mailblast.domain.recipient import RecipientStatus
from mailblast.services import Deps, ServiceSettings
from mailblast.services.campaigns import CampaignEdit, NewCampaign, edit, register
from mailblast.services.flows import run_import

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
VARIANTS = (("cp932", "SJIS"), ("utf-8", "UTF8"))  # (Python codec, PostgreSQL encoding)
COLUMNS = ("email", "name", "company", "member_no", "registered", "note")


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


class TimedCampaigns(PostgresCampaignRepo):
    """The campaign repo, timing each compare-and-set that schedules a campaign (the swap)."""

    def __init__(self, pool: PostgresPool) -> None:
        super().__init__(pool)
        self.swaps_ms: list[float] = []

    async def update(self, before: Campaign, after: Campaign) -> None:
        """The real update, timed when it is the import swap."""
        start = time.perf_counter()
        await super().update(before, after)
        if after.status is CampaignStatus.SCHEDULED and after.current_import_id != (
            before.current_import_id
        ):
            self.swaps_ms.append((time.perf_counter() - start) * 1000)


class TimedRecipients(PostgresRecipientRepo):
    """The recipient repo, noting when chunk inserts start and end (the insert phase)."""

    def __init__(self, pool: PostgresPool) -> None:
        super().__init__(pool)
        self.first_start = self.last_end = 0.0

    def reset(self) -> None:
        """Forget the previous import's times."""
        self.first_start = self.last_end = 0.0

    async def insert_encoded_chunk(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, chunk_no: int, data: bytes
    ) -> int:
        """The real insert, timed."""
        self.first_start = self.first_start or time.perf_counter()
        inserted = await super().insert_encoded_chunk(campaign_id, import_id, chunk_no, data)
        self.last_end = time.perf_counter()
        return inserted


def generate(folder: Path, rows: int) -> dict[str, Any]:
    """Write both CSV variants in a child process (its memory is not ours to measure)."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from _gen import write_csv; "
        "print(json.dumps([write_csv(p, int(sys.argv[2]), encoding=e)._asdict() "
        "for p, e in zip(sys.argv[3::2], sys.argv[4::2])]))"
    )
    args = [sys.executable, "-c", code, str(BENCH_DIR), str(rows)]
    for encoding, _ in VARIANTS:
        args += [str(folder / f"list-{encoding}.csv"), encoding]
    done = subprocess.run(args, check=True, capture_output=True, text=True)
    expected = json.loads(done.stdout)
    return {encoding: exp for (encoding, _), exp in zip(VARIANTS, expected, strict=True)}


def psql_copy_seconds(dsn: str, path: Path, pg_encoding: str, *, repeat: int = 3) -> float:
    """Best of ``repeat`` ``\\copy`` runs of the file into an UNLOGGED staging table."""
    columns = ", ".join(f"{c} text" for c in COLUMNS)
    setup = f"DROP TABLE IF EXISTS staging; CREATE UNLOGGED TABLE staging ({columns});"
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c", setup], check=True)
    copy = f"\\copy staging FROM '{path}' WITH (FORMAT csv, HEADER true, ENCODING '{pg_encoding}')"
    best = float("inf")
    for _ in range(repeat):
        done = subprocess.run(
            [
                "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn,
                "-c", "TRUNCATE staging",
                "-c", "\\timing on",
                "-c", copy,
            ],
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
        times = re.findall(r"Time: ([0-9.]+) ms", done.stdout)
        best = min(best, float(times[-1]) / 1000)
    subprocess.run(["psql", "-X", "-q", dsn, "-c", "DROP TABLE staging"], check=True)
    return best


async def upload(blobs: LocalFolderBlobStore, source: Path) -> str:
    """Copy a file where a presigned upload would have put it (streamed, not read whole)."""
    presigned = await blobs.presign_upload()
    target = Path(url2pathname(urlsplit(presigned.url).path))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return presigned.s3_key


async def import_runs(dsn: str, folder: Path, expected: dict[str, Any]) -> list[dict[str, Any]]:
    """Register with the CP932 file and import it, then replace it by the UTF-8 file."""
    pool = PostgresPool(PostgresSettings(dsn, min_size=1, max_size=5, command_timeout=600))
    campaigns = TimedCampaigns(pool)
    recipients = TimedRecipients(pool)
    blobs = LocalFolderBlobStore(folder / "blobs")
    clock = SystemClock()
    deps = Deps(
        campaigns=campaigns,
        recipients=recipients,
        blobs=blobs,
        mailer=InMemoryMailer(),
        queue=InMemoryBatchQueue(clock),
        workflows=InMemoryWorkflowEngine(),
        clock=clock,
        settings=ServiceSettings(),
    )
    runs: list[dict[str, Any]] = []
    campaign: Campaign | None = None
    try:
        for encoding, _ in VARIANTS:
            key = await upload(blobs, folder / f"list-{encoding}.csv")
            recipients.reset()
            start = time.perf_counter()
            if campaign is None:
                campaign = await register(
                    deps,
                    NewCampaign(
                        name="benchmark",
                        from_address="news@example.com",
                        subject="{{氏名}} 様へのお知らせ",
                        text="{{氏名}} 様\n{{会社名}}",
                        scheduled_at=datetime.now(UTC) + timedelta(days=1),
                        s3_key=key,
                    ),
                )
            else:
                campaign = await edit(deps, campaign.id, CampaignEdit(s3_key=key))
            import_id = campaign.pending_import_id
            assert import_id is not None
            old_import = campaign.current_import_id
            campaign = await run_import(deps, campaign.id, import_id)
            end = time.perf_counter()
            seconds = end - start
            # run_import inserts chunks while the split still reads the file: the phases
            # are until the first insert, from it to the last insert's end, then finalize
            phases = {
                "split_s": round(recipients.first_start - start, 3),
                "insert_s": round(recipients.last_end - recipients.first_start, 3),
                "finalize_s": round(end - recipients.last_end, 3),
            }
            if campaign.status is not CampaignStatus.SCHEDULED:
                msg = f"the import ended {campaign.status}: {campaign.last_error}"
                raise RuntimeError(msg)
            count_start = time.perf_counter()
            counts = await recipients.count_by_status(campaign.id, import_id)
            count_ms = (time.perf_counter() - count_start) * 1000
            if counts[RecipientStatus.PENDING] != expected[encoding]["accepted"]:
                msg = f"imported {counts} but expected {expected[encoding]}"
                raise RuntimeError(msg)
            async with pool.connection() as conn:
                await conn.execute("VACUUM notification_recipients")
            count_start = time.perf_counter()
            await recipients.count_by_status(campaign.id, import_id)
            vacuumed_count_ms = (time.perf_counter() - count_start) * 1000
            old_left = (
                sum((await recipients.count_by_status(campaign.id, old_import)).values())
                if old_import
                else 0
            )
            runs.append(
                {
                    "encoding": encoding,
                    "replaces_live_import": old_import is not None,
                    "seconds": round(seconds, 3),
                    "accepted": campaign.total_count,
                    "swap_ms": round(campaigns.swaps_ms[-1], 2),
                    **phases,
                    "count_ms_after_import": round(count_ms, 1),
                    "count_ms_after_vacuum": round(vacuumed_count_ms, 1),
                    "old_rows_left": old_left,
                }
            )
    finally:
        await pool.close()
    return runs


async def create_database(server: str) -> str:
    """A fresh migrated database on the server; returns its DSN."""
    name = f"mailblast_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = with_database(server, name)
    await upgrade_dsn(dsn)
    return dsn


async def drop_database(server: str, dsn: str) -> None:
    """Drop the benchmark's database."""
    conn = await asyncpg.connect(server)
    try:
        name = urlsplit(dsn).path.lstrip("/")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="data rows (default 200000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    # one log line per chunk would be measured too
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    server = os.environ.get("MAILBLAST_DSN", DEFAULT_DSN)
    with tempfile.TemporaryDirectory(prefix="mailblast-bench-") as tmp:
        folder = Path(tmp)
        expected = generate(folder, args.rows)
        dsn = asyncio.run(create_database(server))
        try:
            baseline = {
                encoding: psql_copy_seconds(dsn, folder / f"list-{encoding}.csv", pg_encoding)
                for encoding, pg_encoding in VARIANTS
            }
            runs = asyncio.run(import_runs(dsn, folder, expected))
        finally:
            asyncio.run(drop_database(server, dsn))
    slowest = max(runs, key=lambda r: r["seconds"])
    copy_s = baseline[slowest["encoding"]]
    result = {
        "rows": args.rows,
        "seconds": slowest["seconds"],
        "rows_per_s": round(args.rows / slowest["seconds"]),
        "baseline_copy_s": round(copy_s, 3),
        "ratio_to_copy": round(slowest["seconds"] / copy_s, 2),
        "swap_ms": max(r["swap_ms"] for r in runs),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "baseline_copy_s_by_encoding": {k: round(v, 3) for k, v in baseline.items()},
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"rows              {result['rows']:,}")
        for run in runs:
            print(
                f"import {run['encoding']:<6}     {run['seconds']:.2f} s "
                f"({args.rows / run['seconds']:,.0f} rows/s), swap {run['swap_ms']:.1f} ms, "
                f"count {run['count_ms_after_import']:.0f} ms "
                f"({run['count_ms_after_vacuum']:.0f} ms vacuumed)"
                + (", replacing a live import" if run["replaces_live_import"] else "")
            )
            print(
                f"  phases          to first insert {run['split_s']:.2f} s, "
                f"split and inserts {run['insert_s']:.2f} s, "
                f"finalize {run['finalize_s']:.2f} s"
            )
        print(f"psql \\copy        {copy_s:.3f} s (best of 3, {slowest['encoding']})")
        print(f"ratio to \\copy    {result['ratio_to_copy']}x (slower import)")
        print(f"swap              {result['swap_ms']} ms (slower)")
        print(f"peak RSS          {result['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
