"""One worker thread per device, fed by a bounded queue.

Model work never runs on the event loop. A job is admitted by its count and its cost (token
positions): when `queue_size` jobs, or `cost_budget` positions, are already waiting or
running, a new one is refused at once with `Busy` (HTTP 503 + Retry-After) instead of piling
up. A job still waiting when its client goes away is cancelled before it starts.
"""

import asyncio
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

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
        max_batch: int = 32,
        batch_window_s: float = 0.0,
    ):
        self.device = device
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s
        self.cost_budget = cost_budget
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"worker-{device}")
        self._lock = threading.Lock()
        self._pending = 0
        self._pending_cost = 0
        self._waiting: dict[Hashable, list[tuple[Any, Future]]] = {}
        self.max_batch = max_batch
        self.batch_window_s = batch_window_s

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

    # ------------------------------------------------------------------ batching
    def submit_batched(
        self, key: Hashable, item: Any, run_batch: Callable[[list], list], cost: int = 0
    ) -> Future:
        """Queue `item` to be computed together with the other waiting items of the same
        `key`: when the worker gets to it, `run_batch` runs every item of that key waiting
        then (up to `max_batch`) in one call and returns their results in order. Items
        arriving while a batch runs join the next one. Admission is per item (count and
        cost), as for `submit`."""
        self._reserve(cost)
        future: Future = Future()
        future.add_done_callback(lambda _f: self._release(cost))
        with self._lock:
            self._waiting.setdefault(key, []).append((item, future))
        try:
            self._executor.submit(self._drain, key, run_batch)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        return future

    async def run_batched(
        self, key: Hashable, item: Any, run_batch: Callable[[list], list], cost: int = 0
    ) -> Any:
        return await asyncio.wrap_future(self.submit_batched(key, item, run_batch, cost))

    def _drain(self, key: Hashable, run_batch: Callable[[list], list]) -> None:
        with self._lock:
            room = 0 < len(self._waiting.get(key, [])) < self.max_batch
        if room and self.batch_window_s > 0:  # let requests sent together join this batch
            time.sleep(self.batch_window_s)
        with self._lock:
            waiting = self._waiting.get(key, [])
            taken = [(i, f) for i, f in waiting[: self.max_batch] if not f.cancelled()]
            self._waiting[key] = waiting[self.max_batch :]
        live = [(item, f) for item, f in taken if f.set_running_or_notify_cancel()]
        if not live:  # an earlier drain took them, or their clients went away
            return
        try:
            results = run_batch([item for item, _ in live])
        except Exception:
            if len(live) == 1:
                results = None
            else:  # one item's failure must not fail the others: each again, alone
                for item, f in live:
                    self._settle(f, run_batch, item)
                return
        if results is None:
            self._settle(live[0][1], run_batch, live[0][0])
            return
        for (_, f), result in zip(live, results, strict=True):
            f.set_result(result)

    @staticmethod
    def _settle(future: Future, run_batch: Callable[[list], list], item: Any) -> None:
        try:
            future.set_result(run_batch([item])[0])
        except Exception as exc:  # noqa: BLE001 - the item's own error, to its client
            future.set_exception(exc)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
