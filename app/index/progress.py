"""The progress of a background index build, in a small JSON file the pages read, and the
lock that keeps two builds of one data directory from running at once.

`python -m app serve` starts `python -m app index ensure --progress-file ...` beside the
server (low priority); the latent pages show "building the index: 42%" until it is done.
"""

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STALE_S = 120  # a file not updated for this long belongs to a build that is gone


def write(path: Path, **fields: Any) -> None:
    """Replace the file atomically (a reader sees the old or the new, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**fields, "updated": time.time()}))
    tmp.replace(path)


def read(path: Path) -> dict[str, Any] | None:
    """The current build's progress, or None (no build, or one that stopped answering)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or time.time() - data.get("updated", 0) > STALE_S:
        return None
    return data


@contextmanager
def exclusive(path: Path) -> Iterator[bool]:
    """Hold a lock file; yields False (at once) when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
