"""The JSON API end to end: shapes, equivalence with the engine, and every bad input."""

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from app.engine import steering
from app.engine.engine import Engine
from app.main import create_app

PROMPT = "User: What would you do if you ruled the world?\nAssistant:"


def steer_body(**over):
    body = {
        "model": "base",
        "sae": "sae",
        "latent": 3,
        "prompt": PROMPT,
        "alphas": [0.0, 4.0],
        "max_new_tokens": 8,
    }
    body.update(over)
    return body


def test_models_listing(client):
    data = client.get("/api/models").json()
    models = {m["id"]: m for m in data["models"]}
    assert models["tuned"]["base"] == "base" and models["tuned"]["adapter"].endswith("adapter")
    assert models["base"]["n_layers"] == 3 and models["base"]["d_model"] == 32
    assert models["base"]["source"].endswith("base")
    assert models["other"]["base"] == "base" and models["other"]["adapter"] is None
    saes = {s["id"]: s for s in data["saes"]}
    assert saes["sae"]["d_sae"] == 96 and saes["sae"]["models"] == ["base", "tuned"]
    assert saes["sae-mid"]["center_writing_weights"] is True
    assert saes["sae"]["architecture"] == "standard"


def test_hooks_listing(client):
    hooks = client.get("/api/models/base/hooks").json()["hooks"]
    names = {h["name"]: h for h in hooks}
    assert names["blocks.2.hook_resid_mid"]["reads"].startswith("input of transformer.h.2")
    assert "transformer.h.1" in names
    assert client.get("/api/models/nope/hooks").status_code == 404


def test_activations_single_and_multi(client):
    one = client.post(
        "/api/activations",
        json={"model": "base", "sae": "sae", "prompt": PROMPT, "top_k": 4, "latents": [2]},
    )
    assert one.status_code == 200
    body = one.json()
    assert set(body) >= {"tokens", "token_ids", "top", "latents"}
    assert len(body["latents"]["2"]) == len(body["tokens"]) == len(body["top"])
    both = client.post(
        "/api/activations",
        json={"model": ["base", "tuned"], "sae": "sae", "prompt": PROMPT, "latents": [2]},
    ).json()
    assert [r["model"] for r in both["results"]] == ["base", "tuned"]
    assert both["results"][0]["latents"] == body["latents"]
    assert both["results"][1]["latents"] != body["latents"]


def test_chat_template(client):
    plain = client.post(
        "/api/activations", json={"model": "base", "sae": "sae", "prompt": "hello", "chat": True}
    ).json()
    assert "".join(plain["tokens"]).endswith("User: hello\nAssistant:")


def test_steer_sweep(client):
    r = client.post("/api/steer", json=steer_body())
    assert r.status_code == 200, r.text
    data = r.json()
    assert [s["alpha"] for s in data["steered"]] == [0.0, 4.0]
    assert data["steered"][0]["token_ids"] == data["baseline"]["token_ids"]
    assert len(data["baseline"]["latent_activations"]) == len(data["baseline"]["token_ids"])
    again = client.post("/api/steer", json=steer_body()).json()
    assert again == data  # temperature 0 is deterministic
    multi = client.post("/api/steer", json=steer_body(model=["base", "tuned"])).json()
    assert [r["model"] for r in multi["results"]] == ["base", "tuned"]
    assert multi["results"][0] == data


def test_steer_stream_matches_plain_steer(client):
    body = steer_body(temperature=0.8, seed=3)
    plain = client.post("/api/steer", json=body).json()
    events = []
    with client.stream("POST", "/api/steer/stream", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "end" and "done" in kinds and kinds.count("token") > 0
    done = next(e for e in events if e["event"] == "done")["result"]
    assert done == plain
    streamed = "".join(e["text"] for e in events if e["event"] == "token" and e["row"] == 2)
    assert streamed == plain["steered"][1]["text"]


def test_stream_get_for_event_source(client):
    params = {
        "model": "base",
        "sae": "sae",
        "latent": 3,
        "prompt": PROMPT,
        "alphas": [2.0],
        "max_new_tokens": 4,
    }
    with client.stream("GET", "/api/steer/stream", params=params) as resp:
        text = "".join(resp.iter_text())
    assert "event: done" in text and "event: end" in text
    bad = client.get("/api/steer/stream", params={**params, "method": "boost"})
    assert bad.status_code == 422 and "'add', 'clamp' or 'ablate'" in bad.json()["detail"]


def test_stream_stops_when_the_client_disconnects(engine, settings, monkeypatch):
    seen = {}
    original = steering.generate

    def spy(model, prompts, on_step=None, cancel=None, **kwargs):
        seen["cancel"] = cancel
        steps = []

        def counting(tokens):
            steps.append(tokens)
            on_step(tokens)

        seen["steps"] = steps
        return original(model, prompts, on_step=counting, cancel=cancel, **kwargs)

    monkeypatch.setattr(steering, "generate", spy)
    app = create_app(settings=settings, engine=engine)
    body = steer_body(max_new_tokens=200, alphas=[1.0])
    with TestClient(app) as c:
        with c.stream("POST", "/api/steer/stream", json=body) as resp:
            for line in resp.iter_lines():
                if line.startswith("event: token"):
                    break
        deadline = time.time() + 10
        while engine.worker.pending and time.time() < deadline:
            time.sleep(0.05)
    assert seen["cancel"].is_set()
    assert engine.worker.pending == 0
    assert len(seen["steps"]) < 200


BAD = [
    ({"model": "nope"}, 404, "valid ids: 'base', 'tuned', 'other'"),
    ({"sae": "nope"}, 404, "valid ids: 'sae', 'sae-tl', 'sae-mid'"),
    ({"model": "other", "sae": "sae"}, 422, "not attached to model 'other'"),
    ({"latent": 96}, 422, "outside [0, 96)"),
    ({"latent": -1}, 422, "latent"),
    ({"alphas": [1e9]}, 422, "[-1000, 1000]"),
    ({"alphas": []}, 422, "alphas"),
    ({"alphas": [1.0] * 17}, 422, "limit of 16"),
    ({"alphas": [-1.0], "method": "clamp"}, 422, "never negative"),
    ({"prompt": ""}, 422, "prompt"),
    ({"prompt": "   "}, 422, "must not be empty"),
    ({"prompt": "word " * 600}, 422, "over the limit"),
    ({"max_new_tokens": 10_000}, 422, "cap of 256"),
    ({"max_new_tokens": 0}, 422, "max_new_tokens"),
    ({"method": "boost"}, 422, "'add', 'clamp' or 'ablate'"),
    ({"positions": "middle"}, 422, "'all', 'prompt', 'generated' or 'last_turn'"),
    ({"temperature": -1}, 422, "temperature"),
    ({"unknown_field": 1}, 422, "unknown_field"),
]


@pytest.mark.parametrize("over,status,message", BAD)
def test_bad_steer_requests(client, over, status, message):
    r = client.post("/api/steer", json=steer_body(**over))
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_non_finite_alpha(client):
    raw = json.dumps(steer_body()).replace("[0.0, 4.0]", "[NaN]")
    r = client.post("/api/steer", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "finite" in r.json()["detail"]


@pytest.mark.parametrize(
    "body,message",
    [
        ({"model": "base", "sae": "sae", "prompt": PROMPT, "latents": [500]}, "latents[0]"),
        ({"model": ["base", "nope"], "sae": "sae", "prompt": PROMPT}, "unknown model 'nope'"),
        ({"model": "base", "sae": "sae", "prompt": PROMPT, "top_k": 0}, "top_k"),
        ({"model": "base", "sae": "sae"}, "prompt: this field is required"),
    ],
)
def test_bad_activation_requests(client, body, message):
    r = client.post("/api/activations", json=body)
    assert r.status_code in (404, 422)
    assert message in r.json()["detail"]


def test_malformed_and_oversized_bodies(client, settings):
    r = client.post(
        "/api/steer", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    big = b'{"prompt": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    r = client.post("/api/steer", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/api/models").status_code == 200  # still serving


def test_full_queue_answers_503_with_retry_after(registry, settings):
    engine = Engine(registry, settings.model_copy(update={"queue_size": 1}))
    release = threading.Event()
    engine.worker.submit(release.wait)
    try:
        with TestClient(create_app(settings=settings, engine=engine)) as c:
            r = c.post("/api/steer", json=steer_body())
            assert r.status_code == 503
            assert r.headers["retry-after"] == str(settings.retry_after_s)
            assert "retry" in r.json()["detail"]
    finally:
        release.set()
    deadline = time.time() + 5
    while engine.worker.pending and time.time() < deadline:
        time.sleep(0.02)
    assert engine.worker.pending == 0


def test_openapi_documents_every_field(client):
    schema = client.get("/openapi.json").json()
    steer = schema["components"]["schemas"]["SteerRequest"]["properties"]
    assert all(p.get("description") for p in steer.values())
    assert "/api/steer/stream" in schema["paths"]
