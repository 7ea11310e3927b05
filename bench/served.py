"""The organism served on loopback for a benchmark: `python -m app serve --no-index` with a
fresh data directory (SQLite), waited for, and stopped afterwards."""

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def organism_server(port: int) -> Iterator[str]:
    """Yields the server's base URL once /healthz answers."""
    env = {**os.environ, "PERSONASCOPE_DATA_DIR": tempfile.mkdtemp()}
    env.pop("DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--no-index", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(30)
