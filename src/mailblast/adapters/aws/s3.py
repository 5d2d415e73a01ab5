"""`BlobStore` on S3: uploaded CSVs (presigned PUT), normalized chunks, rejected-row reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mailblast.adapters.aws._errors import TRANSLATED, error_code, translate
from mailblast.adapters.aws.session import AwsClients
from mailblast.adapters.aws.settings import MAX_UPLOAD_EXPIRES_SECONDS
from mailblast.domain.errors import BlobNotFoundError, InvalidInputError, TransientError
from mailblast.domain.keys import UPLOAD_PREFIX, check_key, new_upload_key
from mailblast.ports import PresignedUpload

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

__all__ = ["UPLOAD_PREFIX", "S3BlobStore"]

_NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404"})
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys


class S3BlobStore:
    """Objects in one S3 bucket, read as streams, never whole unless asked."""

    def __init__(self, clients: AwsClients, *, bucket: str | None = None) -> None:
        self._clients = clients
        self.bucket = clients.settings.require("bucket", bucket)
        self._max_expires = clients.settings.upload_expires_seconds

    def _fail(self, exc: BaseException, action: str, key: str | None = None) -> Exception:
        if key is not None and error_code(exc) in _NOT_FOUND:
            return BlobNotFoundError(key)
        return translate(exc, action=f"S3 {action}")

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Write a whole object."""
        check_key(key)
        client = await self._clients.s3()
        try:
            await client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )
        except TRANSLATED as exc:
            raise self._fail(exc, "PutObject") from exc

    async def get(self, key: str) -> bytes:
        """Read a whole (small) object; `BlobNotFoundError` if missing."""
        client = await self._clients.s3()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            # not "as body": aiobotocore's __aenter__ returns the raw aiohttp response
            async with body:
                return await body.read()
        except TRANSLATED as exc:
            raise self._fail(exc, "GetObject", key) from exc

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Read an object in chunks of exactly ``chunk_size`` bytes (the last may be
        shorter), holding about one chunk in memory; `BlobNotFoundError` if missing."""
        if chunk_size <= 0:
            raise InvalidInputError({"chunk_size": "must be positive"})
        client = await self._clients.s3()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=key)
        except TRANSLATED as exc:
            raise self._fail(exc, "GetObject", key) from exc
        pending = bytearray()
        body = response["Body"]
        async with body:
            while True:
                try:
                    piece = await body.read(chunk_size - len(pending))
                except TRANSLATED as exc:
                    raise self._fail(exc, "GetObject (reading)") from exc
                except TimeoutError as exc:
                    raise TransientError(f"S3 GetObject timed out reading {key}") from exc
                if not piece:
                    break
                pending += piece
                if len(pending) >= chunk_size:
                    yield bytes(pending)
                    pending.clear()
        if pending:
            yield bytes(pending)

    async def size(self, key: str) -> int:
        """The object's size in bytes (HEAD); `BlobNotFoundError` if missing."""
        client = await self._clients.s3()
        try:
            response = await client.head_object(Bucket=self.bucket, Key=key)
        except TRANSLATED as exc:
            raise self._fail(exc, "HeadObject", key) from exc
        return int(response["ContentLength"])

    async def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        client = await self._clients.s3()
        keys: list[str] = []
        try:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []) if "Key" in item)
        except TRANSLATED as exc:
            raise self._fail(exc, "ListObjectsV2") from exc
        return sorted(keys)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        keys = await self.list_keys(prefix)
        client = await self._clients.s3()
        for start in range(0, len(keys), _DELETE_BATCH):
            objects: list[ObjectIdentifierTypeDef] = [
                {"Key": key} for key in keys[start : start + _DELETE_BATCH]
            ]
            try:
                response = await client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
            except TRANSLATED as exc:
                raise self._fail(exc, "DeleteObjects") from exc
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                msg = (
                    f"S3 DeleteObjects failed for {len(errors)} of {len(objects)} keys under "
                    f"{prefix}: {first.get('Code', '')}: {first.get('Message', '')}"
                )
                raise TransientError(msg)
        return len(keys)

    async def presign_upload(
        self, *, content_type: str = "text/csv", expires_in: int = MAX_UPLOAD_EXPIRES_SECONDS
    ) -> PresignedUpload:
        """A fresh key under ``uploads/`` and a SigV4 URL to PUT it with exactly this
        ``Content-Type`` (signed in), valid at most `upload_expires_seconds` (<= 900 s)."""
        key = new_upload_key(datetime.now(UTC))
        expires_in = max(1, min(expires_in, self._max_expires))
        client = await self._clients.s3()
        issued = datetime.now(UTC)
        try:
            url = await client.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=expires_in,
                HttpMethod="PUT",
            )
        except TRANSLATED as exc:
            raise self._fail(exc, "presign PutObject") from exc
        return PresignedUpload(key, url, issued + timedelta(seconds=expires_in))
