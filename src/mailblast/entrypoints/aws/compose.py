"""The one composition root of the Lambda functions.

A Lambda container lives for many invocations. Settings are read from the environment
once, on the first invocation; one `asyncio.Runner` is kept for the container's life so
the asyncpg pool and the aiobotocore clients, created lazily on its loop, survive warm
starts; structlog is configured once (JSON). The wiring itself is a `DepsFactory`, which
tests replace with `use` (in-memory fakes, or real adapters with a fault injected).

Nothing here connects, reads the environment or configures logging at import time, and
boto/asyncpg are imported only when the AWS wiring is first built (cold starts).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import structlog

from mailblast.domain.addresses import mask_addresses
from mailblast.domain.errors import InvalidInputError
from mailblast.domain.intake import IntakeLimits
from mailblast.services.deps import Deps, ServiceSettings

if TYPE_CHECKING:
    from mailblast.adapters.aws import AwsSettings

__all__ = [
    "ENV_VARS",
    "Container",
    "DepsFactory",
    "LambdaContext",
    "LambdaSettings",
    "Wiring",
    "build_aws_deps",
    "container",
    "invoke",
    "reset",
    "use",
]

_T = TypeVar("_T")

log = structlog.get_logger("mailblast.lambda")

#: The environment variables this module reads (the AWS adapters read ``MAILBLAST_AWS_*``,
#: ``MAILBLAST_S3_BUCKET`` and the like through `AwsSettings.from_env`).
ENV_VARS: Mapping[str, str] = {
    "database_url": "MAILBLAST_DATABASE_URL",
    "db_secret_arn": "MAILBLAST_DB_SECRET_ARN",
    "db_host": "MAILBLAST_DB_HOST",
    "db_port": "MAILBLAST_DB_PORT",
    "db_name": "MAILBLAST_DB_NAME",
    "db_pool_size": "MAILBLAST_DB_POOL_SIZE",
    "chunk_rows": "MAILBLAST_CHUNK_ROWS",
    "page_size": "MAILBLAST_PAGE_SIZE",
    "poll_seconds": "MAILBLAST_POLL_SECONDS",
    "claim_lease_seconds": "MAILBLAST_CLAIM_LEASE_SECONDS",
    "max_csv_bytes": "MAILBLAST_MAX_CSV_BYTES",
    "max_csv_rows": "MAILBLAST_MAX_CSV_ROWS",
    "log_level": "MAILBLAST_LOG_LEVEL",
}


class LambdaContext(Protocol):
    """The part of the Lambda context object the handlers use."""

    @property
    def aws_request_id(self) -> str:
        """The invocation's request id."""
        ...


@attrs.frozen(kw_only=True)
class LambdaSettings:
    """Everything a Lambda function reads from its environment, read once."""

    environ: Mapping[str, str] = attrs.field(repr=False, factory=dict)
    service: ServiceSettings = attrs.field(factory=ServiceSettings)
    #: A full DSN (local use, tests); on AWS the DSN is built from the RDS Proxy endpoint
    #: and the database secret instead, so no password sits in the function's settings.
    database_url: str | None = attrs.field(default=None, repr=False)
    db_secret_arn: str | None = None
    db_host: str | None = None
    db_port: int = 5432
    db_name: str = "mailblast"
    db_pool_size: int = 2
    #: Seconds between two counts of pending recipients in the send workflow.
    poll_seconds: int = 60
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LambdaSettings:
        """Read the ``MAILBLAST_*`` variables of `ENV_VARS`; `InvalidInputError` names
        every malformed one."""
        errors: dict[str, str] = {}

        def text(field: str) -> str | None:
            return environ.get(ENV_VARS[field], "").strip() or None

        def number(field: str, default: int) -> int:
            raw = text(field)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                errors[ENV_VARS[field]] = f"must be a whole number, not {raw!r}"
                return default
            if value <= 0:
                errors[ENV_VARS[field]] = f"must be positive, not {raw!r}"
                return default
            return value

        defaults = ServiceSettings()
        service = ServiceSettings(
            intake=IntakeLimits(
                max_bytes=number("max_csv_bytes", defaults.intake.max_bytes),
                max_rows=number("max_csv_rows", defaults.intake.max_rows),
            ),
            chunk_rows=number("chunk_rows", defaults.chunk_rows),
            page_size=number("page_size", defaults.page_size),
            claim_lease_seconds=number("claim_lease_seconds", int(defaults.claim_lease_seconds)),
        )
        settings = cls(
            environ=dict(environ),
            service=service,
            database_url=text("database_url"),
            db_secret_arn=text("db_secret_arn"),
            db_host=text("db_host"),
            db_port=number("db_port", 5432),
            db_name=text("db_name") or "mailblast",
            db_pool_size=number("db_pool_size", 2),
            poll_seconds=number("poll_seconds", 60),
            log_level=(text("log_level") or "INFO").upper(),
        )
        if errors:
            raise InvalidInputError(errors)
        return settings

    def aws(self) -> AwsSettings:
        """The AWS adapters' settings, from the same environment."""
        from mailblast.adapters.aws import AwsSettings

        return AwsSettings.from_env(self.environ)


@attrs.frozen(kw_only=True)
class Wiring:
    """What a `DepsFactory` builds: the ports, and how to release what they hold."""

    deps: Deps
    close: Callable[[], Coroutine[Any, Any, None]] | None = None


#: Builds the ports once per container, on the container's event loop.
DepsFactory = Callable[[LambdaSettings], Awaitable[Wiring]]


async def _database_dsn(settings: LambdaSettings, aws: AwsSettings) -> str:
    if settings.database_url:
        return settings.database_url
    if not settings.db_secret_arn or not settings.db_host:
        raise InvalidInputError(
            {
                ENV_VARS["database_url"]: "set it, or set both of",
                ENV_VARS["db_secret_arn"]: "the database secret (username, password)",
                ENV_VARS["db_host"]: "the RDS Proxy endpoint",
            }
        )
    from urllib.parse import quote

    import aioboto3

    kwargs: dict[str, Any] = {}
    if aws.region:
        kwargs["region_name"] = aws.region
    if aws.endpoint_url:
        kwargs["endpoint_url"] = aws.endpoint_url
    client: Any
    async with aioboto3.Session().client("secretsmanager", **kwargs) as client:
        response = await client.get_secret_value(SecretId=settings.db_secret_arn)
    secret = json.loads(response["SecretString"])
    user = quote(str(secret["username"]), safe="")
    password = quote(str(secret["password"]), safe="")
    # RDS Proxy requires TLS
    return (
        f"postgresql://{user}:{password}@{settings.db_host}:{settings.db_port}/"
        f"{settings.db_name}?sslmode=require"
    )


async def build_aws_deps(settings: LambdaSettings) -> Wiring:
    """The production wiring: PostgreSQL behind RDS Proxy (no statement cache: prepared
    statements would pin proxy connections), S3, SES, SQS and Step Functions."""
    from mailblast.adapters.aws import (
        AwsClients,
        S3BlobStore,
        SesMailer,
        SqsBatchQueue,
        StepFunctionsWorkflowEngine,
    )
    from mailblast.adapters.memory.clock import SystemClock
    from mailblast.adapters.postgres import (
        PostgresCampaignRepo,
        PostgresPool,
        PostgresRecipientRepo,
        PostgresSettings,
    )

    aws = settings.aws()
    pool = PostgresPool(
        PostgresSettings(
            await _database_dsn(settings, aws),
            min_size=0,
            max_size=settings.db_pool_size,
            statement_cache_size=0,
            application_name="mailblast-lambda",
        )
    )
    clients = AwsClients(aws)
    deps = Deps(
        campaigns=PostgresCampaignRepo(pool),
        recipients=PostgresRecipientRepo(pool),
        blobs=S3BlobStore(clients),
        mailer=SesMailer(clients),
        queue=SqsBatchQueue(clients),
        workflows=StepFunctionsWorkflowEngine(clients),
        clock=SystemClock(),
        settings=settings.service,
    )

    async def close() -> None:
        await clients.close()
        await pool.close()

    return Wiring(deps=deps, close=close)


def _mask_rendered(_logger: object, _name: str, rendered: Any) -> str:
    # runs after the JSON renderer, so ``rendered`` is the line itself
    return mask_addresses(str(rendered))


def _configure_logging(level: str) -> None:
    import logging

    if structlog.is_configured():
        return  # an embedding application (or the test suite) decided already
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # tracebacks as data, without local variables (they may hold addresses)
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
            # the last safety net: whatever an event or a traceback quotes, addresses masked
            _mask_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level, logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=True,
    )


class Container:
    """One Lambda container: its settings, its event loop and its wiring.

    `run` is called once per invocation, never concurrently (a container handles one
    event at a time).
    """

    def __init__(self, settings: LambdaSettings, factory: DepsFactory) -> None:
        self.settings = settings
        self._factory = factory
        self._runner = asyncio.Runner()
        self._wiring: Wiring | None = None

    async def _deps(self) -> Deps:
        if self._wiring is None:
            self._wiring = await self._factory(self.settings)
        return self._wiring.deps

    def run(
        self,
        work: Callable[[Deps], Awaitable[_T]],
        *,
        function: str,
        context: LambdaContext | None = None,
        **bind: str,
    ) -> _T:
        """Run one invocation's work on the container's loop, with a fresh log context
        (request id, function, and whatever ``bind`` names) and one closing log line."""

        async def invocation() -> _T:
            # the runner's context is shared by every invocation: start each one clean
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(
                function=function,
                request_id=getattr(context, "aws_request_id", None) or "-",
                **bind,
            )
            started = time.monotonic()
            outcome = "error"
            try:
                result = await work(await self._deps())
                outcome = "ok"
                return result
            finally:
                log.info(
                    "mailblast.lambda.invoked",
                    outcome=outcome,
                    duration_ms=round((time.monotonic() - started) * 1000, 1),
                )

        return self._runner.run(invocation())

    def close(self) -> None:
        """Release the wiring and the loop (tests; a Lambda container just ends)."""
        wiring, self._wiring = self._wiring, None
        if wiring is not None and wiring.close is not None:
            self._runner.run(wiring.close())
        self._runner.close()


_factory: DepsFactory = build_aws_deps
_environ: Mapping[str, str] | None = None
_container: Container | None = None


def container() -> Container:
    """The container's one `Container`, made on the first invocation."""
    global _container  # noqa: PLW0603
    if _container is None:
        settings = LambdaSettings.from_env(os.environ if _environ is None else _environ)
        _configure_logging(settings.log_level)
        _container = Container(settings, _factory)
    return _container


def use(factory: DepsFactory | None, *, environ: Mapping[str, str] | None = None) -> None:
    """Wire the handlers with ``factory`` (None: the AWS wiring) and read settings from
    ``environ`` (None: the process environment) from the next invocation on."""
    global _factory, _environ  # noqa: PLW0603
    reset()
    _factory = build_aws_deps if factory is None else factory
    _environ = environ


def reset() -> None:
    """Close the current container; the next invocation makes a new one."""
    global _container
    current, _container = _container, None
    if current is not None:
        current.close()


def invoke(
    work: Callable[[Deps], Awaitable[_T]],
    *,
    function: str,
    context: LambdaContext | None = None,
    **bind: str,
) -> _T:
    """Run ``work`` for one invocation of ``function`` in the current container."""
    return container().run(work, function=function, context=context, **bind)
