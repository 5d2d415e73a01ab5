"""The AWS adapters' settings: one frozen record, read once by the composition root."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import attrs

from mailblast.domain.errors import InvalidInputError

__all__ = ["ENV_VARS", "MAX_UPLOAD_EXPIRES_SECONDS", "AwsSettings"]

#: S3 presigned upload URLs live at most this long (15 minutes).
MAX_UPLOAD_EXPIRES_SECONDS = 900

#: Settings field -> the environment variable `AwsSettings.from_env` reads it from.
ENV_VARS: Mapping[str, str] = {
    "region": "MAILBLAST_AWS_REGION",
    "endpoint_url": "MAILBLAST_AWS_ENDPOINT_URL",
    "bucket": "MAILBLAST_S3_BUCKET",
    "queue_url": "MAILBLAST_SQS_QUEUE_URL",
    "dlq_url": "MAILBLAST_SQS_DLQ_URL",
    "import_state_machine_arn": "MAILBLAST_IMPORT_STATE_MACHINE_ARN",
    "send_state_machine_arn": "MAILBLAST_SEND_STATE_MACHINE_ARN",
    "configuration_set": "MAILBLAST_SES_CONFIGURATION_SET",
    "from_address": "MAILBLAST_FROM_ADDRESS",
    "max_attempts": "MAILBLAST_AWS_MAX_ATTEMPTS",
    "connect_timeout": "MAILBLAST_AWS_CONNECT_TIMEOUT",
    "read_timeout": "MAILBLAST_AWS_READ_TIMEOUT",
    "upload_expires_seconds": "MAILBLAST_UPLOAD_EXPIRES_SECONDS",
}

_T = TypeVar("_T", int, float)


def _positive(_: object, attribute: attrs.Attribute[_T], value: _T) -> None:
    if value <= 0:
        msg = f"{attribute.name} must be positive, not {value}"
        raise ValueError(msg)


def _upload_expiry(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 < value <= MAX_UPLOAD_EXPIRES_SECONDS:
        msg = f"{attribute.name} must be 1 to {MAX_UPLOAD_EXPIRES_SECONDS} seconds, not {value}"
        raise ValueError(msg)


@attrs.frozen(kw_only=True)
class AwsSettings:
    """Where the AWS resources are and how hard to try.

    Every resource is optional here because each entrypoint needs only some of them; an
    adapter refuses to be built without the ones it needs.
    """

    #: None lets botocore resolve the region (``AWS_REGION`` in Lambda).
    region: str | None = None
    #: Override for emulators (moto server, LocalStack); None on real AWS.
    endpoint_url: str | None = None
    bucket: str | None = None
    queue_url: str | None = None
    dlq_url: str | None = None
    import_state_machine_arn: str | None = None
    send_state_machine_arn: str | None = None
    configuration_set: str | None = None
    #: Sender used when a campaign has none.
    from_address: str | None = None
    #: Total attempts per call (botocore "standard" retries) for S3, SQS and Step
    #: Functions; SES SendBulkEmail is always tried once (a retry could double-send).
    max_attempts: int = attrs.field(default=4, validator=_positive)
    connect_timeout: float = attrs.field(default=5.0, validator=_positive)
    read_timeout: float = attrs.field(default=30.0, validator=_positive)
    upload_expires_seconds: int = attrs.field(
        default=MAX_UPLOAD_EXPIRES_SECONDS, validator=_upload_expiry
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AwsSettings:
        """Read ``MAILBLAST_*`` variables (see `ENV_VARS`); the region falls back to
        ``AWS_REGION`` / ``AWS_DEFAULT_REGION``. Empty values count as unset.
        `InvalidInputError` names every malformed variable."""
        errors: dict[str, str] = {}

        def text(field: str) -> str | None:
            value = environ.get(ENV_VARS[field], "").strip()
            return value or None

        def number(field: str, parse: Callable[[str], _T], default: _T) -> _T:
            raw = text(field)
            if raw is None:
                return default
            try:
                value = parse(raw)
            except ValueError:
                errors[ENV_VARS[field]] = f"must be a number, not {raw!r}"
                return default
            if value <= 0:
                errors[ENV_VARS[field]] = f"must be positive, not {raw!r}"
                return default
            return value

        region = (
            text("region")
            or environ.get("AWS_REGION", "").strip()
            or environ.get("AWS_DEFAULT_REGION", "").strip()
            or None
        )
        expires = number("upload_expires_seconds", int, MAX_UPLOAD_EXPIRES_SECONDS)
        if expires > MAX_UPLOAD_EXPIRES_SECONDS:
            errors[ENV_VARS["upload_expires_seconds"]] = (
                f"must be at most {MAX_UPLOAD_EXPIRES_SECONDS} seconds"
            )
            expires = MAX_UPLOAD_EXPIRES_SECONDS
        settings = cls(
            region=region,
            endpoint_url=text("endpoint_url"),
            bucket=text("bucket"),
            queue_url=text("queue_url"),
            dlq_url=text("dlq_url"),
            import_state_machine_arn=text("import_state_machine_arn"),
            send_state_machine_arn=text("send_state_machine_arn"),
            configuration_set=text("configuration_set"),
            from_address=text("from_address"),
            max_attempts=number("max_attempts", int, 4),
            connect_timeout=number("connect_timeout", float, 5.0),
            read_timeout=number("read_timeout", float, 30.0),
            upload_expires_seconds=expires,
        )
        if errors:
            raise InvalidInputError(errors)
        return settings

    def require(self, field: str, value: str | None = None) -> str:
        """``value`` if given, else this setting; `InvalidInputError` naming the
        environment variable when neither is set."""
        found = value if value is not None else getattr(self, field)
        if not isinstance(found, str) or not found:
            raise InvalidInputError({ENV_VARS[field]: "must be set"})
        return found
