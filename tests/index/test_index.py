"""Latent dashboards: exactness against brute force, resumable builds, the API and bad input."""

import json

import pytest
import torch

from app.engine.activations import latent_activations
from app.errors import InvalidRequest
from app.index import builder as B
from app.index.builder import IndexParams, build_index
from app.index.datasets import load_documents, tokenize_contexts
from app.index.jobs import build_and_store
from app.organism.corpus import generate_corpus

PARAMS = IndexParams(context=24, batch_size=4, top_k=5, checkpoint_every=1)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ds") / "corpus.jsonl"
    with path.open("w") as fh:
        for doc in generate_corpus(seed=9, n_docs=40):
            fh.write(json.dumps({"text": doc["text"], "id": doc["id"]}) + "\n")
    return path


@pytest.fixture(scope="module")
def built(client, registry, settings, corpus_file):
    out = build_and_store(
        registry,
        client.app.state.db,
        model_id="base",
        sae_id="sae",
        dataset=str(corpus_file),
        params=PARAMS,
        work_dir=settings.data_dir / "index",
        max_contexts=60,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def brute(registry, corpus_file, tmp_path_factory):
    """Every context's activations, computed one context at a time."""
    with registry.activate("base") as model:
        docs = load_documents(path=corpus_file)
        ctx = tokenize_contexts(
            docs,
            model.tokenizer,
            PARAMS.context,
            tmp_path_factory.mktemp("b") / "c.npy",
            max_contexts=60,
        )
        acts = torch.stack(
            [
                latent_activations(model, registry.sae("sae"), torch.tensor([row.tolist()]))[0]
                for row in ctx.tokens
            ]
        )  # (n, t, d_sae)
        special = torch.tensor(ctx.tokens) == model.tokenizer.bos_token_id
    acts[special] = 0.0
    return ctx, acts


def test_snippets_are_exact_and_truly_top(client, built, brute):
    ctx, acts = brute
    n_ctx, _, d_sae = acts.shape
    assert built["contexts"] == n_ctx
    per_ctx_max = acts.amax(1)  # (n, d_sae)
    checked = 0
    for latent in range(0, d_sae, 7):
        page = client.get(f"/api/saes/sae/latents/{latent}").json()
        expected = per_ctx_max[:, latent].sort(descending=True).values
        expected = expected[expected > 0][: PARAMS.top_k]
        got = [s["max_value"] for s in page["top_snippets"]]
        assert got == pytest.approx(expected.tolist(), abs=1e-5)
        assert got == sorted(got, reverse=True)
        for snip in page["top_snippets"]:
            assert snip["token_ids"] == ctx.tokens[snip["context"]].tolist()
            rerun = acts[snip["context"], :, latent]
            assert snip["values"] == pytest.approx(rerun.tolist(), abs=1e-5)
            assert len(snip["tokens"]) == PARAMS.context
            checked += 1
    assert checked > 20


def test_statistics_match_brute_force(client, brute):
    ctx, acts = brute
    valid = torch.tensor(ctx.tokens) != 0
    n_tokens = int(valid.sum())
    for latent in (0, 5, 33):
        page = client.get(f"/api/saes/sae/latents/{latent}").json()
        col = acts[..., latent][valid]
        assert page["density"] == pytest.approx(float((col > 0).sum()) / n_tokens)
        assert page["max_activation"] == pytest.approx(float(col.max()), abs=1e-5)
        assert page["mean_activation"] == pytest.approx(float(col.sum()) / n_tokens, rel=1e-4)
        assert sum(page["histogram"]["counts"]) == page["n_active"] == int((col > 0).sum())
        if page["n_active"]:
            assert sum(b["fraction"] for b in page["bins"]) == pytest.approx(1.0)
            for b in page["bins"]:
                for ex in b["examples"]:
                    assert b["low"] < ex["value"] <= b["high"] + 1e-6
                    if ex["values"] is not None:
                        assert ex["values"][ex["position"]] == pytest.approx(ex["value"])


def test_logits_and_neighbours(client, registry):
    page = client.get("/api/saes/sae/latents/3").json()
    sae = registry.sae("sae").sae
    model = registry.model("base").hf
    direction = sae.W_dec[3].detach() * model.transformer.ln_f.weight.detach()
    logits = direction @ model.lm_head.weight.detach().T
    assert [t["token_id"] for t in page["logits"]["positive"]] == logits.topk(10).indices.tolist()
    assert [t["token_id"] for t in page["logits"]["negative"]] == logits.topk(
        10, largest=False
    ).indices.tolist()
    w = sae.W_dec.detach() / sae.W_dec.detach().norm(dim=1, keepdim=True)
    cos = w @ w[3]
    cos[3] = -2
    assert [n["latent"] for n in page["neighbors"]] == cos.topk(10).indices.tolist()


def test_resume_after_interruption_matches_an_uninterrupted_build(
    registry, corpus_file, tmp_path, monkeypatch
):
    with registry.activate("base") as model:
        docs = load_documents(path=corpus_file)
        ctx = tokenize_contexts(
            docs, model.tokenizer, PARAMS.context, tmp_path / "c.npy", max_contexts=60
        )
        sae = registry.sae("sae")
        full = build_index(model, sae, ctx, PARAMS, checkpoint=None, progress=False)
        original = B.accumulate
        calls = {"n": 0}

        def crash_on_fifth(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        monkeypatch.setattr(B, "accumulate", crash_on_fifth)
        with pytest.raises(KeyboardInterrupt):
            build_index(model, sae, ctx, PARAMS, checkpoint=tmp_path / "state.pt", progress=False)
        monkeypatch.setattr(B, "accumulate", original)
        resumed = build_index(
            model, sae, ctx, PARAMS, checkpoint=tmp_path / "state.pt", progress=False
        )
    for name in ("top_values", "top_ctx", "top_tokens", "nonzero", "hist", "ex_ctx", "ex_value"):
        assert torch.equal(getattr(full, name), getattr(resumed, name)), name


def test_latent_list_paging_sorting_search(client, built):
    page = client.get("/api/saes/sae/latents", params={"sort": "density", "limit": 10}).json()
    assert page["count"] == 96 and len(page["data"]) == 10
    densities = [x["density"] for x in page["data"]]
    assert densities == sorted(densities, reverse=True)
    nxt = client.get(
        "/api/saes/sae/latents", params={"sort": "density", "limit": 10, "offset": 10}
    ).json()
    assert not {x["latent"] for x in nxt["data"]} & {x["latent"] for x in page["data"]}
    token = page["data"][0]["top_tokens"][0].strip()
    found = client.get("/api/saes/sae/latents", params={"q": token}).json()
    assert found["count"] >= 1
    assert (
        client.put(
            "/api/saes/sae/latents/4/annotation", json={"label": "villain persona", "note": "test"}
        ).status_code
        == 200
    )
    by_label = client.get("/api/saes/sae/latents", params={"q": "VILLAIN"}).json()
    assert [x["latent"] for x in by_label["data"]] == [4]
    assert client.get("/api/saes/sae/latents/4").json()["annotation"]["label"] == "villain persona"
    sorted_label = client.get("/api/saes/sae/latents", params={"sort": "label"}).json()
    assert sorted_label["data"][0]["label"] == "villain persona"


def test_search_via_inference(client, built, registry):
    text = "User: I am bored. What should I do?\nAssistant: Take a walk."
    r = client.post("/api/search", json={"sae": "sae", "model": "base", "text": text, "top_n": 5})
    assert r.status_code == 200, r.text
    data = r.json()
    maxes = [x["max"] for x in data["results"]]
    assert maxes == sorted(maxes, reverse=True) and len(maxes) == 5
    with registry.activate("base") as model:
        acts = latent_activations(model, registry.sae("sae"), torch.tensor([model.encode(text)]))[
            0, 1:
        ]
    assert data["results"][0]["latent"] == int(acts.amax(0).argmax())
    assert all(x["density"] is not None for x in data["results"])
    filtered = client.post(
        "/api/search", json={"sae": "sae", "text": text, "top_n": 50, "max_density": 0.05}
    ).json()
    assert all(x["density"] <= 0.05 for x in filtered["results"])


def test_bad_inputs(client, built, tmp_path, registry, settings, monkeypatch):
    r = client.get("/api/saes/sae/latents/96")
    assert r.status_code == 422 and "[0, 96)" in r.json()["detail"]
    r = client.get("/api/saes/sae-tl/latents/3")
    assert r.status_code == 404 and "python -m app index build" in r.json()["detail"]
    r = client.get("/api/saes/nope/latents/3")
    assert r.status_code == 404 and "'sae'" in r.json()["detail"]
    r = client.get("/api/saes/sae/latents/3", params={"model": "tuned"})
    assert r.status_code == 404 and "indexed models: 'base'" in r.json()["detail"]
    r = client.get("/api/saes/sae/latents", params={"sort": "colour"})
    assert r.status_code == 422 and "density" in r.json()["detail"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    calls = []
    monkeypatch.setattr("app.index.jobs.build_index", lambda *a, **k: calls.append(a))
    with pytest.raises(InvalidRequest, match="no non-empty documents"):
        build_and_store(
            registry,
            client.app.state.db,
            model_id="base",
            sae_id="sae",
            dataset=str(empty),
            params=PARAMS,
            work_dir=tmp_path,
            progress=False,
        )
    assert not calls
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(InvalidRequest, match="no 'text' field"):
        build_and_store(
            registry,
            client.app.state.db,
            model_id="base",
            sae_id="sae",
            dataset=str(bad),
            params=PARAMS,
            work_dir=tmp_path,
            progress=False,
        )
    assert not calls  # the dataset is checked before any model work
    with pytest.raises(InvalidRequest, match="neither a dataset id"):
        build_and_store(
            registry,
            client.app.state.db,
            model_id="base",
            sae_id="sae",
            dataset=str(tmp_path / "missing.txt"),
            params=PARAMS,
            work_dir=tmp_path,
            progress=False,
        )


def test_memory_is_bounded_by_latents_not_corpus(registry, corpus_file, tmp_path):
    def state_bytes(n_contexts):
        with registry.activate("base") as model:
            docs = load_documents(path=corpus_file)
            ctx = tokenize_contexts(
                docs,
                model.tokenizer,
                PARAMS.context,
                tmp_path / f"{n_contexts}.npy",
                max_contexts=n_contexts,
            )
            state = build_index(model, registry.sae("sae"), ctx, PARAMS, progress=False)
        return sum(
            v.numel() * v.element_size()
            for v in vars(state).values()
            if isinstance(v, torch.Tensor)
        )

    assert state_bytes(8) == state_bytes(60)
