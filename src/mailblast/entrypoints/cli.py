"""The ``mailblast`` command. Each subcommand imports what it needs only when it runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailblast",
        description="Send one email campaign to hundreds of thousands of recipients, once each.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser(
        "csv-check", help="validate a recipient CSV the way an import would"
    )
    check.add_argument("path", help="the CSV file")
    check.add_argument("--json", action="store_true", help="print one JSON object")

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="apply the schema migrations")
    upgrade.add_argument("--dsn", required=True, help="postgresql://user@host:port/database")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from mailblast import __version__

        print(f"mailblast {__version__}")
        return 0
    if args.command == "csv-check":
        from mailblast.entrypoints.csv_check import run_csv_check

        return run_csv_check(args.path, as_json=args.json, out=sys.stdout)
    if args.command == "db" and args.db_command == "upgrade":
        import asyncio

        from mailblast.entrypoints.db import run_db_upgrade

        return asyncio.run(run_db_upgrade(args.dsn, out=sys.stdout))
    parser.print_help(sys.stderr)
    return 2
