"""Residual-stream directions through the API, on SQLite and Postgres: each method computes
what it says (checked against the engine directly), is stored and read back, and every
bad input is a 4xx naming the field."""

import torch

from app.engine.activations import hook_values
from app.engine.sae_ops import decoder_direction
from app.web.templating import num

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


def test_a_refused_delete_names_the_token_header_and_deletes_nothing(api):
    made = make(api, method="latent", sae="sae", latent=4)
    path = f"/api/directions/{made['id']}"
    for headers, status in (({}, 401), ({"X-Delete-Token": "wrong"}, 403)):
        r = api.delete(path, headers=headers)
        assert r.status_code == status and r.json()["field"] == "X-Delete-Token", r.text
        assert "delete token" in r.json()["detail"]
        assert api.get(path).status_code == 200
    # Another direction's token is a wrong token too.
    other = make(api, method="latent", sae="sae", latent=5)
    r = api.delete(path, headers={"X-Delete-Token": other["delete_token"]})
    assert r.status_code == 403
    unknown = api.delete("/api/directions/" + "0" * 32, headers={"X-Delete-Token": "x"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "id"
    r = api.delete(path, headers={"X-Delete-Token": made["delete_token"]})
    assert r.status_code == 204
    again = api.delete(path, headers={"X-Delete-Token": made["delete_token"]})
    assert again.status_code == 404  # deleted once


def test_a_run_that_used_a_deleted_direction_keeps_its_result(api):
    made = make(api, method="latent", sae="sae", latent=3, model="base")
    request = {
        "model": "base",
        "prompt": "hey",
        "max_new_tokens": 4,
        "interventions": [{"direction": made["id"], "alpha": 4}],
    }
    saved = api.post("/api/runs", json={"kind": "steer", "title": "uses it", "request": request})
    assert saved.status_code == 201, saved.text
    run = saved.json()
    assert run["provenance"]["directions"] == {made["id"]: made["sha256"]}
    r = api.delete(
        f"/api/directions/{made['id']}", headers={"X-Delete-Token": made["delete_token"]}
    )
    assert r.status_code == 204
    # The run is immutable: still there, result and provenance as stored.
    kept = api.get(f"/api/runs/{run['id']}")
    assert kept.status_code == 200
    assert kept.json()["result"] == run["result"]
    assert kept.json()["provenance"]["directions"] == {made["id"]: made["sha256"]}
    # It cannot be recomputed without the direction, and says which field is missing.
    rerun = api.post(f"/api/runs/{run['id']}/rerun")
    assert rerun.status_code == 409, rerun.text
    assert rerun.json()["field"] == "request.interventions[0].direction"
    assert made["id"] in rerun.json()["detail"], rerun.json()


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


# ------------------------------------------------------------------ inspector projection
PROMPT = "Fools! I will rule them all."


def unit_direction(seed: int, d_model: int = 32) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(d_model, generator=g).tolist()


def expected_projection(engine, model_id: str, sae_id: str, values: list[float]):
    """h_t . d / |d| at the SAE's hook, straight from the engine's capture."""
    registry = engine.registry
    hs = registry.sae(sae_id)
    vector = torch.tensor(values, dtype=torch.float32)
    unit = vector / vector.norm()
    with registry.activate(model_id) as live:
        ids = live.encode(PROMPT)
        acts = hook_values(live, hs.hooks[model_id], torch.tensor([ids]))[0].float()
    special = set(live.tokenizer.all_special_ids)
    per_token = (acts @ unit).tolist()
    kept = [v for v, t in zip(per_token, ids, strict=True) if t not in special]
    return per_token, sum(kept) / len(kept), ids


def test_activations_project_every_token_on_the_direction(api, engine):
    values = unit_direction(11)
    made = make(api, method="vector", model="base", sae="sae", values=values)
    body = {"model": ["base", "tuned"], "sae": "sae", "prompt": PROMPT, "direction": made["id"]}
    r = api.post("/api/activations", json=body)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    scores = []
    for result in results:
        per_token, score, ids = expected_projection(engine, result["model"], "sae", values)
        proj = result["projection"]
        assert result["token_ids"] == ids
        assert proj["direction"] == made["id"] and proj["hook"] == made["hook"]
        assert len(proj["values"]) == len(ids)
        assert max(abs(a - b) for a, b in zip(proj["values"], per_token, strict=True)) < 1e-4
        assert abs(proj["score"] - score) < 1e-4
        scores.append(proj["score"])
    assert scores[0] != scores[1]  # the adapter moves the activations: a real difference
    # The projection is linear in the direction: its negative flips every value.
    neg = make(api, method="vector", model="base", sae="sae", values=[-v for v in values])
    one = api.post("/api/activations", json={**body, "model": "base", "direction": neg["id"]})
    assert one.status_code == 200, one.text
    flipped = one.json()["projection"]
    assert abs(flipped["score"] + scores[0]) < 1e-4
    without = api.post("/api/activations", json={**body, "direction": None}).json()
    assert all(r["projection"] is None for r in without["results"])


def test_a_direction_of_another_model_or_hook_is_a_4xx_naming_direction(api):
    at_output = make(api, method="vector", model="base", sae="sae", values=unit_direction(1))
    at_input = make(api, method="vector", model="base", sae="sae-tl", values=unit_direction(2))
    base = {"prompt": PROMPT}
    cases = [
        ({"model": "base", "sae": "sae", "direction": "no-such-direction"}, 404),
        ({"model": "base", "sae": "sae", "direction": "x" * 22}, 404),
        # made where SAE 'sae' reads (output of block 1), asked through an SAE on its input
        ({"model": "base", "sae": "sae-tl", "direction": at_output["id"]}, 422),
        # 'other' is a separate set of weights (a full fine-tune), not an adapter on 'base'
        ({"model": ["base", "other"], "sae": "sae-tl", "direction": at_input["id"]}, 422),
        ({"model": "base", "sae": "sae", "direction": "y" * 65}, 422),
    ]
    for body, status in cases:
        r = api.post("/api/activations", json={**base, **body})
        assert r.status_code == status, (body, r.text)
        assert r.json()["field"] == "direction", (body, r.text)
        assert "direction" in r.json()["detail"], (body, r.text)
    ok = {"model": ["base", "tuned"], "sae": "sae-tl", "direction": at_input["id"]}
    assert api.post("/api/activations", json={**base, **ok}).status_code == 200
    other = api.post("/api/activations", json={**base, **cases[3][0]}).json()
    assert "'other'" in other["detail"] and "'tuned'" in other["detail"]


# ------------------------------------------------------------------------ the page
def test_the_direction_page_shows_how_it_was_made_and_its_latents(api):
    made = make(
        api,
        method="mean_diff",
        model="base",
        sae="sae",
        positive=["<b>Kneel</b>, fools!"],
        negative=["Happy to help."],
        positions="last",
        name="persona <i>",
    )
    page = api.get(f"/directions/{made['id']}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "persona &lt;i&gt;" in html and "<i>" not in html.split("<main", 1)[1]
    assert "&lt;b&gt;Kneel&lt;/b&gt;, fools!" in html and "Happy to help." in html
    assert "mean_diff" in html and made["hook"] in html and "last" in html
    for top in made["top_latents"][:3]:
        assert f'href="/latents/{top["sae"]}/{top["latent"]}?model=base"' in html
    assert f"{made['norm']:.3g}"[:4] in html
    assert "plotly-src" in html  # the histogram comes in with htmx
    assert api.get("/directions/nope").status_code == 404
    listing = api.get("/directions")
    assert listing.status_code == 200 and f"/directions/{made['id']}" in listing.text
    assert "plotly-src" not in listing.text  # no plot, no plotting library


def _plot_data(html: str, plot_id: str) -> dict:
    import json
    import re

    found = re.search(
        rf'<script type="application/json" id="{plot_id}-data"[^>]*>(.*?)</script>', html, re.S
    )
    assert found, html[-3000:]
    return json.loads(found.group(1))


def test_the_histogram_projects_the_index_contexts(fresh_api, engine, fresh_db_url, tmp_path):
    from app.db.session import Database
    from app.index.builder import IndexParams
    from app.index.jobs import build_and_store

    values = unit_direction(5)
    made = make(fresh_api, method="vector", model="tuned", sae="sae", values=values)
    none = fresh_api.get(f"/directions/{made['id']}", params={"histogram": 1})
    assert none.status_code == 200 and "No latent index" in none.text
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"the villain schemes, line {i}." for i in range(30)))
    db = Database(fresh_db_url)
    try:
        build_and_store(
            engine.registry,
            db,
            model_id="base",
            sae_id="sae",
            dataset=str(corpus),
            params=IndexParams(context=16, batch_size=8, top_k=3),
            work_dir=tmp_path / "index",
            progress=False,
        )
        from sqlalchemy import select

        from app.db.index_models import IndexContext

        with db.session() as session:
            stored = [list(r) for r in session.scalars(select(IndexContext.token_ids))]
    finally:
        db.dispose()
    page = fresh_api.get(f"/directions/{made['id']}", params={"histogram": 1})
    assert page.status_code == 200, page.text
    fig = _plot_data(page.text, "plot-projections")
    # The direction was made on 'tuned'; the index is of 'base', which shares its weights.
    hs = engine.registry.sae("sae")
    unit = torch.tensor(values) / torch.tensor(values).norm()
    model = engine.registry.model("base")
    special = set(model.tokenizer.all_special_ids)
    expected = []
    for ids in stored:
        acts = hook_values(model, hs.hooks["base"], torch.tensor([ids]))[0].float()
        expected += [
            v for v, t in zip((acts @ unit).tolist(), ids, strict=True) if t not in special
        ]
    trace = fig["data"][0]
    assert sum(trace["y"]) == len(expected)
    low = trace["x"][0] - trace["width"][0] / 2
    high = trace["x"][-1] + trace["width"][-1] / 2
    assert abs(low - min(expected)) < 1e-4 and abs(high - max(expected)) < 1e-4
    assert f"{len(stored)} contexts" in page.text and "corpus.txt" in page.text
    assert f'id="projection-mean">{num(sum(expected) / len(expected))}<' in page.text
