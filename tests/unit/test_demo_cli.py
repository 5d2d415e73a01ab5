"""``mailblast demo`` and ``mailblast send``, run in-process through the CLI."""

from __future__ import annotations

import email.policy
import io
import json
import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from mailblast.domain.addresses import mask_addresses
from mailblast.entrypoints import cli
from mailblast.entrypoints.send import Progress, configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The commands configure structlog for the process: put the test set-up back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``mailblast ARGV`` in this process; (exit status, stdout, stderr)."""
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_demo_json_is_one_object_with_every_recipient_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``demo --json`` prints exactly the documented object: completed, 1% invalid and
    1% duplicate rows rejected, nobody pending, counts that add up."""
    status, out, _err = run_cli(
        capsys, "demo", "--recipients", "2000", "--json", "--schedule-in", "0"
    )
    assert status == 0
    result = json.loads(out)
    assert set(result) == {"campaign_status", "import", "recipients", "seconds", "send_rate_per_s"}
    assert result["campaign_status"] == "completed"
    assert result["import"] == {"accepted": 1960, "rejected": 40}
    recipients = result["recipients"]
    assert set(recipients) == {"pending", "sent", "failed", "bounced"}
    assert recipients["pending"] == 0
    assert recipients["sent"] + recipients["failed"] + recipients["bounced"] == 1960
    assert recipients["sent"] == 1960
    assert set(result["seconds"]) == {"import", "wait", "send", "total"}
    assert all(isinstance(v, float) and v >= 0 for v in result["seconds"].values())
    assert result["seconds"]["total"] >= result["seconds"]["import"]
    assert isinstance(result["send_rate_per_s"], float)
    assert result["send_rate_per_s"] > 0


def test_demo_without_json_prints_the_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    """The table names the status, the import counts and the recipients; stderr (not a
    terminal here) gets one summary line and no progress bars."""
    status, out, err = run_cli(capsys, "demo", "--recipients", "300", "--schedule-in", "0")
    assert status == 0
    assert "completed (送信完了)" in out
    assert "294 accepted, 6 rejected" in out
    assert "pending 0" in out
    assert "consistent   yes" in out
    assert "0 address(es) mailed twice" in out
    assert "\r" not in err
    assert err.count("mailblast demo: completed") == 1


def test_progress_bars_draw_in_place_only_on_a_terminal() -> None:
    """On a terminal a bar is redrawn with carriage returns; elsewhere nothing is drawn."""
    tty = io.StringIO()
    bars = Progress(tty, enabled=True)
    bars.show("send", 10, 100, "10/100")
    bars.show("send", 100, 100, "100/100")
    bars.end()
    assert tty.getvalue().count("\r") == 2
    assert "100%" in tty.getvalue()
    assert tty.getvalue().endswith("\n")
    plain = io.StringIO()
    Progress(plain).show("send", 1, 2)
    assert plain.getvalue() == ""


def write_campaign_files(tmp_path: Path) -> dict[str, Path]:
    """A UTF-8 CSV with Japanese names, a text body and an HTML body."""
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(
        "email,name,plan\n"
        "taro@example.jp,佐藤 太郎,gold\n"
        "hanako@example.jp,鈴木 花子,silver\n"
        "not-an-address,誰か,gold\n"
        "kenta@example.co.jp,田中 健太,bronze\n",
        encoding="utf-8",
    )
    text = tmp_path / "body.txt"
    text.write_text("{{name}} 様\nあなたのプランは {{plan}} です。\n", encoding="utf-8")
    html = tmp_path / "body.html"
    html.write_text("<p>{{name}} 様</p><p>プラン: <b>{{plan}}</b></p>", encoding="utf-8")
    return {"csv": csv_path, "text": text, "html": html}


def read_mbox(path: Path) -> list[Any]:
    """Every message of an mbox, parsed as a mail client would."""
    box = mailbox.mbox(path, create=False)
    return [
        email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        for key in box.iterkeys()
    ]


def test_send_to_an_mbox_writes_every_rendered_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``send --mailer mbox:PATH`` runs the campaign and leaves one readable MIME
    message per valid row, placeholders filled, text and HTML alternatives."""
    files = write_campaign_files(tmp_path)
    out_box = tmp_path / "sent.mbox"
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    status, out, err = run_cli(
        capsys,
        "send",
        str(files["csv"]),
        "--from",
        "news@example.com",
        "--subject",
        "{{name}} 様へのお知らせ",
        "--text",
        str(files["text"]),
        "--html",
        str(files["html"]),
        "--at",
        at,
        "--mailer",
        f"mbox:{out_box}",
        "--json",
    )
    assert status == 0, err
    result = json.loads(out)
    assert result["campaign_status"] == "completed"
    assert result["import"] == {"accepted": 3, "rejected": 1}
    assert result["recipients"]["sent"] == 3
    messages = read_mbox(out_box)
    assert sorted(m["To"] for m in messages) == [
        "hanako@example.jp",
        "kenta@example.co.jp",
        "taro@example.jp",
    ]
    taro = next(m for m in messages if m["To"] == "taro@example.jp")
    assert taro["Subject"] == "佐藤 太郎 様へのお知らせ"
    assert taro["From"] == "news@example.com"
    assert taro["Message-ID"]
    assert taro.get_body(("plain",)).get_content() == "佐藤 太郎 様\nあなたのプランは gold です。\n"
    assert "<b>gold</b>" in taro.get_body(("html",)).get_content()


def test_send_refuses_bad_input_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """No body, a time without an offset, or SES without a database: exit 2 and one
    line that says why, never a traceback."""
    files = write_campaign_files(tmp_path)
    base = ["send", str(files["csv"]), "--from", "news@example.com", "--subject", "Hi"]
    cases = [
        ([*base, "--at", "2026-12-24T09:00:00+09:00", "--mailer", "mbox:x"], "--text FILE"),
        ([*base, "--text", str(files["text"]), "--at", "2026-12-24T09:00"], "UTC offset"),
        ([*base, "--text", str(files["text"]), "--at", "2026-12-24T09:00+09:00"], "needs --dsn"),
    ]
    for argv, reason in cases:
        status, out, err = run_cli(capsys, *argv)
        assert status == 2
        assert out == ""
        assert reason in err
        assert "Traceback" not in err


def test_send_fails_the_import_when_a_placeholder_names_no_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A ``{{field}}`` the CSV lacks fails the import with the name listed; nothing is
    written to the mbox and the exit status is 1."""
    files = write_campaign_files(tmp_path)
    out_box = tmp_path / "sent.mbox"
    status, out, _err = run_cli(
        capsys,
        "send",
        str(files["csv"]),
        "--from",
        "news@example.com",
        "--subject",
        "{{name}}: your {{coupon}}",
        "--text",
        str(files["text"]),
        "--at",
        datetime.now(UTC).isoformat(),
        "--mailer",
        f"mbox:{out_box}",
    )
    assert status == 1
    assert "import_failed" in out
    assert "{{coupon}}" in out
    assert not out_box.exists() or read_mbox(out_box) == []


def test_console_logs_never_show_a_whole_address(capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever a log event carries, an address is masked to its first letter and domain."""
    assert mask_addresses("to taro.sato@example.co.jp and x@y.jp") == (
        "to t***@example.co.jp and x***@y.jp"
    )
    stream = io.StringIO()
    configure_logging(stream=stream)
    log = structlog.get_logger("mailblast.test")
    log.info("mailblast.test.hidden", to="taro@example.jp")
    log.warning("mailblast.test.shown", error="SES refused hanako@example.jp")
    text = stream.getvalue()
    assert "hidden" not in text
    assert "mailblast.test.shown" in text
    assert "hanako@" not in text
    assert "h***@example.jp" in text
