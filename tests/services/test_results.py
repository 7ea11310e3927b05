"""Saving a run the server just computed stores that result without computing it again;
anything else (another request, changed weights, an expired entry) is computed."""

import time

import pytest

from app.engine import steering
from app.services.cache import Computed, RecentResults
from tests.api.test_api import steer_body


@pytest.fixture
def generations(monkeypatch):
    """How many steering generations the engine runs."""
    calls = []
    original = steering.generate

    def counting(model, *args, **kwargs):
        calls.append(model.id)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(steering, "generate", counting)
    return calls


def test_saving_what_was_just_computed_does_no_model_work(api, generations):
    body = steer_body(seed=11, temperature=0.7, max_new_tokens=6)
    shown = api.post("/api/steer", json=body).json()
    assert len(generations) == 1
    saved = api.post("/api/runs", json={"kind": "steer", "request": body, "title": "t"})
    assert saved.status_code == 201 and len(generations) == 1  # no second generation
    assert saved.json()["result"] == shown
    other = api.post(
        "/api/runs", json={"kind": "steer", "request": {**body, "seed": 12}, "title": "t"}
    )
    assert other.status_code == 201 and len(generations) == 2  # another request: computed
    rerun = api.post(f"/api/runs/{saved.json()['id']}/rerun").json()
    assert rerun["identical"] is True and len(generations) == 3  # a rerun always recomputes


def test_a_streamed_result_is_kept_too(api, generations):
    body = steer_body(seed=21, max_new_tokens=5, model=["base", "tuned"])
    with api.stream("POST", "/api/steer/stream", json=body) as resp:
        text = "".join(resp.iter_text())
    # base and its adapter share one generate (a mixed-adapter batch)
    assert "event: end" in text and len(generations) == 1
    saved = api.post("/api/runs", json={"kind": "steer", "request": body, "title": "t"})
    assert saved.status_code == 201 and len(generations) == 1


def entry(size: int, ttl: float = 60.0) -> Computed:
    return Computed({}, {}, "", size, time.monotonic() + ttl)


def test_recent_results_are_bounded_by_time_and_bytes():
    store = RecentResults(ttl_s=60, max_bytes=100)
    store.put("a", entry(40))
    store.put("b", entry(40))
    store.put("c", entry(40))  # over 100 bytes: the oldest goes
    assert store.get("a") is None and store.get("b") and store.get("c") and len(store) == 2
    store.put("d", entry(101))  # larger than the whole store: not kept
    assert store.get("d") is None
    store.put("e", entry(10, ttl=-1))  # already expired
    assert store.get("e") is None
