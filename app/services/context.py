"""What every service works with: the engine (models, device worker, request limits), the
database, and the judges loaded so far. Built once at start-up; the routers hand it to
the service they call."""

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from anyio import to_thread

from app.db.session import Database
from app.engine.engine import Engine
from app.engine.registry import Registry
from app.engine.worker import DeviceWorker
from app.errors import Unavailable
from app.services.cache import RecentResults
from app.services.limits import RateLimit
from app.settings import Settings

T = TypeVar("T")


@dataclass
class Context:
    engine: Engine
    db: Database | None = None
    app_settings: Settings | None = None  # the server's (data directory); limits: engine's
    judges: dict[str, Any] = field(default_factory=dict)  # judge id -> loaded judge
    reruns: RateLimit | None = None  # per client, made from settings on first use
    results: RecentResults | None = None  # this server's recent results, made on first use

    def recent(self) -> RecentResults:
        if self.results is None:
            self.results = RecentResults(
                self.settings.recent_results_ttl_s, self.settings.recent_results_bytes
            )
        return self.results

    def rerun_limit(self) -> RateLimit:
        if self.reruns is None:
            self.reruns = RateLimit(self.settings.reruns_per_minute, "reruns")
        return self.reruns

    @property
    def registry(self) -> Registry:
        return self.engine.registry

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    @property
    def data_dir(self) -> Path:
        return (self.app_settings or self.settings).data_dir

    @property
    def worker(self) -> DeviceWorker:
        return self.engine.worker

    @property
    def database(self) -> Database:
        if self.db is None:
            raise Unavailable("the database is not ready yet")
        return self.db


# A rerun computes alone, never batched with other clients' requests: a batch pads its
# rows to one width, and float results may then move in their last bits, while a rerun
# must reproduce the stored result byte for byte.
_ALONE: ContextVar[bool] = ContextVar("alone", default=False)


@contextmanager
def alone() -> Iterator[None]:
    """Within it, `batch_key` gives every request a key of its own (no batching)."""
    token = _ALONE.set(True)
    try:
        yield
    finally:
        _ALONE.reset(token)


def batch_key(key: Hashable) -> Hashable:
    """The device worker's batch key for a request: `key`, or one of its own inside `alone`."""
    return (key, object()) if _ALONE.get() else key


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking work (database queries) in a thread, never on the event loop."""
    return await to_thread.run_sync(fn, *args)
