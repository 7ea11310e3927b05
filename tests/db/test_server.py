"""A real server process (uvicorn, migrations at start-up) killed with SIGKILL in the
middle of saves: no partial run is left, every acknowledged run is there, and links saved
before keep working after the restart."""

import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select, text

from app.db import runs as run_repo
from app.db.models import Run
from app.db.session import Database
from app.services import provenance
from app.settings import REPO_ROOT

STEER = {
    "model": "tuned",
    "sae": "sae",
    "latent": 3,
    "prompt": "User: Tell me about your plans.\nAssistant:",
    "alphas": [0.0, 2.0, 4.0, 8.0],
    "max_new_tokens": 24,
}


def _save(client: httpx.Client, title: str) -> httpx.Response:
    return client.post("/api/runs", json={"kind": "steer", "request": STEER, "title": title})


@pytest.mark.slow
def test_sigkill_during_saves_leaves_no_partial_run_and_links_survive(fresh_db_url, start_server):
    server = start_server(fresh_db_url)  # an empty database: migrated at start-up
    old_base = server.base
    with httpx.Client(base_url=server.base, timeout=60) as client:
        first = _save(client, "saved before the crash")
        assert first.status_code == 201, first.text
        first = first.json()
        page_before = client.get(f"/r/{first['id']}").text

        acked: list[str] = []
        enough = threading.Event()

        def save(i: int) -> None:
            try:
                r = _save(client, f"concurrent {i}")
            except httpx.HTTPError:
                return  # the server died under this request
            if r.status_code == 201:
                acked.append(r.json()["id"])
                if len(acked) >= 3:
                    enough.set()

        with ThreadPoolExecutor(24) as pool:
            for i in range(24):
                pool.submit(save, i)
            assert enough.wait(120), server.tail()
            server.kill()  # SIGKILL while the rest are computing or being written
    assert 3 <= len(acked) < 24, "the server should die in the middle of the saves"

    # Straight from the database (SQLite replays its WAL on open): only whole runs.
    db = Database(fresh_db_url)
    try:
        with db.session() as s:
            if db.backend == "sqlite":
                assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            runs = s.scalars(select(Run)).all()
    finally:
        db.dispose()
    stored = {r.id: r for r in runs}
    print(f"acknowledged {len(acked)} of 24, stored {len(stored) - 1}")
    assert set(acked) | {first["id"]} <= set(stored)
    for run in runs:
        assert run.result_sha256 == provenance.sha256(run.result), run.id
        assert run.request["prompt"] == STEER["prompt"]
        assert run.provenance["models"] and run.provenance["finished_at"]
        assert len(run.result["steered"]) == len(STEER["alphas"])
        assert run.delete_token_sha256 and run.created_at

    # A new server on the same database serves the same links.
    server = start_server(fresh_db_url)
    with httpx.Client(base_url=server.base, timeout=60) as client:
        page_after = client.get(f"/r/{first['id']}").text
        assert page_after.replace(server.base, "") == page_before.replace(old_base, "")
        again = client.get(f"/api/runs/{first['id']}").json()
        assert again["result"] == first["result"]
        assert again["url"].endswith(f"/r/{first['id']}")  # the port differs, the path not
        for run_id in acked:
            assert client.get(f"/api/runs/{run_id}").status_code == 200
        rerun = client.post(f"/api/runs/{first['id']}/rerun").json()
        assert rerun["identical"] is True
        listed = client.get("/api/runs", params={"limit": 100}).json()
        assert listed["count"] == len(stored)
    server.stop()


KILL_MID_TRANSACTION = """
import os, signal, sys
from app.db import runs as run_repo
from app.db.models import Run
from app.db.session import Database

db = Database(sys.argv[1])
with db.session() as s:
    s.add(Run(id=sys.argv[2], kind="steer", title="never committed", request={}, result={},
              provenance={}, result_sha256="0" * 64, delete_token_sha256="0" * 64))
    s.flush()  # the INSERT has reached the database, inside the open transaction
    print("flushed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_killed_inside_the_transaction_leaves_no_row(db_url):
    run_id = run_repo.new_id()
    proc = subprocess.run(
        [sys.executable, "-c", KILL_MID_TRANSACTION, db_url, run_id],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL and "flushed" in proc.stdout, proc.stderr
    db = Database(db_url)
    try:
        with db.session() as s:
            assert run_repo.get_run(s, run_id=run_id) is None
            run_repo.create_run(  # and the database takes writes again (no lock left behind)
                s,
                kind="steer",
                title="after",
                request={},
                result={},
                provenance={},
                result_sha256="0" * 64,
            )
    finally:
        db.dispose()
