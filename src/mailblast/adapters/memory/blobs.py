"""Blob stores in memory and in a local folder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailblast.domain.errors import BlobNotFoundError
from mailblast.domain.keys import check_key, new_upload_key
from mailblast.ports import PresignedUpload

__all__ = ["InMemoryBlobStore", "LocalFolderBlobStore"]


class InMemoryBlobStore:
    """Objects in a dict; streams in chunks like S3 would."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Write a whole object."""
        self.objects[check_key(key)] = bytes(data)

    async def get(self, key: str) -> bytes:
        """Read a whole object."""
        try:
            return self.objects[key]
        except KeyError:
            raise BlobNotFoundError(key) from None

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Read an object in chunks."""
        data = await self.get(key)
        for start in range(0, len(data), chunk_size):
            yield data[start : start + chunk_size]
            await asyncio.sleep(0)

    async def size(self, key: str) -> int:
        """Bytes in the object."""
        return len(await self.get(key))

    async def list_keys(self, prefix: str) -> list[str]:
        """Sorted keys under ``prefix``."""
        return sorted(k for k in self.objects if k.startswith(prefix))

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``."""
        keys = await self.list_keys(prefix)
        for key in keys:
            del self.objects[key]
        return len(keys)

    async def presign_upload(
        self, *, content_type: str = "text/csv", expires_in: int = 900
    ) -> PresignedUpload:
        """A fresh key; the URL is only meaningful to this store (tests PUT via `put`)."""
        key = new_upload_key(datetime.now(UTC))
        expires = datetime.now(UTC) + timedelta(seconds=min(expires_in, 900))
        return PresignedUpload(key, f"memory://{key}", expires)


class LocalFolderBlobStore:
    """Objects as files below a folder: what the local runtime keeps between runs."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Write a whole object (atomically, through a temporary file)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)

    async def get(self, key: str) -> bytes:
        """Read a whole object."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(key) from None

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Read a file in chunks."""
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError:
            raise BlobNotFoundError(key) from None
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk
                await asyncio.sleep(0)

    async def size(self, key: str) -> int:
        """Bytes in the file."""
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(key) from None

    async def list_keys(self, prefix: str) -> list[str]:
        """Sorted keys under ``prefix``."""
        if not self.root.exists():
            return []
        keys = (
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.endswith(".part")
        )
        return sorted(k for k in keys if k.startswith(prefix))

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every file under ``prefix``."""
        keys = await self.list_keys(prefix)
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        return len(keys)

    async def presign_upload(
        self, *, content_type: str = "text/csv", expires_in: int = 900
    ) -> PresignedUpload:
        """A fresh key and the file URL to write it to."""
        key = new_upload_key(datetime.now(UTC))
        expires = datetime.now(UTC) + timedelta(seconds=min(expires_in, 900))
        return PresignedUpload(key, self._path(key).resolve().as_uri(), expires)
