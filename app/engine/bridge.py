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


class WorkerStream:
    def __init__(self, worker: DeviceWorker, work: Work, cost: int = 0):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.cancel = threading.Event()
        # Busy when the queue is full or its cost budget is spent.
        self.future = worker.submit(self._run, work, cost=cost)

    def _emit(self, event: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

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

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        try:
            while True:
                event = await self.queue.get()
                yield event
                if event is END or event.get("event") == "end":
                    break
        finally:
            self.close()
