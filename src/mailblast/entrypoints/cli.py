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

    demo = commands.add_parser(
        "demo", help="run a whole campaign on generated recipients, in this process"
    )
    demo.add_argument(
        "--recipients", type=int, default=200_000, metavar="N", help="rows to generate (200,000)"
    )
    demo.add_argument(
        "--rate", type=float, metavar="R", help="messages per second (default: no limit)"
    )
    demo.add_argument("--dsn", help="use PostgreSQL (migrated first) instead of memory")
    demo.add_argument("--json", action="store_true", help="print only one JSON object")
    demo.add_argument(
        "--schedule-in",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="schedule the send this long after registration (3)",
    )
    demo.add_argument("--workers", type=int, default=4, help="queue consumers (4)")
    _log_options(demo)

    send = commands.add_parser(
        "send", help="run one real campaign in the foreground (Ctrl-C stops, a rerun resumes)"
    )
    send.add_argument("csv", help="the recipient CSV file")
    send.add_argument(
        "--from", dest="from_address", required=True, metavar="ADDR", help="the sender"
    )
    send.add_argument("--subject", required=True, metavar="S", help="may use {{column}}")
    send.add_argument("--text", metavar="FILE", help="the plain-text body (UTF-8)")
    send.add_argument("--html", metavar="FILE", help="the HTML body (UTF-8)")
    send.add_argument("--at", required=True, metavar="ISO8601", help="when to send, with an offset")
    send.add_argument("--dsn", help="PostgreSQL: needed to resume an interrupted run")
    send.add_argument(
        "--mailer", default="ses", metavar="ses|mbox:PATH", help="SES, or an mbox file (ses)"
    )
    send.add_argument(
        "--rate", type=float, metavar="R", help="messages per second (SES: the account's)"
    )
    send.add_argument("--workers", type=int, default=8, help="queue consumers (8)")
    send.add_argument("--json", action="store_true", help="print only one JSON object")
    _log_options(send)
    return parser


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-json", action="store_true", help="logs as JSON lines on stderr")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log INFO events too (default: WARNING)"
    )


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
    if args.command == "demo":
        from mailblast.entrypoints.demo import main_demo

        return main_demo(args)
    if args.command == "send":
        from mailblast.entrypoints.send import main_send

        return main_send(args)
    parser.print_help(sys.stderr)
    return 2
