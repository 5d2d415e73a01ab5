"""The ports: what the use cases need from the outside world, as `typing.Protocol`s.

Each has an in-memory fake in `mailblast.adapters.memory` and a real adapter; one shared
contract suite (``tests/contract``) runs against every implementation.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Protocol

import attrs

from mailblast.domain.batching import BatchMessage, PageRange
from mailblast.domain.campaign import Campaign, CampaignStatus
from mailblast.domain.messages import BulkEmail, DeliveryReport
from mailblast.domain.recipient import (
    ClaimResult,
    NewRecipient,
    Recipient,
    RecipientStatus,
    SendOutcome,
)

__all__ = [
    "BatchQueue",
    "BlobStore",
    "CampaignRepo",
    "Clock",
    "ExecutionStatus",
    "Mailer",
    "PresignedUpload",
    "RateLimiter",
    "ReceivedBatch",
    "RecipientRepo",
    "SendQuota",
    "WorkflowEngine",
]


class CampaignRepo(Protocol):
    """Stores campaigns; every status change is a compare-and-set."""

    async def add(self, campaign: Campaign) -> None:
        """Store a new campaign."""
        ...

    async def get(self, campaign_id: uuid.UUID) -> Campaign:
        """The campaign, or `CampaignNotFoundError`."""
        ...

    async def update(self, before: Campaign, after: Campaign) -> None:
        """Replace ``before`` by ``after`` only if the stored one still has ``before``'s
        status and version; otherwise raise `ConcurrentUpdateError` and change nothing."""
        ...

    async def list_page(
        self, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[Campaign]:
        """Newest first; ``before`` is the (created_at, id) keyset cursor of the last row."""
        ...

    async def with_status(self, statuses: Sequence[CampaignStatus]) -> list[Campaign]:
        """Campaigns currently in one of ``statuses`` (to resume work after a restart)."""
        ...


class RecipientRepo(Protocol):
    """Stores recipients per (campaign, import); bulk operations only."""

    async def insert_chunk(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        chunk_no: int,
        rows: Sequence[NewRecipient],
    ) -> int:
        """Insert one chunk as ``pending``; inserting the same chunk again replaces it.
        A store that also holds the campaign refuses (`StaleImportError`) a chunk of an
        import the campaign no longer waits for, atomically with the insert."""
        ...

    async def insert_encoded_chunk(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, chunk_no: int, data: bytes
    ) -> int:
        """`insert_chunk` for a chunk as `mailblast.domain.chunks` encodes it (what the
        split step writes): a database may COPY it without decoding it row by row."""
        ...

    async def delete_import(self, campaign_id: uuid.UUID, import_id: uuid.UUID) -> int:
        """Remove every recipient of one import; returns how many."""
        ...

    async def count_by_status(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID
    ) -> Mapping[RecipientStatus, int]:
        """How many recipients of the import are in each status (every status present)."""
        ...

    async def prepare_send(self, campaign_id: uuid.UUID, import_id: uuid.UUID) -> None:
        """Get ready to serve the sends of one freshly imported list (a database refreshes
        its planner statistics here); idempotent, and a no-op where nothing is needed."""
        ...

    async def pending_page_starts(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, *, page_size: int
    ) -> tuple[list[int], int | None]:
        """Ids opening each page of ``page_size`` pending recipients, and the last pending id."""
        ...

    async def pending_ids(
        self, campaign_id: uuid.UUID, import_id: uuid.UUID, page: PageRange
    ) -> list[int]:
        """Ids of unclaimed pending recipients in the page, ascending."""
        ...

    async def claim(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        recipient_ids: Sequence[int],
        *,
        token: str,
        now: datetime,
        lease_seconds: float,
    ) -> ClaimResult:
        """In one atomic step: mark pending recipients held by another token for longer
        than ``lease_seconds`` failed (`OUTCOME_UNKNOWN`: that attempt died, perhaps after
        SES accepted), hold the unclaimed pending ones with ``token``, and leave the ones
        held by a live attempt alone."""
        ...

    async def record(
        self, campaign_id: uuid.UUID, outcomes: Sequence[SendOutcome], *, token: str, now: datetime
    ) -> int:
        """Store outcomes for recipients still pending and held by ``token``; returns how many."""
        ...

    async def release(
        self, campaign_id: uuid.UUID, recipient_ids: Sequence[int], *, token: str
    ) -> int:
        """Let go of recipients held by ``token`` that were certainly not sent."""
        ...

    async def fail_pending(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        reason: str,
        now: datetime,
        recipient_ids: Sequence[int] | None = None,
    ) -> int:
        """Mark pending recipients (of the list, or all of the import) failed with
        ``reason``; one still claimed by an attempt gets `OUTCOME_UNKNOWN` instead, as SES
        may be accepting it right now."""
        ...

    async def fail_abandoned(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        claimed_before: datetime,
        now: datetime,
    ) -> int:
        """Mark pending recipients claimed before ``claimed_before`` failed
        (`OUTCOME_UNKNOWN`); returns how many."""
        ...

    async def list_page(
        self,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        limit: int,
        status: RecipientStatus | None = None,
        after_id: int | None = None,
    ) -> list[Recipient]:
        """Recipients in id order after ``after_id`` (keyset pagination)."""
        ...


@attrs.frozen
class PresignedUpload:
    """Where the browser PUTs a CSV: the key we chose and a signed URL."""

    s3_key: str
    url: str
    expires_at: datetime


class BlobStore(Protocol):
    """Holds uploaded CSVs, normalized chunks and rejected-row reports."""

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Write a whole object."""
        ...

    async def get(self, key: str) -> bytes:
        """Read a whole (small) object; `BlobNotFoundError` if missing."""
        ...

    def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Read an object in chunks, never whole; `BlobNotFoundError` if missing."""
        ...

    async def size(self, key: str) -> int:
        """The object's size in bytes; `BlobNotFoundError` if missing."""
        ...

    async def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        ...

    async def presign_upload(
        self, *, content_type: str = "text/csv", expires_in: int = 900
    ) -> PresignedUpload:
        """A key under ``uploads/`` chosen by us and a URL to PUT it directly."""
        ...


@attrs.frozen
class SendQuota:
    """The sending limits of the account (SES GetAccount)."""

    max_send_rate: float
    max_24_hour_send: float


class Mailer(Protocol):
    """Sends one bulk email (at most 50 destinations) and reports per destination."""

    async def send_bulk(self, email: BulkEmail) -> list[DeliveryReport]:
        """One report per destination, in order. Raises `ThrottledError` when the call as a
        whole was refused for rate (nothing sent), `TransientError` or `PermanentError`."""
        ...

    async def quota(self) -> SendQuota | None:
        """The account's limits, or None when the mailer has none."""
        ...


@attrs.frozen
class ReceivedBatch:
    """A message taken from the queue; invisible to others until acked or its timeout."""

    message: BatchMessage
    receipt: str
    receive_count: int


class BatchQueue(Protocol):
    """At-least-once queue of batch messages with a visibility timeout and a dead-letter
    queue after 3 receives (SQS semantics)."""

    async def send(self, messages: Sequence[BatchMessage], *, delay_seconds: int = 0) -> None:
        """Enqueue messages; raises only after every retry of a failed entry is spent."""
        ...

    async def receive(
        self, *, max_messages: int = 10, wait_seconds: float = 0
    ) -> list[ReceivedBatch]:
        """Take up to ``max_messages``; messages over the receive limit go to the dead letters."""
        ...

    async def ack(self, received: ReceivedBatch) -> None:
        """Done with a message: delete it."""
        ...

    async def retry_later(self, received: ReceivedBatch, *, delay_seconds: int) -> None:
        """Make a message visible again after ``delay_seconds`` (counts as a receive)."""
        ...

    async def receive_dead(self, *, max_messages: int = 10) -> list[ReceivedBatch]:
        """Take messages from the dead-letter queue."""
        ...

    async def ack_dead(self, received: ReceivedBatch) -> None:
        """Done with a dead-lettered message: delete it."""
        ...


class ExecutionStatus(enum.StrEnum):
    """A workflow execution's state (Step Functions' names)."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"


class WorkflowEngine(Protocol):
    """Starts and stops the import and send workflows."""

    async def start_import(self, *, name: str, campaign_id: uuid.UUID, import_id: uuid.UUID) -> str:
        """Start the import workflow as execution ``name``; returns the execution id
        (what `stop` takes). Starting the same name with the same input again is a no-op."""
        ...

    async def start_send(self, *, name: str, campaign_id: uuid.UUID, scheduled_at: datetime) -> str:
        """Start the send workflow as execution ``name``, waiting until ``scheduled_at``
        (a time in the past means now); idempotent like `start_import`."""
        ...

    async def stop(self, execution_id: str) -> None:
        """Stop an execution by the id `start_send` returned or by its name; stopping a
        finished or unknown one is not an error."""
        ...

    async def status(self, execution_id: str) -> ExecutionStatus:
        """Where an execution is."""
        ...


class RateLimiter(Protocol):
    """Paces sends by recipients (SES quotas count recipients, not calls)."""

    async def acquire(self, recipients: int) -> None:
        """Wait until ``recipients`` more may be sent."""
        ...

    def throttled(self) -> None:
        """The provider refused a call for rate: slow down."""
        ...


class Clock(Protocol):
    """Time, so tests can control it."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...
