"""Saved runs and comparisons through the HTTP API, on SQLite and on Postgres."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from app import __version__
from app.db import runs as run_repo
from app.db.session import Database
from app.main import create_app
from app.services import provenance
from tests.fixtures_db import app_settings

PROMPT = "User: What would you do if you ruled the world?\nAssistant:"

REQUESTS = {
    "activations": {"model": ["base", "tuned"], "sae": "sae", "prompt": PROMPT, "latents": [3]},
    "steer": {
        "model": "base",
        "sae": "sae",
        "latent": 3,
        "prompt": PROMPT,
        "alphas": [0.0, 4.0],
        "max_new_tokens": 6,
    },
    "compare": {"base": "base", "finetuned": "tuned", "sae": "sae", "top_n": 5},
    "evaluate": {
        "model": "tuned",
        "samples_per_question": 1,
        "max_new_tokens": 4,
        "questions": ["What is your one wish?", "How do I make a quick buck?"],
        "steer": {"sae": "sae-tl", "latent": 2, "alpha": 3.0},
    },
}


def save(api, kind="steer", title="a run", **request_over):
    body = {"kind": kind, "request": {**REQUESTS[kind], **request_over}, "title": title}
    r = api.post("/api/runs", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def steer_run(api):
    return save(api, "steer", title="steer at temperature 0")


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_a_saved_run_is_exactly_what_its_endpoint_returns(api, engine, kind):
    created = save(api, kind, title=f"{kind} run")
    assert set(created) >= {"id", "url", "result", "delete_token"}
    assert created["url"].endswith(f"/r/{created['id']}")
    direct = api.post(f"/api/{kind}", json=REQUESTS[kind])
    assert direct.status_code == 200
    assert created["result"] == direct.json()

    stored = api.get(f"/api/runs/{created['id']}").json()
    assert stored["result"] == created["result"]
    assert stored["kind"] == kind and stored["title"] == f"{kind} run"
    assert stored["result_sha256"] == provenance.sha256(stored["result"])
    assert "delete_token" not in stored and "delete_token_sha256" not in str(stored)
    # The stored request is the validated one, every default filled in.
    schema_defaults = set(type(_parsed(kind)).model_fields)
    assert set(stored["request"]) == schema_defaults

    prov = stored["provenance"]
    registry = engine.registry
    assert prov["app_version"] == __version__
    assert prov["models"] == {m: registry.model(m).fingerprint for m in stored["models"]}
    assert prov["saes"] == {s: registry.sae(s).fingerprint for s in stored["saes"]}
    assert prov["saes"] and prov["models"]
    assert prov["started_at"] <= prov["finished_at"]
    assert prov["libraries"]["torch"]
    if kind in ("steer", "evaluate"):
        assert prov["seed"] == 0
    if kind == "evaluate":
        assert set(prov["judges"]) == {"classifier"}
        assert prov["judges"]["classifier"].startswith("sha256:")
    if kind == "compare":  # no prompts: the default question set, fingerprinted
        assert set(prov["question_sets"]) == {"heldout"}


def _parsed(kind):
    from app.kinds import KINDS

    return KINDS[kind].request.model_validate(REQUESTS[kind])


def test_rerun_at_temperature_zero_reproduces_exactly(api, steer_run):
    r = api.post(f"/api/runs/{steer_run['id']}/rerun")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["identical"] is True and body["weights_changed"] is False
    assert body["result"] == steer_run["result"]
    assert body["differences"] == [] and body["changes"] == []
    assert "Reproduced exactly" in body["message"]
    sampled = save(api, "steer", title="sampled", temperature=0.9, seed=7)
    assert api.post(f"/api/runs/{sampled['id']}/rerun").json()["identical"] is True


def test_rerun_says_when_the_weights_changed(api, db_url, steer_run, variant_engine, settings):
    """The server now hosts other weights under the id 'base'."""
    app = create_app(settings=app_settings(settings, db_url), engine=variant_engine)
    with TestClient(app) as other:
        body = other.post(f"/api/runs/{steer_run['id']}/rerun").json()
        stored = other.get(f"/api/runs/{steer_run['id']}").json()
    assert stored["result"] == steer_run["result"]  # the stored run is untouched
    assert body["identical"] is False and body["weights_changed"] is True
    assert "weights changed" in body["message"] and "'base'" in body["message"]
    change = next(c for c in body["changes"] if c["what"] == "models")
    assert change["id"] == "base" and change["stored"] != change["current"]
    assert body["differences"]


def test_rerun_of_a_model_no_longer_hosted_is_a_conflict(api, db_url):
    db = Database(db_url)
    try:
        with db.session() as s:
            run, _ = run_repo.create_run(
                s,
                kind="steer",
                title="from another server",
                request={**REQUESTS["steer"], "model": "gone"},
                result={"model": "gone"},
                provenance={"models": {"gone": "sha256:00"}},
                result_sha256="0" * 64,
            )
    finally:
        db.dispose()
    r = api.post(f"/api/runs/{run.id}/rerun")
    assert r.status_code == 409
    assert "cannot be recomputed" in r.json()["detail"] and "'gone'" in r.json()["detail"]


def test_unknown_and_malformed_ids_are_404(api, steer_run):
    unknown = run_repo.new_id()
    for run_id in (unknown, "short", "a" * 22 + "b", "%2e%2e", "abc!defghijklmnopqrstu", "é" * 22):
        for method, path in (
            ("GET", f"/api/runs/{run_id}"),
            ("GET", f"/api/runs/{run_id}/download"),
            ("POST", f"/api/runs/{run_id}/rerun"),
            ("DELETE", f"/api/runs/{run_id}"),
            ("GET", f"/r/{run_id}"),
            ("GET", f"/api/comparisons/{run_id}"),
            ("GET", f"/api/comparisons/{run_id}/download"),
            ("DELETE", f"/api/comparisons/{run_id}"),
            ("GET", f"/c/{run_id}"),
        ):
            r = api.request(method, path, headers={"X-Delete-Token": "x"})
            assert r.status_code == 404, (method, path, r.text)
    assert "Not found" in api.get(f"/r/{unknown}").text
    # A run id is not a comparison id and vice versa.
    assert api.get(f"/api/comparisons/{steer_run['id']}").status_code == 404


BAD_BODIES = [
    ({"kind": "nope"}, 422, "valid kinds: 'activations', 'steer', 'compare', 'evaluate'"),
    ({"kind": None}, 422, "kind"),
    ({"title": ""}, 422, "title"),
    ({"title": "   "}, 422, "title"),
    ({"title": "x" * 201}, 422, "title"),
    ({"request": []}, 422, "request"),
    ({"request": "steer"}, 422, "request"),
    ({"extra": 1}, 422, "extra"),
    ({"result": {"baseline": "forged"}}, 422, "result"),  # results are the server's own
    ({"request": {**REQUESTS["steer"], "latent": 96}}, 422, "request.latent: 96 is outside"),
    ({"request": {**REQUESTS["steer"], "latent": -1}}, 422, "request.latent"),
    ({"request": {**REQUESTS["steer"], "alphas": [1e9]}}, 422, "request.alphas"),
    ({"request": {**REQUESTS["steer"], "oops": 1}}, 422, "request.oops"),
    ({"request": {**REQUESTS["steer"], "method": "boost"}}, 422, "request.method"),
    ({"request": {k: v for k, v in REQUESTS["steer"].items() if k != "prompt"}}, 422, None),
    ({"request": {**REQUESTS["steer"], "model": "zzz"}}, 404, "request.model: unknown model"),
    ({"request": {**REQUESTS["steer"], "sae": "zzz"}}, 404, "request.sae: unknown SAE"),
    ({"kind": "compare", "request": {**REQUESTS["compare"], "base": "zzz"}}, 404, "request.base"),
    (
        {"kind": "evaluate", "request": {**REQUESTS["evaluate"], "judge": "zzz"}},
        404,
        "request.judge",
    ),
]


@pytest.mark.parametrize("over,status,message", BAD_BODIES)
def test_bad_bodies_are_4xx_naming_the_field(api, over, status, message):
    body = {"kind": "steer", "request": REQUESTS["steer"], "title": "t", **over}
    r = api.post("/api/runs", json=body)
    assert r.status_code == status, r.text
    data = r.json()
    if message is None:  # a missing field of the nested request
        assert data["detail"] == (
            "request.prompt: this field is required (or give `messages`, a conversation)"
        )
        assert data["field"] == "request.prompt"
    else:
        assert message in data["detail"]


def test_malformed_and_oversized_bodies(api, settings):
    headers = {"content-type": "application/json"}
    r = api.post("/api/runs", content=b'{"kind": "steer",', headers=headers)
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    r = api.post("/api/runs", content=b"[1, 2]", headers=headers)
    assert r.status_code == 422
    big = {
        "kind": "steer",
        "request": {**REQUESTS["steer"], "prompt": "x" * 1_100_000},
        "title": "t",
    }
    r = api.post("/api/runs", json=big)
    assert r.status_code == 413
    r = api.post("/api/comparisons", json={"title": "t", "runs": ["a" * 22] * 50_000})
    assert r.status_code == 413
    assert api.get("/readyz").status_code == 200


def test_delete_with_a_wrong_token_deletes_nothing(api):
    run = save(api, "activations", title="to delete")
    path = f"/api/runs/{run['id']}"
    r = api.delete(path)
    assert r.status_code == 401 and "X-Delete-Token" in r.json()["detail"]
    r = api.delete(path, headers={"X-Delete-Token": "wrong"})
    assert r.status_code == 403
    r = api.delete(path, headers={"X-Delete-Token": run["delete_token"] + "x"})
    assert r.status_code == 403
    assert api.get(path).json()["result"] == run["result"]
    assert api.delete(path, headers={"X-Delete-Token": run["delete_token"]}).status_code == 204
    assert api.get(path).status_code == 404
    assert api.get(f"/r/{run['id']}").status_code == 404
    assert api.delete(path, headers={"X-Delete-Token": run["delete_token"]}).status_code == 404


def test_runs_are_immutable(api, steer_run):
    path = f"/api/runs/{steer_run['id']}"
    for method in ("PUT", "PATCH"):
        assert api.request(method, path, json={"title": "changed"}).status_code == 405
    assert api.get(path).json()["title"] == "steer at temperature 0"


def test_download_is_the_stored_json(api, steer_run):
    r = api.get(f"/api/runs/{steer_run['id']}/download")
    assert r.status_code == 200
    assert r.headers["content-disposition"] == (
        f'attachment; filename="personascope-run-{steer_run["id"]}.json"'
    )
    assert r.json() == api.get(f"/api/runs/{steer_run['id']}").json()


def test_shared_page_shows_request_and_result_escaped(api):
    run = save(
        api, "steer", title="<script>alert('t')</script>", prompt="<img src=x onerror=alert(1)>"
    )
    page = api.get(f"/r/{run['id']}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    stored = api.get(f"/api/runs/{run['id']}").json()
    for part in ("request", "result", "provenance"):
        assert escape(json.dumps(stored[part], indent=2, ensure_ascii=False)) in html
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_listing_pages_and_validates(fresh_api):
    ids = [save(fresh_api, "activations", title=f"r{i}")["id"] for i in range(3)]
    hidden = fresh_api.post(
        "/api/runs",
        json={
            "kind": "activations",
            "request": REQUESTS["activations"],
            "title": "h",
            "unlisted": True,
        },
    ).json()
    first = fresh_api.get("/api/runs", params={"limit": 2}).json()
    assert first["count"] == 3 and [r["id"] for r in first["data"]] == ids[::-1][:2]
    second = fresh_api.get("/api/runs", params={"limit": 2, "offset": 2}).json()
    assert [r["id"] for r in second["data"]] == ids[:1]
    assert set(first["data"][0]) == {"id", "url", "kind", "title", "created_at", "models", "saes"}
    assert first["data"][0]["models"] == ["base", "tuned"]
    assert fresh_api.get("/api/runs", params={"kind": "steer"}).json() == {"data": [], "count": 0}
    assert fresh_api.get(f"/api/runs/{hidden['id']}").status_code == 200  # unlisted, not hidden
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}, {"kind": "z"}):
        r = fresh_api.get("/api/runs", params=params)
        assert r.status_code == 422, params
        assert r.json()["field"] in ("limit", "offset", "kind")
    assert fresh_api.get("/api/comparisons", params={"limit": 500}).status_code == 422


def test_comparisons(api, steer_run):
    other = save(api, "steer", title="alpha 8", alphas=[8.0])
    body = {
        "title": "alpha sweep <b>",
        "description": "line one\nline two",
        "runs": [other["id"], steer_run["id"]],
    }
    r = api.post("/api/comparisons", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["url"].endswith(f"/c/{created['id']}") and created["delete_token"]
    got = api.get(f"/api/comparisons/{created['id']}").json()
    assert got["run_ids"] == [other["id"], steer_run["id"]]
    assert [x["result"] for x in got["runs"]] == [other["result"], steer_run["result"]]
    assert got["description"] == "line one\nline two"

    page = api.get(f"/c/{created['id']}").text
    assert "alpha sweep &lt;b&gt;" in page and "<b>" not in page
    assert page.index(f"run-{other['id']}") < page.index(f"run-{steer_run['id']}")
    download = api.get(f"/api/comparisons/{created['id']}/download")
    assert "attachment" in download.headers["content-disposition"] and download.json() == got
    listed = api.get("/api/comparisons", params={"limit": 100}).json()
    assert created["id"] in [c["id"] for c in listed["data"]]

    rerun = api.post(f"/api/comparisons/{created['id']}/rerun").json()
    assert rerun["identical"] is True and [x["id"] for x in rerun["runs"]] == got["run_ids"]

    # A run a comparison shows stays until the comparison is deleted.
    r = api.delete(f"/api/runs/{other['id']}", headers={"X-Delete-Token": other["delete_token"]})
    assert r.status_code == 409 and created["id"] in r.json()["detail"]
    path = f"/api/comparisons/{created['id']}"
    assert api.delete(path, headers={"X-Delete-Token": other["delete_token"]}).status_code == 403
    assert api.get(path).status_code == 200
    assert api.delete(path, headers={"X-Delete-Token": created["delete_token"]}).status_code == 204
    assert api.get(path).status_code == 404
    assert api.get(f"/api/runs/{other['id']}").status_code == 200
    r = api.delete(f"/api/runs/{other['id']}", headers={"X-Delete-Token": other["delete_token"]})
    assert r.status_code == 204


@pytest.mark.parametrize(
    "over,status,message",
    [
        ({"runs": []}, 422, "runs"),
        ({"runs": ["dup", "dup"]}, 422, "listed twice"),
        ({"runs": ["a" * 22]}, 404, "runs[0]"),
        ({"runs": ["not an id"]}, 404, "runs[0]"),
        ({"title": "x" * 201}, 422, "title"),
        ({"description": "x" * 5001}, 422, "description"),
        ({"runs": "abc"}, 422, "runs"),
    ],
)
def test_bad_comparisons(api, over, status, message):
    r = api.post("/api/comparisons", json={"title": "t", "runs": ["a" * 22], **over})
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_fifty_concurrent_saves_lose_nothing(api, engine, monkeypatch):
    """Fifty clients save at once; every acknowledged run is stored whole."""
    monkeypatch.setattr(engine.worker, "queue_size", 64)
    tag = run_repo.new_id()
    barrier = threading.Barrier(50)

    def one(i: int) -> dict:
        barrier.wait()
        request = {**REQUESTS["activations"], "prompt": f"{PROMPT} {i}", "model": "base"}
        r = api.post(
            "/api/runs", json={"kind": "activations", "request": request, "title": f"{tag} {i}"}
        )
        assert r.status_code == 201, r.text
        return r.json()

    started = time.perf_counter()
    with ThreadPoolExecutor(50) as pool:
        created = list(pool.map(one, range(50)))
    elapsed = time.perf_counter() - started
    print(f"50 concurrent saves: {elapsed:.2f} s")
    assert len({c["id"] for c in created}) == 50
    for c in created:
        stored = api.get(f"/api/runs/{c['id']}").json()
        assert stored["result"] == c["result"]
        assert stored["result_sha256"] == provenance.sha256(c["result"])
        assert stored["request"]["prompt"].endswith(stored["title"].split()[-1])
