"""What a new user hit in the inspector and the playground: the latents that grow most are
computed from both models' real activations, and the playground's default α is readable."""

import torch

from app.engine.activations import latent_activations
from app.services import catalog
from app.services.context import Context
from tests.web.test_pages import q

PROMPT = "User: What would you do if you ruled the world?\nAssistant: I would"


def exact_growth(engine, prompt: str) -> list[tuple[int, float]]:
    """An independent reference: every latent's peak over non-special tokens in each model."""
    base = engine.registry.model("base")
    ids = base.encode(prompt)
    special = catalog.special_ids(Context(engine), "base")
    keep = torch.tensor([t not in special for t in ids])
    sae = engine.registry.sae("sae")
    peaks = []
    for model_id in ("base", "tuned"):
        with engine.registry.activate(model_id) as live:
            acts = latent_activations(live, sae, torch.tensor([ids]))[0]
        peaks.append(acts[keep].amax(0))
    delta = peaks[1] - peaks[0]
    order = torch.argsort(delta, descending=True)[:10].tolist()
    return [(i, float(delta[i])) for i in order if delta[i] > 0]


def test_latents_that_grow_most_are_exact(live, engine):
    r = live.http.post(
        "/api/activations",
        json={"model": ["base", "tuned"], "sae": "sae", "prompt": PROMPT, "top_k": 3},
    )
    grown = [(g["latent"], g["delta"]) for g in r.json()["growth"]]
    expected = exact_growth(engine, PROMPT)
    assert [i for i, _ in grown] == [i for i, _ in expected]
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(grown, expected, strict=True))
    # The inspector's table shows the same latents and values (top_k=3 lists only a few
    # latents per token: the table does not depend on them).
    page = live.http.get(
        q("/inspect", model=["base", "tuned"], sae="sae", prompt=PROMPT, top_k=3, run=1)
    ).text
    table = page[page.index('class="changed"') :]
    for latent, delta in expected[:3]:
        assert f"#{latent}<" in table and f"+{delta:.3g}"[:5] in table


def test_playground_defaults_to_readable_alphas(live):
    page = live.http.get("/steer").text
    assert 'name="alphas" type="text" value="1, 2, 4"' in page


def test_go_to_box_takes_a_feature_id(live):
    r = live.http.get("/latents/go", params={"sae": "sae", "latent": "sae-tl/5"})
    assert r.status_code == 303 and r.headers["location"] == "/latents/sae-tl/5"
    bad = live.http.get("/latents/go", params={"sae": "sae", "latent": "gpt2-small/8-res-jb/1"})
    assert bad.status_code == 422 and "No hosted SAE" in bad.text


def test_latent_pages_show_a_background_build_in_progress(live):
    from app.index import progress

    path = live.app.state.settings.data_dir / "index" / "progress.json"
    progress.write(
        path, state="building", done=21, total=50, model="base", sae="sae-tl", dataset="tiny"
    )
    try:
        page = live.http.get("/latents", params={"sae": "sae-tl"}).text
        assert "Building the latent index: 42%" in page and 'hx-trigger="every 3s"' in page
        one = live.http.get("/latents/sae-tl/3").text
        assert "Building the latent index: 42%" in one
    finally:
        path.unlink()
    assert "Building the latent index" not in live.http.get("/latents?sae=sae-tl").text
