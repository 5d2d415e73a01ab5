"""What each SES ``SendBulkEmail`` result means for the recipient and the campaign."""

from __future__ import annotations

import enum
from collections.abc import Mapping

__all__ = ["SES_STATUSES", "Disposition", "classify_ses_status"]


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
