"""Clocks: the system one and a controllable fake."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

__all__ = ["InMemoryClock", "SystemClock"]


class SystemClock:
    """Wall-clock time in UTC and real sleeping."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(max(0.0, seconds))


class InMemoryClock:
    """A clock that moves only when told.

    With ``auto_advance`` (the default) a ``sleep`` moves time forward at once, so a
    workflow waiting for tomorrow finishes instantly; without it, sleepers wait until
    `advance` has moved the clock past their wake-up time.
    """

    def __init__(self, start: datetime | None = None, *, auto_advance: bool = True) -> None:
        self._now = start or datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
        self._moved = asyncio.Condition() if not auto_advance else None

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of fake time."""
        wake = self._now + timedelta(seconds=max(0.0, seconds))
        if self._moved is None:
            self._now = max(self._now, wake)
            await asyncio.sleep(0)
            return
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= wake)

    async def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._now += timedelta(seconds=seconds)
        if self._moved is not None:
            async with self._moved:
                self._moved.notify_all()
        await asyncio.sleep(0)

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (for tests that do not sleep)."""
        self._now = when
