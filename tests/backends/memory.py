"""The in-memory fakes as contract-suite backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailblast.adapters.memory import (
    InMemoryBatchQueue,
    InMemoryBlobStore,
    InMemoryCampaignRepo,
    InMemoryClock,
    InMemoryMailer,
    InMemoryRecipientRepo,
    InMemoryWorkflowEngine,
    LocalFolderBlobStore,
    SystemClock,
)


@pytest.fixture
def campaign_repo_memory() -> InMemoryCampaignRepo:
    """A fresh in-memory campaign repository."""
    return InMemoryCampaignRepo()


@pytest.fixture
def recipient_repo_memory() -> InMemoryRecipientRepo:
    """A fresh in-memory recipient repository."""
    return InMemoryRecipientRepo()


@pytest.fixture
def blob_store_memory() -> InMemoryBlobStore:
    """A fresh in-memory blob store."""
    return InMemoryBlobStore()


@pytest.fixture
def blob_store_folder(tmp_path: Path) -> LocalFolderBlobStore:
    """A blob store in a fresh temporary folder."""
    return LocalFolderBlobStore(tmp_path / "blobs")


@pytest.fixture
def batch_queue_memory() -> InMemoryBatchQueue:
    """An in-memory queue on the system clock with a short visibility timeout."""
    return InMemoryBatchQueue(SystemClock(), visibility_timeout=1.0, max_receives=3)


@pytest.fixture
def workflow_engine_memory() -> InMemoryWorkflowEngine:
    """An engine that records executions."""
    return InMemoryWorkflowEngine()


@pytest.fixture
def mailer_memory() -> InMemoryMailer:
    """A mailer that records what it sends."""
    return InMemoryMailer()


@pytest.fixture
def clock() -> InMemoryClock:
    """A fake clock that jumps forward when slept on."""
    return InMemoryClock()
