"""One worker thread per device, fed by a bounded queue.

Model work never runs on the event loop. A job is admitted by its count and its cost (token
positions): when `queue_size` jobs, or `cost_budget` positions, are already waiting or
running, a new one is refused at once with `Busy` (HTTP 503 + Retry-After) instead of piling
up. A job still waiting when its client goes away is cancelled before it starts.
"""

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from app.errors import Busy

T = TypeVar("T")


class DeviceWorker:
    def __init__(
        self,
        device: torch.device,
        queue_size: int,
        retry_after_s: int = 5,
        cost_budget: int | None = None,
    ):
        self.device = device
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s
        self.cost_budget = cost_budget
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"worker-{device}")
        self._lock = threading.Lock()
        self._pending = 0
        self._pending_cost = 0

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def pending_cost(self) -> int:
        return self._pending_cost

    def _reserve(self, cost: int) -> None:
        with self._lock:
            if self._pending >= self.queue_size:
                raise Busy(
                    f"the {self.device} worker has {self._pending} jobs queued (limit "
                    f"{self.queue_size}); retry in {self.retry_after_s} s",
                    retry_after=self.retry_after_s,
                )
            budget = self.cost_budget
            if budget is not None and self._pending and self._pending_cost + cost > budget:
                raise Busy(
                    f"the {self.device} worker has {self._pending_cost:,} token positions of "
                    f"work queued (budget {budget:,}, queue_cost_budget); retry in "
                    f"{self.retry_after_s} s",
                    retry_after=self.retry_after_s,
                )
            self._pending += 1
            self._pending_cost += cost

    def _release(self, cost: int) -> None:
        with self._lock:
            self._pending -= 1
            self._pending_cost -= cost

    def submit(self, fn: Callable[..., T], *args, cost: int = 0, **kwargs):
        """Queue `fn` and return its concurrent future (raises Busy when the queue is full
        or its cost budget is spent). `cost` is the job's size in token positions."""
        self._reserve(cost)
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._release(cost)
            raise
        future.add_done_callback(lambda _f: self._release(cost))
        return future

    async def run(self, fn: Callable[..., T], *args, cost: int = 0, **kwargs) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args, cost=cost, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
