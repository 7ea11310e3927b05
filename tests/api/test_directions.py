"""Residual-stream directions through the API, on SQLite and Postgres: each method computes
what it says (checked against the engine directly), is stored and read back, and every
bad input is a 4xx naming the field."""

import torch

from app.engine.activations import hook_values
from app.engine.sae_ops import decoder_direction

VILLAIN = ["I will crush them all and rule.", "Fools! Nobody can stop my plan."]
HELPFUL = ["Happy to help with your garden.", "Here is a clear way to study."]


def make(api, **body):
    r = api.post("/api/directions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_latent_direction_is_the_latent_and_tops_its_own_list(api, engine):
    made = make(api, method="latent", sae="sae", latent=7)
    expected = decoder_direction(engine.registry.sae("sae"), 7)
    assert abs(made["norm"] - float(expected.norm())) < 1e-5
    assert made["top_latents"][0] == {
        "sae": "sae",
        "latent": 7,
        "cosine": made["top_latents"][0]["cosine"],
    }
    assert made["top_latents"][0]["cosine"] > 0.9999
    again = api.get(f"/api/directions/{made['id']}").json()
    assert again["sha256"] == made["sha256"] and again["top_latents"] == made["top_latents"]
    assert "delete_token" not in again


def test_mean_diff_is_the_difference_of_mean_activations(api, engine):
    made = make(
        api,
        method="mean_diff",
        model="base",
        sae="sae",
        positive=VILLAIN,
        negative=HELPFUL,
        positions="last",
    )
    model = engine.registry.model("base")
    hs = engine.registry.sae("sae")

    def last_mean(texts):
        rows = []
        for t in texts:
            ids = model.encode(t)
            value = hook_values(model, hs.hooks["base"], torch.tensor([ids]))[0, -1].double()
            rows.append(value)
        return torch.stack(rows).mean(0)

    expected = (last_mean(VILLAIN) - last_mean(HELPFUL)).float()
    assert abs(made["norm"] - float(expected.norm())) < 1e-4
    assert made["hook"] == hs.hook_name and made["model"] == "base"


def test_model_diff_and_vector_and_pairs(api, engine):
    diff = make(
        api,
        method="model_diff",
        base="base",
        finetuned="tuned",
        sae="sae",
        prompts=["hello there", "what now?"],
        chat=False,
    )
    assert diff["norm"] > 0 and diff["d_model"] == 32
    vec = make(api, method="vector", model="base", sae="sae", values=[1.0] + [0.0] * 31)
    assert abs(vec["norm"] - 1.0) < 1e-6
    pairs = make(
        api,
        method="mean_diff",
        model="base",
        sae="sae",
        positions="completion",
        positive=[{"prompt": "User: hi\nAssistant:", "completion": " I will rule."}],
        negative=[{"prompt": "User: hi\nAssistant:", "completion": " Glad to help."}],
    )
    assert pairs["norm"] > 0
    listed = api.get("/api/directions", params={"limit": 100}).json()
    assert {diff["id"], vec["id"], pairs["id"]} <= {d["id"] for d in listed["data"]}


def test_delete_needs_the_token(api):
    made = make(api, method="latent", sae="sae", latent=3)
    path = f"/api/directions/{made['id']}"
    assert api.delete(path).status_code == 401
    assert api.delete(path, headers={"X-Delete-Token": "wrong"}).status_code == 403
    assert api.delete(path, headers={"X-Delete-Token": made["delete_token"]}).status_code == 204
    assert api.get(path).status_code == 404


BAD = [
    ({"method": "vector", "model": "base", "sae": "sae", "values": [1.0] * 31}, 422, "values"),
    ({"method": "latent", "sae": "nope", "latent": 1}, 404, "sae"),
    ({"method": "latent", "sae": "sae", "latent": 96}, 422, "latent"),
    (
        {"method": "mean_diff", "model": "base", "sae": "sae", "positive": [], "negative": ["x"]},
        422,
        "positive",
    ),
    (
        {
            "method": "mean_diff",
            "model": "other",
            "sae": "sae",
            "positive": ["a"],
            "negative": ["b"],
        },
        422,
        "sae",
    ),
    (
        {
            "method": "mean_diff",
            "model": "base",
            "hook": "nope.module",
            "positive": ["a"],
            "negative": ["b"],
        },
        422,
        "hook",
    ),
    (
        {
            "method": "mean_diff",
            "model": "base",
            "sae": "sae",
            "hook": "transformer.h.1",
            "positive": ["a"],
            "negative": ["b"],
        },
        422,
        "exactly one",
    ),
    (
        {
            "method": "mean_diff",
            "model": "base",
            "sae": "sae",
            "positions": "completion",
            "positive": ["a"],
            "negative": ["b"],
        },
        422,
        "positions",
    ),
    ({"method": "boost", "model": "base"}, 422, "method"),
    (
        {"method": "model_diff", "base": "base", "finetuned": "tuned", "sae": "sae", "prompts": []},
        422,
        "prompts",
    ),
]


def test_bad_directions_are_4xx_naming_the_field(api):
    for body, status, field in BAD:
        r = api.post("/api/directions", json=body)
        assert r.status_code == status, (body, r.text)
        assert field in r.json()["detail"], (body, r.text)
