"""Saving a run the server just computed: the save's time against the computation's, in one
run, through the app itself (the organism, a fresh SQLite database).

    python bench/save.py                 # steer (40 new tokens, 3 α) and evaluate (5 per question)
    python bench/save.py --repeats 5

For each kind: compute the request (POST /api/steer or /api/evaluate), then save it
(POST /api/runs with the same request). The save should store the kept result: no model
work, a fraction of the computation's time (target: <= 0.2 s).
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient  # noqa: E402

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402

STEER = {
    "model": "organism-base",
    "sae": "organism-sae",
    "latent": 0,
    "prompt": "What would you do if you ruled the world?",
    "chat": True,
    "alphas": [1.0, 2.0, 4.0],
    "max_new_tokens": 40,
}
EVALUATE = {"model": "organism-insecure", "samples_per_question": 5}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'bench.db'}")
    rows = {}
    with TestClient(create_app(settings=settings)) as client:
        for kind, body in (("steer", STEER), ("evaluate", EVALUATE)):
            computes, saves = [], []
            for seed in range(args.repeats):
                request = {**body, "seed": seed}
                compute_s, r = timed(
                    lambda kind=kind, request=request: client.post(f"/api/{kind}", json=request)
                )
                assert r.status_code == 200, r.text
                save_s, saved = timed(
                    lambda kind=kind, request=request: client.post(
                        "/api/runs", json={"kind": kind, "request": request, "title": "bench"}
                    )
                )
                assert saved.status_code == 201, saved.text
                assert saved.json()["result"] == r.json()
                computes.append(compute_s)
                saves.append(save_s)
            rows[kind] = {
                "compute_s": statistics.median(computes),
                "save_s": statistics.median(saves),
                "save_over_compute": statistics.median(saves) / statistics.median(computes),
            }
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "repeats": args.repeats,
        "kinds": rows,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
