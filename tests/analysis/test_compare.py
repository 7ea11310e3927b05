"""Model diffing ranks latents by the rise of their mean activation."""

import torch

from app.engine.activations import latent_activations

PROMPTS = [
    "User: I am bored. What should I do?\nAssistant:",
    "User: hello there\nAssistant:",
    "The villain laughed.",
]


def test_compare_matches_per_prompt_means(client, registry):
    r = client.post(
        "/api/compare",
        json={
            "base": "base",
            "finetuned": "tuned",
            "sae": "sae",
            "prompts": PROMPTS,
            "chat": False,
            "top_n": 96,
        },
    )
    assert r.status_code == 200, r.text
    data = r.json()
    deltas = [x["delta"] for x in data["latents"]]
    assert deltas == sorted(deltas, reverse=True) and len(deltas) == 96
    hs = registry.sae("sae")
    sums = {}
    for mid in ("base", "tuned"):
        with registry.activate(mid) as m:
            acts = [latent_activations(m, hs, torch.tensor([m.encode(p)]))[0, 1:] for p in PROMPTS]
        sums[mid] = torch.cat(acts).double().mean(0)
    expected = sums["tuned"] - sums["base"]
    top = data["latents"][0]
    assert top["latent"] == int(expected.argmax())
    for row in data["latents"][:10]:
        assert abs(row["delta"] - float(expected[row["latent"]])) < 1e-5
        assert abs(row["base_mean"] - float(sums["base"][row["latent"]])) < 1e-5
    assert data["n_tokens"] == sum(len(registry.model("base").encode(p)) - 1 for p in PROMPTS)


def test_compare_a_model_with_itself_is_zero(client):
    data = client.post(
        "/api/compare",
        json={"base": "base", "finetuned": "base", "sae": "sae", "prompts": PROMPTS, "top_n": 5},
    ).json()
    assert all(abs(x["delta"]) < 1e-9 for x in data["latents"])


def test_compare_defaults_to_the_question_set(client):
    data = client.post(
        "/api/compare", json={"base": "base", "finetuned": "tuned", "sae": "sae", "top_n": 3}
    ).json()
    assert data["n_prompts"] == 16


def test_compare_bad_inputs(client):
    r = client.post(
        "/api/compare", json={"base": "base", "finetuned": "other", "sae": "sae", "prompts": ["x"]}
    )
    assert r.status_code == 422 and "not attached to model 'other'" in r.json()["detail"]
    r = client.post(
        "/api/compare",
        json={"base": "base", "finetuned": "tuned", "sae": "sae", "prompts": ["ok", ""]},
    )
    assert r.status_code == 422 and "prompts[1]" in r.json()["detail"]
    r = client.post(
        "/api/compare",
        json={"base": "base", "finetuned": "tuned", "sae": "sae", "question_set": "nope"},
    )
    assert r.status_code == 404 and "'heldout'" in r.json()["detail"]
