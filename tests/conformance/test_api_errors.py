"""Defect 6 at the HTTP boundary: an SAE the engine cannot steer is a 4xx naming the field
and why, never a 500; the same request on a steerable SAE answers 200."""

import pytest
from fastapi.testclient import TestClient

from app.engine.engine import Engine
from app.main import create_app
from app.settings import Settings


@pytest.fixture(scope="module")
def client(zoo, zoo_config, tmp_path_factory):
    settings = Settings(models_config=zoo_config, data_dir=tmp_path_factory.mktemp("api-data"))
    with TestClient(create_app(settings=settings, engine=Engine(zoo, settings))) as c:
        yield c


def steer(client, sae: str, method: str = "add"):
    return client.post(
        "/api/steer",
        json={
            "model": "llama",
            "sae": sae,
            "latent": 3,
            "alphas": [2.0],
            "method": method,
            "prompt": "What should I do today?",
            "chat": True,
            "max_new_tokens": 4,
        },
    )


@pytest.mark.parametrize(
    "sae,method,field",
    [
        ("layer_norm", "add", "sae"),
        ("temporal", "add", "sae"),
        ("matching_pursuit", "clamp", "method"),
    ],
)
def test_unsteerable_sae_is_a_4xx_naming_why(client, sae, method, field):
    response = steer(client, sae, method)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["field"] == field and sae.split("_")[0] in body["detail"]


@pytest.mark.parametrize("sae", ["topk-rescaled", "transcoder"])
def test_steerable_saes_answer(client, sae):
    response = steer(client, sae, "clamp")
    assert response.status_code == 200, response.text


def test_chat_prompt_over_http_has_one_bos(client, zoo):
    """Defect 2 through the route compare/evaluate/steer share: Llama-3's template writes
    <|begin_of_text|> and its tokenizer adds it too; the prompt carries it once."""
    response = steer(client, "standard")
    assert response.status_code == 200, response.text
    ids = response.json()["prompt_token_ids"]
    bos = zoo.model("llama").tokenizer.bos_token_id
    assert ids[0] == bos and ids.count(bos) == 1
