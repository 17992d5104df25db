"""The template's schedules, fired locally: each enabled ``Schedule``/``ScheduleV2`` event invokes its function with
the schedule's ``Input`` every period, first one period after start (as a new ``rate(...)`` schedule does).

One daemon thread for all schedules. A run that is still going when the next is due delays it (the host runs one
invocation at a time anyway); missed periods are not caught up, as EventBridge Scheduler does not replay them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from local.template import Schedule


class Scheduler:
    def __init__(self, jobs: Sequence[tuple[Schedule, float]], fire: Callable[[Schedule], None]) -> None:
        """``jobs``: each schedule with its period in seconds. ``fire`` runs one schedule (errors are its own)."""
        if any(period <= 0 for _, period in jobs):
            raise ValueError("a schedule period must be positive")
        self.jobs = list(jobs)
        self._fire = fire
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Scheduler:
        if self.jobs:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="local-scheduler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop firing; a run in progress is allowed to finish (up to ``timeout`` seconds)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def _run(self) -> None:
        start = time.monotonic()
        due = [start + period for _, period in self.jobs]
        while True:
            wait = max(0.0, min(due) - time.monotonic())
            if self._stopping.wait(wait):
                return
            now = time.monotonic()
            for index, (schedule, period) in enumerate(self.jobs):
                if due[index] <= now:
                    self._fire(schedule)
                    if self._stopping.is_set():
                        return
                    finished, next_due = time.monotonic(), due[index] + period
                    while next_due <= finished:  # periods missed during a long run are skipped
                        next_due += period
                    due[index] = next_due
