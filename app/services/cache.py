"""A bounded store of the results this server computed, by key: entries expire after
`ttl_s`, and the oldest go first when the results exceed `max_bytes` (see
`app.services.results`, which fills and reads it)."""

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass
class Computed:
    result: dict[str, Any]
    provenance: dict[str, Any]
    result_sha256: str
    size: int
    expires: float

    def stored(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "provenance": self.provenance,
            "result_sha256": self.result_sha256,
        }


class RecentResults:
    def __init__(self, ttl_s: float, max_bytes: int):
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Computed] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def _drop(self, key: str) -> None:
        self._bytes -= self._entries.pop(key).size

    def get(self, key: str) -> Computed | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found.expires < time.monotonic():
                self._drop(key)
                return None
            return found

    def put(self, key: str, entry: Computed) -> None:
        with self._lock:
            if key in self._entries:
                self._drop(key)
            if entry.size > self.max_bytes:
                return
            self._entries[key] = entry
            self._bytes += entry.size
            now = time.monotonic()
            while self._entries and (
                self._bytes > self.max_bytes or next(iter(self._entries.values())).expires < now
            ):
                self._drop(next(iter(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)
