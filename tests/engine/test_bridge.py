"""The one bridge from the device worker to asyncio: events in order, errors as events,
`end` last, and closing the stream stops the job."""

import asyncio
import threading

import pytest
import torch

from app.engine.bridge import Cancelled, WorkerStream
from app.engine.worker import DeviceWorker
from app.errors import Busy, InvalidRequest


def collect(worker, work, stop_after=None):
    async def run():
        stream = WorkerStream(worker, work)
        out = []
        async for event in stream:
            out.append(event)
            if stop_after is not None and len(out) == stop_after:
                break
        return out, stream

    return asyncio.run(run())


@pytest.fixture
def worker():
    w = DeviceWorker(torch.device("cpu"), queue_size=2)
    yield w
    w.shutdown()


def test_events_arrive_in_order_then_end(worker):
    def work(emit, cancel):
        for i in range(3):
            emit({"event": "step", "i": i})

    events, _ = collect(worker, work)
    assert events == [{"event": "step", "i": i} for i in range(3)] + [{"event": "end"}]


def test_an_error_is_an_event_with_the_domain_message(worker):
    def work(emit, cancel):
        emit({"event": "step"})
        raise InvalidRequest("latent: 96 is outside [0, 96) for SAE 'sae'", field="latent")

    events, _ = collect(worker, work)
    assert events[1] == {"event": "error", "message": "latent: 96 is outside [0, 96) for SAE 'sae'"}
    assert events[-1] == {"event": "end"}

    events, _ = collect(worker, lambda emit, cancel: 1 / 0)
    assert events[0] == {"event": "error", "message": "ZeroDivisionError: division by zero"}


def test_closing_the_stream_cancels_the_job(worker):
    stopped = threading.Event()

    def work(emit, cancel):
        for i in range(10_000):
            if cancel.wait(0.01):
                stopped.set()
                raise Cancelled
            emit({"event": "step", "i": i})

    events, stream = collect(worker, work, stop_after=2)
    assert len(events) == 2 and stream.cancel.is_set()
    assert stopped.wait(5)  # the job saw the cancel and stopped early
    deadline = threading.Event()
    for _ in range(100):
        if worker.pending == 0:
            break
        deadline.wait(0.05)
    assert worker.pending == 0


def test_a_full_queue_refuses_at_once(worker):
    release = threading.Event()
    worker.submit(release.wait)
    worker.submit(release.wait)

    async def open_one():
        WorkerStream(worker, lambda emit, cancel: None)

    with pytest.raises(Busy):
        asyncio.run(open_one())
    release.set()
