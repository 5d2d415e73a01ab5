"""Shared fixtures: contract-suite backends and the switch that forbids skipping in CI.

Each port's fixture is parametrized over its implementations; a backend named ``x`` for
port ``p`` is the fixture ``p_x`` from one of the ``tests/backends`` modules.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import structlog

from backends.aws import *  # noqa: F403
from backends.memory import *  # noqa: F403
from backends.postgres import *  # noqa: F403

BACKENDS: dict[str, list[Any]] = {
    "campaign_repo": ["memory", "postgres"],
    "recipient_repo": ["memory", "postgres"],
    "blob_store": ["memory", "folder", "s3"],
    "batch_queue": ["memory", "sqs"],
    "workflow_engine": ["memory", "sfn"],
    "mailer": ["memory", "ses"],
}
INTEGRATION_BACKENDS = {"postgres", "s3", "sqs", "sfn", "ses"}


def _params(port: str) -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.integration, id=name)
        if name in INTEGRATION_BACKENDS
        else pytest.param(name, id=name)
        for name in BACKENDS[port]
    ]


def _port_fixture(port: str) -> Any:
    @pytest.fixture(params=_params(port), name=port)
    def every_implementation(request: pytest.FixtureRequest) -> Any:
        return request.getfixturevalue(f"{port}_{request.param}")

    every_implementation.__doc__ = f"Every implementation of the {port} port."
    return every_implementation


# campaign_repo, recipient_repo, blob_store, batch_queue, workflow_engine, mailer
for _port in BACKENDS:
    globals()[_port] = _port_fixture(_port)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration is an integration test, marked or not."""
    for item in items:
        if "integration" in item.path.parts and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)


def pytest_configure(config: pytest.Config) -> None:
    """Keep test logs quiet and structured."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.KeyValueRenderer(),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With MAILBLAST_REQUIRE_INTEGRATION=1 (CI), a skipped integration test is a failure."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("MAILBLAST_REQUIRE_INTEGRATION") == "1"
        and item.get_closest_marker("integration") is not None
    ):
        report.outcome = "failed"
        report.longrepr = f"integration test skipped in CI: {report.longrepr}"
