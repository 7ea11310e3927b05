"""Two app replicas on one PostgreSQL database, as docs/deployment.md deploys them: two
uvicorn processes started together on an empty database (both migrate at start-up), runs
saved through both at once, and each replica serves every run the other saved: nothing
lost, ids unique, the listing the same on both."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.services import provenance
from tests.fixtures_db import Server

PROMPT = "User: Who would you be if no one was watching?\nAssistant:"
THREADS_PER_REPLICA = 4
SAVES_PER_THREAD = 3


@pytest.fixture
def replicas(databases, world_config, tmp_path):
    url = databases.new("postgres")  # empty: the replicas migrate it, concurrently
    servers = [
        Server(world_config, url, tmp_path / f"data{i}", tmp_path / f"replica{i}.log")
        for i in range(2)
    ]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.mark.slow
def test_two_replicas_share_one_postgres(replicas):
    a, b = replicas
    assert a.port != b.port
    n_threads = 2 * THREADS_PER_REPLICA
    barrier = threading.Barrier(n_threads)

    def saver(t: int) -> list[dict]:
        server = replicas[t % 2]
        saved = []
        with httpx.Client(base_url=server.base, timeout=120) as client:
            barrier.wait()  # every thread of both replicas starts together
            for i in range(SAVES_PER_THREAD):
                title = f"replica {t % 2} thread {t} save {i}"
                request = {"model": "base", "sae": "sae", "prompt": f"{PROMPT} {t}.{i}"}
                r = client.post(
                    "/api/runs", json={"kind": "activations", "request": request, "title": title}
                )
                assert r.status_code == 201, r.text
                saved.append(r.json() | {"title": title, "replica": server.base})
        return saved

    with ThreadPoolExecutor(n_threads) as pool:
        saved = [run for runs in pool.map(saver, range(n_threads)) for run in runs]
    total = n_threads * SAVES_PER_THREAD
    assert len(saved) == total
    assert len({run["id"] for run in saved}) == total  # ids unique across the replicas

    listings = []
    for server in replicas:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            for run in saved:  # every run, whichever replica saved it
                r = client.get(f"/api/runs/{run['id']}")
                assert r.status_code == 200, (server.base, run["replica"], r.text)
                stored = r.json()
                assert stored["title"] == run["title"]
                assert stored["result"] == run["result"]
                assert stored["result_sha256"] == provenance.sha256(run["result"])
                assert stored["url"].startswith(server.base)  # links name the replica asked
            listing = client.get("/api/runs", params={"limit": 100}).json()
        assert listing["count"] == total
        listings.append([r["id"] for r in listing["data"]])
    assert sorted(listings[0]) == sorted(run["id"] for run in saved)
    assert listings[0] == listings[1]  # the same order on both: newest first, one database
    # Both replicas really served saves (the threads alternate between them).
    assert {run["replica"] for run in saved} == {a.base, b.base}
