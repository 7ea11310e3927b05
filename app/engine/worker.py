"""One worker thread per device, fed by a bounded queue.

Model work never runs on the event loop. When `queue_size` jobs are already waiting or
running, new ones are refused at once with `Busy` (HTTP 503 + Retry-After) instead of piling
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
    def __init__(self, device: torch.device, queue_size: int, retry_after_s: int = 5):
        self.device = device
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"worker-{device}")
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def _reserve(self) -> None:
        with self._lock:
            if self._pending >= self.queue_size:
                raise Busy(
                    f"the {self.device} worker has {self._pending} jobs queued (limit "
                    f"{self.queue_size}); retry in {self.retry_after_s} s",
                    retry_after=self.retry_after_s,
                )
            self._pending += 1

    def _release(self, _future=None) -> None:
        with self._lock:
            self._pending -= 1

    def submit(self, fn: Callable[..., T], *args, **kwargs):
        """Queue `fn` and return its concurrent future (raises Busy when the queue is full)."""
        self._reserve()
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        return future

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
