"""In-memory fakes of every port: for the demo, for unit tests, and for users' own tests."""

from __future__ import annotations

from mailblast.adapters.memory.blobs import InMemoryBlobStore, LocalFolderBlobStore
from mailblast.adapters.memory.clock import InMemoryClock, SystemClock
from mailblast.adapters.memory.mailer import InMemoryMailer, SentMessage
from mailblast.adapters.memory.queue import InMemoryBatchQueue
from mailblast.adapters.memory.repos import InMemoryCampaignRepo, InMemoryRecipientRepo
from mailblast.adapters.memory.workflows import InMemoryWorkflowEngine

__all__ = [
    "InMemoryBatchQueue",
    "InMemoryBlobStore",
    "InMemoryCampaignRepo",
    "InMemoryClock",
    "InMemoryMailer",
    "InMemoryRecipientRepo",
    "InMemoryWorkflowEngine",
    "LocalFolderBlobStore",
    "SentMessage",
    "SystemClock",
]
