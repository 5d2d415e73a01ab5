"""S3BlobStore against moto's S3 over HTTP: presigned uploads with a plain HTTP PUT, the
properties of the signed URL (moto enforces neither expiry nor signed headers), streaming
a 50 MB object in bounded memory, and errors translated."""

from __future__ import annotations

import hashlib
import re
import tracemalloc
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import aioboto3
import pytest

from backends.aws import REGION, boto3_client, separate_moto_server
from mailblast.adapters.aws import AwsClients, AwsSettings, S3BlobStore
from mailblast.domain.errors import BlobNotFoundError, InvalidInputError, PermanentError

pytestmark = pytest.mark.integration

UPLOAD_KEY = re.compile(r"uploads/\d{4}/\d{2}/\d{2}/[0-9a-f]{32}\.csv")


def put_with_urllib(url: str, data: bytes, content_type: str) -> int:
    """What the browser does: a plain HTTP PUT of the file to the presigned URL."""
    request = urllib.request.Request(
        url, data=data, method="PUT", headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


async def test_presigned_put_with_plain_http_then_read_back(blob_store_s3: S3BlobStore) -> None:
    """A CSV PUT by plain HTTP to the presigned URL is then readable under its key."""
    upload = await blob_store_s3.presign_upload()
    data = "email,name\nuser@example.com,名前\n".encode()
    assert put_with_urllib(upload.url, data, "text/csv") == 200
    assert await blob_store_s3.get(upload.s3_key) == data
    assert await blob_store_s3.size(upload.s3_key) == len(data)


async def test_presigned_url_signs_content_type_and_expires_within_15_minutes(
    blob_store_s3: S3BlobStore,
) -> None:
    """SigV4 query auth, content-type among the signed headers, X-Amz-Expires <= 900."""
    before = datetime.now(UTC)
    long = await blob_store_s3.presign_upload(expires_in=3600)
    short = await blob_store_s3.presign_upload(expires_in=60)
    for upload, seconds in ((long, 900), (short, 60)):
        url = urllib.parse.urlsplit(upload.url)
        query = dict(urllib.parse.parse_qsl(url.query))
        assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert f"/{REGION}/s3/aws4_request" in query["X-Amz-Credential"]
        assert set(query["X-Amz-SignedHeaders"].split(";")) >= {"content-type", "host"}
        assert int(query["X-Amz-Expires"]) == seconds
        assert url.path == f"/{blob_store_s3.bucket}/{upload.s3_key}"
        assert before < upload.expires_at <= datetime.now(UTC) + timedelta(seconds=seconds)


async def test_upload_keys_are_always_fresh_and_under_uploads(blob_store_s3: S3BlobStore) -> None:
    """Every key is uploads/YYYY/MM/DD/<128 random bits>.csv and never repeats."""
    keys = [(await blob_store_s3.presign_upload()).s3_key for _ in range(20)]
    assert all(UPLOAD_KEY.fullmatch(key) for key in keys)
    assert len(set(keys)) == len(keys)


async def test_keys_that_could_escape_a_prefix_are_refused(blob_store_s3: S3BlobStore) -> None:
    """put refuses empty, absolute, dotted or doubled-slash keys before calling S3."""
    for key in ("", "/abs", "a/../b", "a//b", "./a"):
        with pytest.raises(InvalidInputError):
            await blob_store_s3.put(key, b"x")
    assert await blob_store_s3.list_keys("") == []


async def test_a_missing_bucket_is_permanent_not_a_missing_blob(aws_clients: AwsClients) -> None:
    """NoSuchBucket is a PermanentError naming the code, while a missing key is not found."""
    store = S3BlobStore(aws_clients, bucket="mailblast-does-not-exist")
    with pytest.raises(PermanentError, match="NoSuchBucket"):
        await store.put("uploads/a.csv", b"x")
    with pytest.raises(PermanentError, match="NoSuchBucket"):
        await store.list_keys("uploads/")


async def test_content_type_is_stored(
    blob_store_s3: S3BlobStore, aws_settings: AwsSettings
) -> None:
    """put stores the given content type (chunks are NDJSON, reports CSV)."""
    await blob_store_s3.put(
        "imports/c/i/chunks/0.jsonl", b"{}\n", content_type="application/x-ndjson"
    )
    head = boto3_client(aws_settings, "s3").head_object(
        Bucket=blob_store_s3.bucket, Key="imports/c/i/chunks/0.jsonl"
    )
    assert head["ContentType"] == "application/x-ndjson"


def _pattern(size: int) -> bytes:
    block = hashlib.sha256(b"mailblast").digest() * 4096  # 128 KiB, not compressible away
    return (block * (size // len(block) + 1))[:size]


@pytest.mark.usefixtures("aws_environment")
async def test_streaming_50_mb_holds_about_one_chunk_in_memory() -> None:
    """A 50 MB object streams in exact 1 MiB chunks with a traced peak far below 50 MB.

    moto runs in its own process here, so only this process's allocations are traced.
    """
    size = 50 * 1024 * 1024
    chunk = 1 << 20
    with separate_moto_server() as endpoint:
        settings = AwsSettings(region=REGION, endpoint_url=endpoint, bucket="mailblast-big")
        boto3_client(settings, "s3").create_bucket(Bucket="mailblast-big")
        async with AwsClients(settings) as clients:
            store = S3BlobStore(clients)
            data = _pattern(size)
            expected = hashlib.sha256(data).hexdigest()
            await store.put("uploads/big.csv", data)
            del data
            digest = hashlib.sha256()
            lengths: list[int] = []
            tracemalloc.start()
            try:
                async for part in store.stream("uploads/big.csv", chunk_size=chunk):
                    digest.update(part)
                    lengths.append(len(part))
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert digest.hexdigest() == expected
    assert lengths == [chunk] * 50
    assert peak < 8 * 1024 * 1024, f"peak {peak:,} bytes while streaming {size:,}"


async def test_a_stream_abandoned_early_leaves_the_store_usable(blob_store_s3: S3BlobStore) -> None:
    """Breaking off after the first chunk drops that response; the next reads work."""
    data = _pattern(3 * 1024 * 1024)
    await blob_store_s3.put("uploads/abandoned.csv", data)
    parts = blob_store_s3.stream("uploads/abandoned.csv", chunk_size=64 * 1024)
    first = await anext(aiter(parts))
    await parts.aclose()  # type: ignore[attr-defined]
    assert first == data[: 64 * 1024]
    assert await blob_store_s3.get("uploads/abandoned.csv") == data


async def test_not_found_is_not_found_for_every_read(blob_store_s3: S3BlobStore) -> None:
    """A missing key: size (HEAD 404), get and stream raise BlobNotFoundError; deleting an
    empty prefix deletes nothing."""
    with pytest.raises(BlobNotFoundError, match=r"uploads/none\.csv"):
        await blob_store_s3.size("uploads/none.csv")
    with pytest.raises(BlobNotFoundError):
        await blob_store_s3.get("uploads/none.csv")
    with pytest.raises(BlobNotFoundError):
        await anext(aiter(blob_store_s3.stream("uploads/none.csv")))
    assert await blob_store_s3.delete_prefix("uploads/") == 0


async def test_on_aws_the_url_uses_the_buckets_regional_virtual_host() -> None:
    """Without an emulator the URL is https://BUCKET.s3.REGION.amazonaws.com/uploads/...,
    so a browser PUT is not redirected (a redirect would break CORS and the signature)."""
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
    )
    settings = AwsSettings(region="eu-west-1", bucket="mailblast-eu")
    async with AwsClients(settings, session=session) as clients:
        upload = await S3BlobStore(clients).presign_upload()
    url = urllib.parse.urlsplit(upload.url)
    assert (url.scheme, url.netloc) == ("https", "mailblast-eu.s3.eu-west-1.amazonaws.com")
    assert url.path == f"/{upload.s3_key}"
