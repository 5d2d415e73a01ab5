"""A rate limiter that paces sends by recipients, shared by every worker of a process.

SES quotas count recipients, not calls (one 50-destination call at 14 messages/s uses
3.6 s of budget), so the limiter is charged per recipient. It runs on the `Clock` port,
so a test on the fake clock can prove the rate it achieves.
"""

from __future__ import annotations

import asyncio
import collections
import math
from datetime import datetime, timedelta

import structlog

from mailblast.domain.batching import MAX_BATCH
from mailblast.ports import Clock

__all__ = ["TokenBucket"]

log = structlog.get_logger("mailblast.local")

#: Float slack when comparing token counts (a millionth of a recipient).
_EPSILON = 1e-6
_SECOND = timedelta(seconds=1)


class TokenBucket:
    """Lets ``rate`` recipients per second through, in FIFO order, and never more than
    ``rate`` plus one batch within any one-second window.

    Two rules, each doing one job:

    - a token bucket earns ``rate`` tokens a second and holds up to ``burst`` (default:
      a quarter of a second's worth, at least one batch). It sets the rate over a run. A
      caller is granted at the instant its tokens are complete, however late it wakes,
      and what a stalled event loop could not use stays in the bucket, so stalls (a
      garbage collection, a long query, a scan of the in-memory table) up to that long
      do not lower the rate;
    - a log of the last second's grants refuses anything that would put more than
      ``rate + 50`` recipients in one second, so catching up after a stall never turns
      into a burst the provider would throttle.

    `throttled` (the provider refused a call for rate) halves the rate at once and
    empties the bucket; the rate then climbs back linearly to the configured one over
    ``recovery_seconds``. Throttles within ``throttle_window`` seconds of the last
    decrease count once: eight workers refused together are one signal, not eight.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Clock,
        burst: float | None = None,
        min_rate: float | None = None,
        recovery_seconds: float = 60.0,
        throttle_window: float = 1.0,
    ) -> None:
        if rate <= 0:
            msg = f"rate must be positive, not {rate}"
            raise ValueError(msg)
        if burst is not None and burst <= 0:
            msg = f"burst must be positive, not {burst}"
            raise ValueError(msg)
        self.target_rate = float(rate)
        self.burst = float(burst) if burst is not None else max(float(MAX_BATCH), rate / 4)
        #: the most one-second window may hold: the rate and one batch
        self.window_limit = self.target_rate + MAX_BATCH
        self.min_rate = min_rate if min_rate is not None else max(rate / 64, min(rate, 1.0))
        self._clock = clock
        self._rate = float(rate)
        # one batch to start with: a run opens at the rate, not with a burst
        self._tokens = min(self.burst, float(MAX_BATCH))
        self._recovery = recovery_seconds
        self._throttle_window = throttle_window
        self._last: datetime | None = None
        self._last_decrease: datetime | None = None
        self._granted: collections.deque[tuple[datetime, int]] = collections.deque()
        self._in_window = 0
        self._lock: asyncio.Lock | None = None  # created on the running loop, not here
        self.throttles = 0

    @property
    def rate(self) -> float:
        """The rate in force now (below the target after a throttle)."""
        return self._rate

    def _refill(self, until: datetime | None = None) -> None:
        """Credit the tokens earned from the last refill up to ``until`` (default now)."""
        now = until or self._clock.now()
        if self._last is None:
            self._last = now
            return
        elapsed = (now - self._last).total_seconds()
        if elapsed <= 0:
            return
        self._last = now
        if self._rate < self.target_rate:
            # credit tokens at the mean of the old and new rate for the elapsed time
            grown = min(self.target_rate, self._rate + self.target_rate * elapsed / self._recovery)
            self._tokens += elapsed * (self._rate + grown) / 2
            self._rate = grown
        else:
            self._tokens += elapsed * self._rate
        self._tokens = min(self._tokens, self.burst)

    async def _wait_for_tokens(self, need: float) -> None:
        self._refill()
        while self._tokens < need - _EPSILON:
            assert self._last is not None  # set by the refill above
            wait = (need - self._tokens) / self._rate
            # rounded up to the clock's microsecond, so that the tokens are there then
            due = self._last + timedelta(microseconds=math.ceil(wait * 1e6))
            decreases = self.throttles
            await self._clock.sleep((due - self._clock.now()).total_seconds())
            if self.throttles == decreases and self._clock.now() >= due:
                # granted as of ``due``, not as of waking up: the time overslept earns
                # tokens for the next caller instead of being lost
                self._refill(due)
            else:
                self._refill()

    async def _wait_for_window(self, recipients: int) -> datetime:
        while True:
            now = self._clock.now()
            while self._granted and self._granted[0][0] <= now - _SECOND:
                self._in_window -= self._granted.popleft()[1]
            excess = self._in_window + recipients - self.window_limit
            if excess <= 0 or not self._granted:
                return now
            # sleep until enough of the oldest grants have left the window
            leaving, last_out = 0, now
            for when, count in self._granted:
                leaving, last_out = leaving + count, when
                if leaving >= excess:
                    break
            await self._clock.sleep((last_out + _SECOND - now).total_seconds())

    async def acquire(self, recipients: int) -> None:
        """Wait until ``recipients`` more may be sent (callers are served in order)."""
        if recipients <= 0:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # asyncio.Lock is FIFO: no caller starves
            await self._wait_for_tokens(min(float(recipients), self.burst))
            now = await self._wait_for_window(recipients)
            # no refill here: time since the tokens were complete is the next caller's
            self._tokens -= recipients  # a request above ``burst`` leaves a debt
            self._granted.append((now, recipients))
            self._in_window += recipients

    def throttled(self) -> None:
        """The provider refused a call for rate: halve the rate and empty the bucket."""
        self._refill()
        now = self._clock.now()
        if (
            self._last_decrease is not None
            and (now - self._last_decrease).total_seconds() < self._throttle_window
        ):
            return
        self._last_decrease = now
        self.throttles += 1
        self._rate = max(self.min_rate, self._rate / 2)
        self._tokens = min(self._tokens, 0.0)
        log.warning("mailblast.rate.decreased", rate=round(self._rate, 2))
