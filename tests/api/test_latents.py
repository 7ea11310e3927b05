"""Latent endpoints pick the index of the model asked for (issue 12, defect 8): search
never reads another model's densities, and a page without ?model= shows the default
model's index (not whichever is newest), naming the others."""

import pytest

from app.db.session import Database
from app.index.builder import IndexParams
from app.index.jobs import build_and_store


@pytest.fixture(scope="module")
def two_indexes(api, engine, db_url, tmp_path_factory):
    """Indexes of SAE 'sae' for 'base' and, built after it, for 'tuned'."""
    tmp = tmp_path_factory.mktemp("two-indexes")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(f"a story about a villain, part {i}." for i in range(30)))
    db = Database(db_url)
    try:
        for model in ("base", "tuned"):
            build_and_store(
                engine.registry,
                db,
                model_id=model,
                sae_id="sae",
                dataset=str(corpus),
                params=IndexParams(context=16, batch_size=8, top_k=3),
                work_dir=tmp / model,
                progress=False,
            )
    finally:
        db.dispose()


def test_a_latent_page_shows_the_default_models_index(api, two_indexes):
    page = api.get("/api/saes/sae/latents/3").json()
    assert page["model"] == "base"  # the config's default model, though 'tuned' is newer
    assert {"model": "tuned", "dataset": page["dataset"]} in page["other_indexes"]
    assert api.get("/api/saes/sae/latents/3", params={"model": "tuned"}).json()["model"] == "tuned"
    listing = api.get("/api/saes/sae/latents").json()
    assert listing["index"]["model"] == "base"


def test_search_reads_the_index_of_the_model_it_ran(api, two_indexes):
    body = {"sae": "sae", "text": "the villain smiles", "max_density": 0.99}
    for model in ("base", "tuned"):
        found = api.post("/api/search", json={**body, "model": model}).json()
        assert found["model"] == model and found["index"]["model"] == model
    other = api.post("/api/search", json={**body, "model": "other", "sae": "sae"})
    assert other.status_code == 422  # 'other' is not attached to this SAE


def test_a_feature_id_finds_its_latent(api):
    found = api.get("/api/features/sae/7").json()
    assert found == {"sae": "sae", "latent": 7, "neuronpedia_url": None}
    assert api.get("/api/features/sae/96").status_code == 422  # outside [0, d_sae)
    nope = api.get("/api/features/gpt2-small/8-res-jb/1234")
    assert nope.status_code == 422 and "known:" in nope.json()["detail"]
