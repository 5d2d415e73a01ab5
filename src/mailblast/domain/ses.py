"""What each SES ``SendBulkEmail`` result means for the recipient and the campaign."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

import attrs

from mailblast.domain.messages import DeliveryReport
from mailblast.domain.recipient import OUTCOME_UNKNOWN, RecipientStatus, SendOutcome

__all__ = ["SES_STATUSES", "Disposition", "Settlement", "classify_ses_status", "settle"]


class Disposition(enum.StrEnum):
    """What to do with a recipient after one SES result."""

    SENT = "sent"  # accepted: record sent with the MessageId
    RETRY = "retry"  # rate or quota: try later; never counted as a failure
    FAILED = "failed"  # this address was refused: record failed with the reason
    STOP = "stop"  # configuration or account problem: every further send would fail too


_D = Disposition

#: Every per-destination status of SES v2 SendBulkEmail.
SES_STATUSES: Mapping[str, Disposition] = {
    "SUCCESS": _D.SENT,
    "MESSAGE_REJECTED": _D.FAILED,
    "INVALID_PARAMETER": _D.FAILED,
    "FAILED": _D.FAILED,
    "ACCOUNT_THROTTLED": _D.RETRY,
    "ACCOUNT_DAILY_QUOTA_EXCEEDED": _D.RETRY,
    "TRANSIENT_FAILURE": _D.RETRY,
    "MAIL_FROM_DOMAIN_NOT_VERIFIED": _D.STOP,
    "CONFIGURATION_SET_NOT_FOUND": _D.STOP,
    "TEMPLATE_NOT_FOUND": _D.STOP,
    "ACCOUNT_SUSPENDED": _D.STOP,
    "INVALID_SENDING_POOL_NAME": _D.STOP,
    "ACCOUNT_SENDING_PAUSED": _D.STOP,
    "CONFIGURATION_SET_SENDING_PAUSED": _D.STOP,
}


def classify_ses_status(status: str) -> Disposition:
    """Map one per-destination status; an unknown one fails that recipient only."""
    return SES_STATUSES.get(status.upper(), Disposition.FAILED)


@attrs.frozen
class Settlement:
    """What one SendBulkEmail answer means for the batch."""

    outcomes: list[SendOutcome]  # to record: sent or failed
    retry: list[int]  # certainly not sent: release and try later
    stop_reason: str | None  # set when the campaign must stop


def settle(recipient_ids: Sequence[int], reports: Sequence[DeliveryReport]) -> Settlement:
    """Turn per-destination reports into outcomes; a recipient SES said nothing about
    has an unknown outcome (failed, never resent)."""
    outcomes: list[SendOutcome] = []
    retry: list[int] = []
    stop_reason: str | None = None
    for report in reports:
        disposition = classify_ses_status(report.status)
        if disposition is Disposition.SENT:
            outcomes.append(
                SendOutcome(
                    recipient_id=report.recipient_id,
                    status=RecipientStatus.SENT,
                    message_id=report.message_id,
                )
            )
        elif disposition is Disposition.FAILED:
            error = f"{report.status}: {report.error}" if report.error else report.status
            outcomes.append(
                SendOutcome(
                    recipient_id=report.recipient_id,
                    status=RecipientStatus.FAILED,
                    error=error[:500],
                )
            )
        else:
            retry.append(report.recipient_id)
            if disposition is Disposition.STOP and stop_reason is None:
                detail = f" ({report.error})" if report.error else ""
                stop_reason = f"SES refused to send: {report.status}{detail}"
    answered = {report.recipient_id for report in reports}
    outcomes.extend(failed_all([i for i in recipient_ids if i not in answered], OUTCOME_UNKNOWN))
    return Settlement(outcomes, retry, stop_reason)


def failed_all(recipient_ids: Sequence[int], reason: str) -> list[SendOutcome]:
    """The same failure for every recipient."""
    return [
        SendOutcome(recipient_id=i, status=RecipientStatus.FAILED, error=reason[:500])
        for i in recipient_ids
    ]


__all__ += ["failed_all"]
