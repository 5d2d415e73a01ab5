"""One aioboto3 session and its clients, created lazily on the running loop and reused.

aiobotocore clients hold an aiohttp connection pool bound to the event loop they were
created on. A Lambda container keeps one loop for its life (STYLE 7), so clients are
created on first use and kept; `AwsClients.close` releases them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aioboto3
from aiobotocore.config import AioConfig

from mailblast.adapters.aws.settings import AwsSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_sesv2.client import SESV2Client
    from types_aiobotocore_sqs.client import SQSClient
    from types_aiobotocore_stepfunctions.client import SFNClient

__all__ = ["AwsClients"]

_C = TypeVar("_C")


class AwsClients:
    """The AWS clients of one process: one per service, made on first use, reused.

    Use it as ``async with AwsClients(settings) as clients:`` or call `close` when done.
    All use must happen on one event loop.
    """

    def __init__(self, settings: AwsSettings, *, session: aioboto3.Session | None = None) -> None:
        self.settings = settings
        self._session = session
        self._stack: contextlib.AsyncExitStack | None = None
        self._clients: dict[str, object] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> AwsClients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- configuration -----------------------------------------------------------------

    def _config(self, *, attempts: int, **extra: Any) -> AioConfig:
        return AioConfig(
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            retries={"total_max_attempts": attempts, "mode": "standard"},
            user_agent_extra="mailblast",
            **extra,
        )

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.settings.region:
            kwargs["region_name"] = self.settings.region
        if self.settings.endpoint_url:
            kwargs["endpoint_url"] = self.settings.endpoint_url
        return kwargs

    # --- the clients -------------------------------------------------------------------

    async def s3(self) -> S3Client:
        """The S3 client (SigV4; path-style addressing against an emulator, virtual-hosted
        on AWS, which also gives presigned URLs the bucket's regional host)."""
        style = "path" if self.settings.endpoint_url else "virtual"
        config = self._config(
            attempts=self.settings.max_attempts,
            signature_version="s3v4",
            s3={"addressing_style": style},
        )
        return await self._get(
            "s3", lambda: self.session.client("s3", config=config, **self._kwargs())
        )

    async def sesv2(self) -> SESV2Client:
        """The SES v2 client, with retries off: retrying a SendBulkEmail whose outcome is
        unknown could mail the same people twice; the sender decides instead.

        Each call opens its own connection: a pooled keep-alive connection that the
        server closed while idle (a frozen Lambda) would fail mid-request and make a
        call that never reached SES look like an unknown outcome."""
        config = self._config(
            attempts=1, connector_args={"force_close": True, "keepalive_timeout": None}
        )
        return await self._get(
            "sesv2", lambda: self.session.client("sesv2", config=config, **self._kwargs())
        )

    async def sqs(self) -> SQSClient:
        """The SQS client."""
        config = self._config(attempts=self.settings.max_attempts)
        return await self._get(
            "sqs", lambda: self.session.client("sqs", config=config, **self._kwargs())
        )

    async def sfn(self) -> SFNClient:
        """The Step Functions client."""
        config = self._config(attempts=self.settings.max_attempts)
        return await self._get(
            "stepfunctions",
            lambda: self.session.client("stepfunctions", config=config, **self._kwargs()),
        )

    @property
    def session(self) -> aioboto3.Session:
        """The one aioboto3 session (made on first use)."""
        if self._session is None:
            self._session = aioboto3.Session()
        return self._session

    async def _get(
        self, service: str, make: Callable[[], contextlib.AbstractAsyncContextManager[_C]]
    ) -> _C:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            msg = (
                "AwsClients was first used on another event loop; keep one loop for the "
                "life of the process (one asyncio.Runner), or make one AwsClients per loop"
            )
            raise RuntimeError(msg)
        client = self._clients.get(service)
        if client is not None:
            return cast("_C", client)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            client = self._clients.get(service)
            if client is None:
                if self._stack is None:
                    self._stack = contextlib.AsyncExitStack()
                client = await self._stack.enter_async_context(make())
                self._clients[service] = client
        return cast("_C", client)

    async def close(self) -> None:
        """Close every client made so far; the object can be used again afterwards."""
        stack, self._stack = self._stack, None
        self._clients.clear()
        self._loop = None
        self._lock = None
        if stack is not None:
            await stack.aclose()
