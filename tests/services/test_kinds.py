"""The registry of request kinds: one entry per kind, and one schema per request shape (a
request survives the trip to its page's URL and back through the page's form)."""

import pytest
from starlette.datastructures import QueryParams

from app import kinds
from app.schemas.activations import ActivationsRequest, InspectQuery
from app.schemas.compare import CompareRequest
from app.schemas.evaluate import EvaluateQuery, EvaluateRequest, EvaluateSteer
from app.schemas.steer import SteerQuery, SteerRequest
from app.services import Context, provenance
from app.web import forms
from app.web.templating import url

REQUESTS = {
    "activations": ActivationsRequest(
        model=["base", "tuned"], sae="sae", prompt="a b\nc", top_k=7, latents=[3], chat=False
    ),
    "steer": SteerRequest(
        model=["base", "tuned"],
        sae="sae",
        latent=5,
        prompt="hello there",
        alphas=[0.5, -2.0, 8.0],
        max_new_tokens=12,
        temperature=0.7,
        seed=9,
        positions="generated",
        method="clamp",
        chat=False,
    ),
    "compare": CompareRequest(
        base="base", finetuned="tuned", sae="sae", prompts=["one", "two"], chat=False, top_n=5
    ),
    "evaluate": EvaluateRequest(
        model="tuned",
        questions=["why?", "how?"],
        samples_per_question=3,
        max_new_tokens=9,
        temperature=0.9,
        seed=4,
        chat=False,
        steer=EvaluateSteer(sae="sae", latent=2, alpha=-1.5, method="add", positions="all"),
    ),
}
# The page that reads a kind's URL, and how the page's form gives back the request.
FORMS = {
    "activations": (InspectQuery, lambda q: [q.request()]),
    "steer": (SteerQuery, lambda q: [q.request()]),
    "compare": (CompareRequest, lambda q: [q]),
    "evaluate": (EvaluateQuery, lambda q: q.conditions()),
}


def test_every_kind_is_registered_once_with_its_shapes():
    assert list(kinds.KINDS) == ["activations", "steer", "compare", "evaluate"]
    for name, kind in kinds.KINDS.items():
        assert kind.name == name and kind.request is type(REQUESTS[name])
        assert kind.page.startswith("/") and kind.view
    with pytest.raises(kinds.InvalidRequest, match="valid kinds: 'activations', 'steer'"):
        kinds.get("nope")


@pytest.mark.parametrize("name", list(REQUESTS))
def test_a_request_survives_its_page_url(name):
    request = REQUESTS[name]
    kind = kinds.KINDS[name]
    link = url(kind.page, kind.page_params(request.model_dump(mode="json")))
    model, to_requests = FORMS[name]
    form = forms.read(model, QueryParams(link.partition("?")[2]))
    assert form.errors == {} and form.body is not None
    assert request in to_requests(form.body)


@pytest.mark.parametrize("name", list(REQUESTS))
def test_provenance_names_what_each_kind_reads(name, engine):
    prints = provenance.fingerprints(Context(engine), REQUESTS[name])
    request = REQUESTS[name]
    expected_models = {m for m, _ in request.references()["models"]}
    assert set(prints["models"]) == expected_models
    for model_id in expected_models:
        assert prints["models"][model_id] == engine.registry.model(model_id).fingerprint
    assert set(prints["saes"]) == {"sae"}
    # Own prompts or questions: no question set was read. The evaluation's judge was.
    assert prints["question_sets"] == {}
    assert bool(prints["judges"]) is (name == "evaluate")
