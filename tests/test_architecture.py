"""The layers of docs/architecture.md hold: import-linter's contracts (pyproject.toml) are
kept, so `make test` fails on a layer violation or an import cycle, as `make lint` does."""

import shutil
import subprocess
import sys
from pathlib import Path

from app.settings import REPO_ROOT


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([exe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in out.stdout


def test_every_json_endpoint_declares_its_response():
    from fastapi.routing import APIRoute

    from app.main import app

    def routes(items):
        for route in items:
            inner = getattr(route, "original_router", None)
            yield from routes(inner.routes) if inner is not None else (route,)

    missing = [
        (route.path, sorted(route.methods))
        for route in routes(app.router.routes)
        if isinstance(route, APIRoute)
        and route.include_in_schema
        and route.response_model is None
        and "EventSource" not in str(route.response_class)  # streams: text/event-stream
        and route.status_code != 204
    ]
    assert missing == []
