"""Latent labels, notes and pins through the HTTP API, on SQLite and on Postgres."""

import pytest
from fastapi.testclient import TestClient

from app.db import annotations as annotation_repo
from app.db import runs as run_repo
from app.db.session import Database
from app.main import create_app
from app.services import annotations
from app.services.context import Context
from tests.fixtures_db import app_settings


@pytest.fixture(scope="module")
def variant_api(db_url, variant_engine, settings):
    """A server whose config pins latent 7 and names a report with persona latent 11."""
    app = create_app(settings=app_settings(settings, db_url), engine=variant_engine)
    with TestClient(app) as client:
        yield client


def test_label_note_and_read_back(api):
    path = "/api/saes/sae-tl/latents/5/annotation"
    empty = api.get(path).json()
    assert empty["label"] == "" and empty["pinned"] is False and empty["updated_at"] is None
    r = api.put(path, json={"label": "  villain persona ", "note": "fires on evil plans"})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "villain persona" and r.json()["updated_at"]
    r = api.put(path, json={"label": "pirate", "note": ""})
    assert api.get(path).json()["label"] == "pirate"
    listed = {a["latent"]: a for a in api.get("/api/saes/sae-tl/annotations").json()["data"]}
    assert listed[5]["label"] == "pirate" and listed[5]["sae"] == "sae-tl"
    some = api.get("/api/saes/sae-tl/annotations", params={"latents": [5, 6]}).json()
    assert [a["latent"] for a in some["data"]] == [5, 6] and some["data"][1]["label"] == ""
    assert api.delete(path).status_code == 204
    assert api.delete(path).status_code == 404
    assert api.get(path).json()["label"] == ""


def test_pins(api):
    assert api.post("/api/saes/sae-mid/pins", json={"latent": 9}).status_code == 201
    assert api.post("/api/saes/sae-mid/pins", json={"latent": 4}).status_code == 201
    assert api.post("/api/saes/sae-mid/pins", json={"latent": 9}).status_code == 201  # idempotent
    pins = api.get("/api/saes/sae-mid/pins").json()
    assert [p["latent"] for p in pins["data"]] == [9, 4] and pins["count"] == 2
    assert all(p["pin_source"] == "user" for p in pins["data"])
    assert api.delete("/api/saes/sae-mid/pins/9").status_code == 204
    assert api.delete("/api/saes/sae-mid/pins/9").status_code == 404
    assert [p["latent"] for p in api.get("/api/saes/sae-mid/pins").json()["data"]] == [4]


def test_default_pins_from_config_and_report(variant_api, variant_engine, db_url):
    pins = variant_api.get("/api/saes/sae/pins").json()["data"]
    by_latent = {p["latent"]: p for p in pins}
    assert by_latent[11]["label"] == "villain persona" and by_latent[11]["pin_source"] == "report"
    assert by_latent[7]["label"] == "config pin" and by_latent[7]["pin_source"] == "config"
    assert [p["latent"] for p in pins][:2] == [11, 7]
    r = variant_api.delete("/api/saes/sae/pins/11")
    assert r.status_code == 409 and "default pin" in r.json()["detail"]
    # A stored label wins over the default one; the pin stays.
    variant_api.put("/api/saes/sae/latents/11/annotation", json={"label": "evil vizier"})
    annotation = variant_api.get("/api/saes/sae/latents/11/annotation").json()
    assert annotation["label"] == "evil vizier" and annotation["pin_source"] == "report"
    variant_api.delete("/api/saes/sae/latents/11/annotation")
    # The function the latent endpoints call gives the same picture.
    db = Database(db_url)
    try:
        merged = annotations.for_latents(Context(variant_engine, db), "sae", [11, 7, 12])
    finally:
        db.dispose()
    assert merged[11]["label"] == "villain persona" and merged[12]["pinned"] is False
    assert variant_api.get("/api/saes/sae-tl/pins").json()["data"] == []


@pytest.mark.parametrize(
    "method,path,body,status,message",
    [
        ("GET", "/api/saes/nope/annotations", None, 404, "valid ids: 'sae', 'sae-tl', 'sae-mid'"),
        ("PUT", "/api/saes/nope/latents/1/annotation", {"label": "x"}, 404, "unknown SAE"),
        ("PUT", "/api/saes/sae/latents/96/annotation", {"label": "x"}, 422, "outside [0, 96)"),
        ("PUT", "/api/saes/sae/latents/-1/annotation", {"label": "x"}, 422, "outside [0, 96)"),
        ("PUT", "/api/saes/sae/latents/abc/annotation", {"label": "x"}, 422, "latent"),
        ("PUT", "/api/saes/sae/latents/1/annotation", {"label": "x" * 201}, 422, "label"),
        ("PUT", "/api/saes/sae/latents/1/annotation", {"note": "x" * 10_001}, 422, "note"),
        ("PUT", "/api/saes/sae/latents/1/annotation", {"colour": "red"}, 422, "colour"),
        ("POST", "/api/saes/sae/pins", {"latent": 96}, 422, "outside [0, 96)"),
        ("POST", "/api/saes/sae/pins", {"latent": -3}, 422, "latent"),
        ("POST", "/api/saes/sae/pins", {}, 422, "latent: this field is required"),
        ("DELETE", "/api/saes/sae/pins/500", None, 422, "outside"),
        ("GET", "/api/saes/sae/annotations?latents=96", None, 422, "latents[0]"),
    ],
)
def test_bad_annotation_requests(api, method, path, body, status, message):
    r = api.request(method, path, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_annotations_for_many_latents(api, db_url):
    sae = f"sae-{run_repo.new_id()}"
    db = Database(db_url)
    try:
        with db.session() as s:
            annotation_repo.set_annotation(s, sae_id=sae, latent=17, label="x", note="")
            annotation_repo.add_pin(s, sae_id=sae, latent=39_999)
            few = annotation_repo.annotations_for(s, sae, [17, 18])
            every = annotation_repo.annotations_for(
                s, sae, range(40_000)
            )  # all latents of a big SAE
    finally:
        db.dispose()
    assert few[17]["label"] == "x" and few[18]["label"] == ""
    assert len(every) == 40_000 and every[17] == few[17] and every[39_999]["pinned"]
    assert sum(v["pinned"] or bool(v["label"]) for v in every.values()) == 2


def test_search_finds_labels_from_the_config_and_the_report(
    variant_api, variant_engine, db_url, tmp_path
):
    """'villain' finds the report's persona latent (labelled by default, not in the
    database) and 'config pin' the config's pin, in the latent list's search."""
    from app.index.builder import IndexParams
    from app.index.jobs import build_and_store

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"the villain schemes, line {i}." for i in range(30)))
    db = Database(db_url)
    try:
        build_and_store(
            variant_engine.registry,
            db,
            model_id="base",
            sae_id="sae",
            dataset=str(corpus),
            params=IndexParams(context=16, batch_size=8, top_k=3),
            work_dir=tmp_path / "index",
            progress=False,
        )
    finally:
        db.dispose()
    found = variant_api.get("/api/saes/sae/latents", params={"q": "villain", "limit": 200}).json()
    assert 11 in [row["latent"] for row in found["data"]]
    assert next(r for r in found["data"] if r["latent"] == 11)["label"] == "villain persona"
    pinned = variant_api.get("/api/saes/sae/latents", params={"q": "CONFIG pin"}).json()
    assert [row["latent"] for row in pinned["data"]] == [7]
