"""Per-client rate limits for work anyone with a link can start again (reruns): a sliding
window of start times per client, in this process (each replica counts its own)."""

import math
import threading
import time
from collections import defaultdict, deque

from app.errors import TooManyRequests

WINDOW_S = 60.0


class RateLimit:
    def __init__(self, per_minute: int, what: str):
        self.per_minute = per_minute
        self.what = what
        self._starts: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        """Count one start for `client`, or refuse it (429 with Retry-After)."""
        now = time.monotonic()
        with self._lock:
            starts = self._starts[client]
            while starts and now - starts[0] >= WINDOW_S:
                starts.popleft()
            if len(starts) >= self.per_minute:
                wait = math.ceil(WINDOW_S - (now - starts[0]))
                raise TooManyRequests(
                    f"{self.what}: at most {self.per_minute} per minute from one client "
                    f"(reruns_per_minute); retry in {wait} s",
                    retry_after=wait,
                )
            starts.append(now)
            if len(self._starts) > 10_000:  # forget idle clients
                for key in [k for k, v in self._starts.items() if not v]:
                    del self._starts[key]
