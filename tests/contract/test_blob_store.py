"""Contract of BlobStore: whole and streamed reads, listing, prefixes, upload keys."""

from __future__ import annotations

from typing import Any

import pytest

from mailblast.domain.errors import BlobNotFoundError


async def test_put_then_get_and_size(blob_store: Any) -> None:
    """An object reads back byte for byte, with its size."""
    data = "email,name\nа@example.com,名前\n".encode()
    await blob_store.put("imports/c/i/chunks/00000.jsonl", data)
    assert await blob_store.get("imports/c/i/chunks/00000.jsonl") == data
    assert await blob_store.size("imports/c/i/chunks/00000.jsonl") == len(data)


async def test_stream_yields_bounded_chunks_that_add_up(blob_store: Any) -> None:
    """Streaming never hands out more than chunk_size bytes at once."""
    data = bytes(range(256)) * 1000
    await blob_store.put("uploads/x.csv", data)
    parts = [part async for part in blob_store.stream("uploads/x.csv", chunk_size=10_000)]
    assert b"".join(parts) == data
    assert max(len(p) for p in parts) <= 10_000
    assert len(parts) >= len(data) // 10_000


async def test_missing_objects_are_not_found(blob_store: Any) -> None:
    """get, size and stream of a missing key raise BlobNotFoundError."""
    with pytest.raises(BlobNotFoundError):
        await blob_store.get("uploads/none.csv")
    with pytest.raises(BlobNotFoundError):
        await blob_store.size("uploads/none.csv")
    with pytest.raises(BlobNotFoundError):
        async for _ in blob_store.stream("uploads/none.csv"):
            pass


async def test_list_and_delete_by_prefix(blob_store: Any) -> None:
    """Listing is sorted and limited to the prefix; deleting a prefix leaves the rest."""
    for key in ("a/1", "a/0", "a/b/2", "ab/3", "c/4"):
        await blob_store.put(key, b"x")
    assert await blob_store.list_keys("a/") == ["a/0", "a/1", "a/b/2"]
    assert await blob_store.delete_prefix("a/") == 3
    assert await blob_store.list_keys("a") == ["ab/3"]
    assert await blob_store.get("c/4") == b"x"


async def test_presigned_upload_keys_are_ours_and_fresh(blob_store: Any) -> None:
    """Upload keys live under uploads/, are unique, and expire within 15 minutes."""
    first = await blob_store.presign_upload(expires_in=3600)
    second = await blob_store.presign_upload()
    assert first.s3_key.startswith("uploads/")
    assert first.s3_key != second.s3_key
    assert ".." not in first.s3_key
    assert first.url
