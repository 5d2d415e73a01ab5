"""A mailer that writes every rendered message to a standard mbox file.

A person can open the file in a mail client (Thunderbird, mutt, Apple Mail's import) and
read exactly what each recipient would get: the ``{{field}}`` placeholders filled the
way SES fills them, a text part and, when the campaign has one, an HTML alternative.
"""

from __future__ import annotations

import asyncio
import mailbox
import re
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid
from pathlib import Path

from mailblast.domain.errors import PermanentError, TransientError
from mailblast.domain.messages import BulkEmail, DeliveryReport, Destination
from mailblast.domain.render import render
from mailblast.ports import Clock, SendQuota

__all__ = ["MboxMailer"]

_FROM_LINE = re.compile(r"^From ", re.MULTILINE)


def _cte(body: str) -> str | None:
    """base64 for a body with a line opening with "From ": mbox would store it as
    ">From " and the reader would see the ">"; otherwise the email package's choice."""
    return "base64" if _FROM_LINE.search(body) else None


class MboxMailer:
    """Appends one MIME message per destination to the mbox at ``path``.

    Each call's messages are written and flushed before it returns, so a message a
    report calls SUCCESS is in the file. The file is opened on the first send and kept
    open (and locked against other mail programs) until `close`.
    """

    def __init__(self, path: str | Path, *, clock: Clock) -> None:
        self.path = Path(path)
        self._clock = clock
        self._box: mailbox.mbox | None = None
        self._lock: asyncio.Lock | None = None  # created on the running loop
        self.messages = 0

    def _render(self, email: BulkEmail, dest: Destination) -> EmailMessage:
        content = email.content
        data = dest.replacements
        # the default policy writes LF line ends, as mbox files have them
        message = EmailMessage(policy=default_policy)
        message["From"] = email.from_address
        message["To"] = dest.email
        message["Subject"] = render(content.subject, data)
        message["Date"] = format_datetime(self._clock.now())
        domain = email.from_address.rpartition("@")[2] or "mailblast.invalid"
        message["Message-ID"] = make_msgid(domain=domain)
        for name, value in dest.headers.items():
            message[name] = value
        text = render(content.text, data)
        html = render(content.html, data) if content.html else None
        if content.text.strip() or html is None:
            message.set_content(text, cte=_cte(text))
            if html is not None:
                message.add_alternative(html, subtype="html", cte=_cte(html))
        else:
            message.set_content(html, subtype="html", cte=_cte(html))
        return message

    def _write(self, email: BulkEmail, reports: list[DeliveryReport]) -> None:
        if self._box is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._box = mailbox.mbox(self.path, create=True)
            self._box.lock()
        for dest in email.destinations:
            message = self._render(email, dest)
            self._box.add(message)
            message_id = str(message["Message-ID"]).strip("<>")
            reports.append(
                DeliveryReport(
                    recipient_id=dest.recipient_id, status="SUCCESS", message_id=message_id
                )
            )
        self._box.flush()
        self.messages += len(reports)

    async def send_bulk(self, email: BulkEmail) -> list[DeliveryReport]:
        """Render and append every destination; one SUCCESS report each, with its
        Message-ID. A file that cannot be written is a `PermanentError` when nothing of
        the call was written, a `TransientError` (outcome unknown) when some was."""
        if not 0 < len(email.destinations) <= 50:
            msg = f"SendBulkEmail takes 1 to 50 destinations, not {len(email.destinations)}"
            raise ValueError(msg)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # mailbox.mbox is not thread-safe: one writer at a time
            reports: list[DeliveryReport] = []
            try:
                await asyncio.to_thread(self._write, email, reports)
            except OSError as exc:
                msg = f"cannot write the mbox file {self.path}: {exc.strerror or exc}"
                if reports:
                    raise TransientError(msg) from exc
                raise PermanentError(msg) from exc
            return reports

    async def quota(self) -> SendQuota | None:
        """A file has no sending limit."""
        return None

    def close(self) -> None:
        """Flush, unlock and close the file (sending again reopens it)."""
        if self._box is not None:
            box, self._box = self._box, None
            box.flush()
            box.unlock()
            box.close()
