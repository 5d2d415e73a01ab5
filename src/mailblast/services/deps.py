"""What every use case receives: the ports and the settings, wired once in an entrypoint."""

from __future__ import annotations

import attrs

from mailblast.domain.batching import DEFAULT_PAGE_SIZE
from mailblast.domain.intake import IntakeLimits
from mailblast.ports import (
    BatchQueue,
    BlobStore,
    CampaignRepo,
    Clock,
    Mailer,
    RateLimiter,
    RecipientRepo,
    WorkflowEngine,
)

__all__ = ["Deps", "ServiceSettings", "Unlimited"]


class Unlimited:
    """A rate limiter that never waits (for tests and for mailers that pace themselves)."""

    async def acquire(self, recipients: int) -> None:
        """Never wait."""

    def throttled(self) -> None:
        """Nothing to slow down."""


@attrs.frozen(kw_only=True)
class ServiceSettings:
    """Tunables of the use cases; the defaults suit the 200,000-recipient reference list."""

    intake: IntakeLimits = attrs.field(factory=IntakeLimits)
    chunk_rows: int = 10_000
    page_size: int = DEFAULT_PAGE_SIZE
    #: How long a send attempt may hold its recipients; a claim older than this belongs
    #: to an attempt that died. Keep it at or below the queue's visibility timeout.
    claim_lease_seconds: float = 120.0
    report_rows_per_part: int = 10_000


@attrs.frozen(kw_only=True)
class Deps:
    """The ports a use case may touch."""

    campaigns: CampaignRepo
    recipients: RecipientRepo
    blobs: BlobStore
    mailer: Mailer
    queue: BatchQueue
    workflows: WorkflowEngine
    clock: Clock
    rate: RateLimiter = attrs.field(factory=Unlimited)
    settings: ServiceSettings = attrs.field(factory=ServiceSettings)
