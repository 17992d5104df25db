"""Client-side pacing for Slack calls shared by all worker threads of one invocation.

Permits are spaced evenly (``60 / per_minute`` seconds apart, no burst), so no 60-second window ever holds
more than ``per_minute`` calls; a ``Retry-After`` from Slack pushes the next permit back for everyone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    def __init__(
        self,
        per_minute: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self._interval = 60.0 / per_minute
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = monotonic()

    def acquire(self, deadline: float) -> bool:
        """Wait for the next permit; ``False`` (and no permit taken) if it would come after ``deadline``."""
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next)
            if slot >= deadline:
                return False
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)
        return True

    def pause(self, seconds: float) -> None:
        """Slack said ``Retry-After``: nobody gets a permit for ``seconds``."""
        with self._lock:
            self._next = max(self._next, self._monotonic() + seconds)
