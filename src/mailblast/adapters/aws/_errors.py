"""Translating botocore and aiohttp failures into mailblast's transient/permanent errors.

The sender decides what to do from the error's class alone (`domain.errors`):
`ThrottledError` and `NotSentError` mean "certainly nothing happened, retry later",
`PermanentError` means "refused, will fail the same way again", and any other
`TransientError` means "it may have happened": for SES, the recipients of such a call
are never sent again. So a failure is only called "not sent" when the request provably
never reached the service.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import aiohttp
from botocore import exceptions as bx

from mailblast.domain.errors import (
    MailblastError,
    NotSentError,
    PermanentError,
    ThrottledError,
    TransientError,
)

__all__ = ["TRANSLATED", "error_code", "translate"]

#: What the adapters catch and hand to `translate`.
TRANSLATED: tuple[type[Exception], ...] = (bx.BotoCoreError, bx.ClientError, aiohttp.ClientError)

#: Codes meaning "refused for rate or quota; nothing was done".
_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "SlowDown",
        "LimitExceededException",  # SES: sending quota; nothing was sent
        "ExecutionLimitExceeded",  # Step Functions: too many running executions
        "OverLimit",  # SQS: too many in-flight messages
        "KMS.ThrottlingException",
    }
)
_THROTTLING_MESSAGES = ("maximum sending rate exceeded", "daily message quota exceeded")

#: Codes meaning "the request was refused before anything was done; may pass later".
_RETRYABLE_REFUSALS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "RequestTimeTooSkewed",
        "IDPCommunicationError",
    }
)

#: botocore errors raised before a request is sent: credentials could not be loaded.
_CREDENTIALS = (
    bx.NoCredentialsError,
    bx.PartialCredentialsError,
    bx.CredentialRetrievalError,
    bx.TokenRetrievalError,
)

# starts only at the beginning of a run of address characters and never backtracks, so
# redacting stays linear in the message's length
_ADDRESS = re.compile(r"(?<![^\s<>\"'(),;:@])[^\s<>\"'(),;:@]++@[^\s<>\"'(),;:]+")
_MAX_MESSAGE = 500
_HTTP_SERVER_ERROR = 500
_HTTP_TOO_MANY_REQUESTS = 429


def _redact(text: str) -> str:
    # SES names addresses in some messages; ours end up in logs and in recipient rows
    return _ADDRESS.sub("<address>", text[: 4 * _MAX_MESSAGE])[:_MAX_MESSAGE]


def error_code(exc: BaseException) -> str:
    """The service's error code of a `ClientError` ('' for anything else)."""
    if isinstance(exc, bx.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _never_connected(exc: BaseException) -> bool:
    """True only when the TCP connection (or the proxy tunnel) was never established."""
    if isinstance(exc, bx.ConnectTimeoutError | bx.ProxyConnectionError):
        return True
    if isinstance(exc, bx.EndpointConnectionError):
        # aiobotocore also wraps resets of an established connection in
        # EndpointConnectionError; only a failure to connect proves nothing was sent
        cause: Any = exc.kwargs.get("error")
        return isinstance(cause, aiohttp.ClientConnectorError | socket.gaierror)
    return False


def translate(exc: BaseException, *, action: str) -> MailblastError:
    """The mailblast error for a failed AWS call; raise it ``from exc``.

    ``action`` says what was attempted ("SES SendBulkEmail"); it starts the message.
    """
    kind: type[MailblastError]
    if isinstance(exc, bx.ClientError):
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or code
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{action} failed: {code}: {message}"
        if (
            code in _THROTTLING
            or status == _HTTP_TOO_MANY_REQUESTS
            or any(m in message.lower() for m in _THROTTLING_MESSAGES)
        ):
            kind = ThrottledError
        elif code in _RETRYABLE_REFUSALS:
            kind = NotSentError
        elif status >= _HTTP_SERVER_ERROR or status == 0:
            kind = TransientError  # the service failed while handling it: it may have acted
        else:
            kind = PermanentError
        return kind(_redact(text))
    text = f"{action} failed: {type(exc).__name__}: {exc}"
    if _never_connected(exc) or isinstance(exc, _CREDENTIALS):
        kind = NotSentError
    elif isinstance(exc, bx.ParamValidationError | bx.ValidationError | bx.NoRegionError):
        kind = PermanentError
    else:
        # read timeouts, closed connections, broken streams: it may have been acted on
        kind = TransientError
    return kind(_redact(text))
