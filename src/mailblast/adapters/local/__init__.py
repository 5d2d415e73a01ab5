"""The local runtime: a whole campaign in one process (DESIGN §8 "Local").

Importing this package starts nothing; `LocalRuntime.open` wires it and ``async with``
runs it.
"""

from __future__ import annotations

from mailblast.adapters.local.mbox import MboxMailer
from mailblast.adapters.local.rate import TokenBucket
from mailblast.adapters.local.runtime import (
    ExecutionAlreadyExistsError,
    LocalRuntime,
    LocalWorkflowEngine,
    RecoveryReport,
    rate_limiter_for,
)
from mailblast.adapters.local.workers import QueueWorkers, WorkerStats

__all__ = [
    "ExecutionAlreadyExistsError",
    "LocalRuntime",
    "LocalWorkflowEngine",
    "MboxMailer",
    "QueueWorkers",
    "RecoveryReport",
    "TokenBucket",
    "WorkerStats",
    "rate_limiter_for",
]
