"""One bridge from the device worker to asyncio: a job that reports events as it works
(tokens, progress, results) is iterated by an async consumer (an SSE response).

The job runs on the worker thread as `work(emit, cancel)`: it calls `emit(event)` with a
dict at any time and checks `cancel` between steps. The stream yields each event in
order, then `{"event": "error", "message": ...}` if the job raised, and always
`{"event": "end"}` last. Closing the stream (the client went away) sets `cancel` and drops
the job if it has not started yet.
"""

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.engine.worker import DeviceWorker
from app.errors import DomainError

Emit = Callable[[dict[str, Any]], None]
Work = Callable[[Emit, threading.Event], Any]
END = {"event": "end"}


class Cancelled(Exception):
    """Raised inside a job to stop it because its client went away."""


def error_message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"


class _Stream:
    """Events put from the worker thread, read by the event loop until `end`; closed
    (cancelled) when the reader stops."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.cancel = threading.Event()

    def _emit(self, event: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def close(self) -> None:
        self.cancel.set()

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        try:
            while True:
                event = await self.queue.get()
                yield event
                if event is END or event.get("event") == "end":
                    break
        finally:
            self.close()


class WorkerStream(_Stream):
    def __init__(self, worker: DeviceWorker, work: Work, cost: int = 0):
        super().__init__()
        # Busy when the queue is full or its cost budget is spent.
        self.future = worker.submit(self._run, work, cost=cost)

    def _run(self, work: Work) -> None:
        try:
            work(self._emit, self.cancel)
        except Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001 - reported to the client as an event
            self._emit({"event": "error", "message": error_message(exc)})
        finally:
            self._emit(END)

    def close(self) -> None:
        self.cancel.set()
        self.future.cancel()


class BatchedStream(_Stream):
    """A stream whose jobs join other clients' waiting jobs of the same batch key (one
    `generate` for all of them; see DeviceWorker.submit_batched). `parts` are (key, make,
    run_batch, cost): `make(emit, cancel)` builds the item `run_batch` gets, and the item
    emits its own events. Parts run in order (one per model); `error` if one failed, then
    `end`. Every part is admitted at once (Busy when the queue is full)."""

    def __init__(self, worker: DeviceWorker, parts: list[tuple[Any, Callable, Callable, int]]):
        super().__init__()
        self.futures = []
        try:
            for key, make, run_batch, cost in parts:
                item = make(self._emit, self.cancel)
                self.futures.append(worker.submit_batched(key, item, run_batch, cost=cost))
        except BaseException:
            self.close()
            raise
        self._left = len(self.futures)
        self._failed = False
        for future in self.futures:
            future.add_done_callback(self._settled)

    def _settled(self, future) -> None:
        if not future.cancelled() and future.exception() is not None and not self._failed:
            self._failed = True
            self._emit({"event": "error", "message": error_message(future.exception())})
        self._left -= 1
        if self._left == 0 or self._failed:
            self._emit(END)

    def close(self) -> None:
        self.cancel.set()
        for future in self.futures:
            future.cancel()
