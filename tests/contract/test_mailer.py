"""Contract of Mailer: one report per destination, in order, with message ids."""

from __future__ import annotations

from typing import Any

import pytest

from mailblast.domain.campaign import MessageContent
from mailblast.domain.messages import BulkEmail, Destination


def bulk(n: int) -> BulkEmail:
    """A bulk email to ``n`` simulator addresses."""
    return BulkEmail(
        from_address="news@example.com",
        content=MessageContent(
            subject="Hi {{name}}", text="Hello {{name}}", html="<b>{{name}}</b>"
        ),
        destinations=[
            Destination(
                recipient_id=i,
                email=f"success+{i}@simulator.amazonses.com",
                replacements={"name": f"名前{i}"},
                tags={"campaign_id": "c", "recipient_id": str(i)},
            )
            for i in range(1, n + 1)
        ],
    )


@pytest.mark.parametrize("n", [1, 50])
async def test_every_destination_gets_a_report_in_order(mailer: Any, n: int) -> None:
    """SendBulkEmail answers each destination, in the order given, with a MessageId."""
    reports = await mailer.send_bulk(bulk(n))
    assert [r.recipient_id for r in reports] == list(range(1, n + 1))
    assert all(r.status == "SUCCESS" and r.message_id for r in reports)
    assert len({r.message_id for r in reports}) == n


async def test_more_than_fifty_destinations_are_refused(mailer: Any) -> None:
    """SES takes at most 50 destinations; the adapter refuses more before calling."""
    with pytest.raises(ValueError, match="50"):
        await mailer.send_bulk(bulk(51))
