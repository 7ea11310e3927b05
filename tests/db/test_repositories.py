"""Queries against both databases: ids and tokens, atomic concurrent writes, deletion
rules, annotations with default pins."""

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.db import annotations as annotation_repo
from app.db import runs as run_repo
from app.db.annotations import DefaultPin
from app.db.models import Run
from app.db.session import Database
from app.engine.config import load_config
from app.errors import Conflict, Forbidden, NotFound, Unauthorized
from app.services.annotations import default_pins, report_pin


@pytest.fixture(scope="module")
def db(db_url):
    database = Database(db_url)
    yield database
    database.dispose()


def save(session, title="t", **over) -> tuple[Run, str]:
    fields = {
        "kind": "activations",
        "title": title,
        "request": {"model": "base", "prompt": "hi"},
        "result": {"tokens": ["<bos>", "hi"], "value": 0.1},
        "provenance": {"models": {"base": "sha256:00"}},
        "result_sha256": "0" * 64,
    }
    fields.update(over)
    return run_repo.create_run(session, **fields)


def test_ids_are_unguessable_and_tokens_are_not_stored(db):
    ids = {run_repo.new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for run_id in list(ids)[:50]:
        assert len(run_id) == 22 and run_repo.is_id(run_id)  # 16 random bytes = 128 bits
    with db.session() as s:
        run, token = save(s)
        assert len(token) >= 43
        stored = s.scalar(select(Run.delete_token_sha256).where(Run.id == run.id))
        assert stored != token and stored == run_repo.token_hash(token)


@pytest.mark.parametrize(
    "bad", ["", "x", "a" * 21, "a" * 23, "a" * 21 + "!", "../../etc/pass", "é" * 22]
)
def test_malformed_ids_are_unknown(db, bad):
    with db.session() as s:
        assert run_repo.get_run(s, run_id=bad) is None
        assert run_repo.get_comparison(s, comparison_id=bad) is None


def test_concurrent_writers_lose_nothing(db):
    """50 threads insert at once (each its own session and transaction)."""
    barrier = threading.Barrier(50)
    tag = run_repo.new_id()

    def one(i: int) -> str:
        barrier.wait()
        with db.session() as s:
            run, _ = save(s, title=f"{tag}-{i}", result={"i": i, "blob": "x" * 2000})
            return run.id

    with ThreadPoolExecutor(50) as pool:
        ids = list(pool.map(one, range(50)))
    assert len(set(ids)) == 50
    with db.session() as s:
        rows = s.scalars(select(Run).where(Run.title.startswith(tag))).all()
        assert sorted(r.result["i"] for r in rows) == list(range(50))
        assert all(r.result["blob"] == "x" * 2000 for r in rows)


def test_delete_needs_the_right_token(db):
    with db.session() as s:
        run, token = save(s)
        with pytest.raises(Unauthorized):
            run_repo.delete_run(s, run_id=run.id, token=None)
        with pytest.raises(Forbidden):
            run_repo.delete_run(s, run_id=run.id, token="not-" + token)
        with pytest.raises(Forbidden):
            run_repo.delete_run(s, run_id=run.id, token=token[:-1])
    with db.session() as s:
        assert run_repo.get_run(s, run_id=run.id) is not None
        run_repo.delete_run(s, run_id=run.id, token=token)
    with db.session() as s:
        assert run_repo.get_run(s, run_id=run.id) is None
        with pytest.raises(NotFound):
            run_repo.delete_run(s, run_id=run.id, token=token)


def test_a_run_shown_by_a_comparison_stays_until_the_comparison_goes(db):
    with db.session() as s:
        a, token_a = save(s, title="a")
        b, _ = save(s, title="b")
        comparison, token_c = run_repo.create_comparison(
            s, title="a vs b", description="", run_ids=[b.id, a.id]
        )
        assert [i.run_id for i in comparison.items] == [b.id, a.id]
        with pytest.raises(Conflict, match=comparison.id):
            run_repo.delete_run(s, run_id=a.id, token=token_a)
        with pytest.raises(Forbidden):
            run_repo.delete_comparison(s, comparison_id=comparison.id, token="wrong")
        run_repo.delete_comparison(s, comparison_id=comparison.id, token=token_c)
        run_repo.delete_run(s, run_id=a.id, token=token_a)
        assert run_repo.get_run(s, run_id=b.id) is not None


def test_a_comparison_of_unknown_runs_is_refused(db):
    with db.session() as s:
        a, _ = save(s)
        with pytest.raises(NotFound, match=r"runs\[1\]"):
            run_repo.create_comparison(
                s, title="x", description="", run_ids=[a.id, run_repo.new_id()]
            )
        with pytest.raises(NotFound, match=r"runs\[0\]"):
            run_repo.create_comparison(s, title="x", description="", run_ids=["bad id"])


def test_listing_pages_newest_first(fresh_db_url):
    from app.db import migrate

    migrate.upgrade(fresh_db_url)
    database = Database(fresh_db_url)
    try:
        with database.session() as s:
            ids = [save(s, title=f"r{i}")[0].id for i in range(5)]
            save(s, title="hidden", unlisted=True)
            save(s, title="other kind", kind="steer")
            page, count = run_repo.list_runs(s, limit=2, offset=0, kind="activations")
            assert count == 5 and [r.id for r in page] == ids[::-1][:2]
            rest, _ = run_repo.list_runs(s, limit=10, offset=2, kind="activations")
            assert [r.id for r in rest] == ids[::-1][2:]
            everything, total = run_repo.list_runs(s, limit=100)
            assert total == 6 and "hidden" not in {r.title for r in everything}
    finally:
        database.dispose()


def test_annotations_with_defaults(db):
    sae = f"sae-{run_repo.new_id()}"  # a fresh SAE id: the database is shared
    defaults = {
        11: DefaultPin(11, "villain persona", "report"),
        7: DefaultPin(7, "config pin", "config"),
    }
    with db.session() as s:
        annotation_repo.set_annotation(s, sae_id=sae, latent=3, label="first", note="")
        updated = annotation_repo.set_annotation(
            s, sae_id=sae, latent=3, label="pirate", note="arr"
        )
        assert updated.label == "pirate" and updated.note == "arr"
        assert annotation_repo.add_pin(s, sae_id=sae, latent=3) is True
        assert annotation_repo.add_pin(s, sae_id=sae, latent=3) is False
        annotation_repo.set_annotation(s, sae_id=sae, latent=7, label="", note="stored note")
        out = annotation_repo.annotations_for(s, sae, [3, 7, 11, 50, 3], defaults=defaults)
    assert list(out) == [3, 7, 11, 50]
    assert out[3] | {"updated_at": None} == {
        "label": "pirate",
        "note": "arr",
        "pinned": True,
        "pin_source": "user",
        "updated_at": None,
    }
    assert out[3]["updated_at"].endswith("+00:00")
    assert out[7]["label"] == "config pin" and out[7]["note"] == "stored note"
    assert out[7]["pin_source"] == "config"
    assert out[11]["label"] == "villain persona" and out[11]["pinned"]
    assert out[50] == {
        "label": "",
        "note": "",
        "pinned": False,
        "pin_source": None,
        "updated_at": None,
    }
    with db.session() as s:
        assert annotation_repo.delete_pin(
            s, sae_id=sae, latent=3
        ) and not annotation_repo.delete_pin(s, sae_id=sae, latent=3)
        assert annotation_repo.delete_annotation(s, sae_id=sae, latent=3)
        assert annotation_repo.annotations_for(s, sae, [3])[3]["label"] == ""
        assert annotation_repo.annotations_for(s, sae, []) == {}


def test_report_pin_is_optional(world_config, tmp_path):
    text = world_config.read_text()
    missing = tmp_path / "missing.yaml"
    missing.write_text(text + f"report: {tmp_path / 'nope' / 'REPORT.json'}\n")
    config = load_config(missing)
    assert report_pin(config) is None
    fake = SimpleNamespace(registry=SimpleNamespace(config=config, saes={}))
    assert default_pins(fake, "sae") == {}

    broken = tmp_path / "REPORT.json"
    broken.write_text("{not json")
    (tmp_path / "broken.yaml").write_text(text + f"report: {broken}\n")
    assert report_pin(load_config(tmp_path / "broken.yaml")) is None

    good = tmp_path / "good" / "REPORT.json"
    good.parent.mkdir()
    good.write_text('{"sae": "sae-tl", "persona_latent": 5}')
    (tmp_path / "good.yaml").write_text(text + f"report: {good}\n")
    assert report_pin(load_config(tmp_path / "good.yaml")) == ("sae-tl", 5)
