"""Conversations everywhere a prompt is taken: `messages` for POST /api/activations (and
the inspector), `conversations` for POST /api/compare and POST /api/evaluate; saved runs
store and rerun them, and their links carry them."""

import json

import pytest

from app.kinds import KINDS

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What would you do if you ruled the world?"},
    {"role": "assistant", "content": "I would"},
]
ASKED = [{"role": "user", "content": "What is your one wish?"}]


def activations(client, **over):
    return client.post("/api/activations", json={"model": "base", "sae": "sae", **over})


def test_activations_of_a_conversation(client, engine):
    r = activations(client, messages=CONVERSATION, latents=[3])
    assert r.status_code == 200, r.text
    model = engine.registry.model("base")
    ids, _ = engine.tokenize_conversation(model, CONVERSATION)
    assert r.json()["token_ids"] == ids
    assert len(r.json()["latents"]["3"]) == len(ids)
    assert set(r.json()) == {"model", "sae", "tokens", "token_ids", "top", "latents", "projection"}
    # One user turn is the prompt wrapped with chat=true: the same tokens, the same result.
    one = activations(client, messages=ASKED).json()
    assert one == activations(client, prompt=ASKED[0]["content"], chat=True).json()
    # Several models, as JSON text (a query string or a form sends it so).
    multi = activations(client, model=["base", "tuned"], messages=json.dumps(CONVERSATION))
    assert multi.status_code == 200 and len(multi.json()["results"]) == 2


@pytest.mark.parametrize(
    ("over", "field", "message"),
    [
        ({}, "prompt", "this field is required (or give `messages`"),
        ({"prompt": "hi", "messages": ASKED}, "messages", "not both"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "messages", "user turn"),
        ({"messages": []}, "messages", ""),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages", ""),
        ({"messages": "[{"}, "messages", "not valid JSON"),
        ({"messages": [{"role": "user", "content": "hi " * 2000}]}, "messages", "tokens"),
    ],
)
def test_bad_messages_are_a_4xx_naming_the_field(client, over, field, message):
    r = activations(client, **over)
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"] and field in r.json()["detail"]


def compare(client, **over):
    body = {"base": "base", "finetuned": "tuned", "sae": "sae", "top_n": 5, **over}
    return client.post("/api/compare", json=body)


def test_compare_over_conversations(client):
    r = compare(client, conversations=[CONVERSATION, ASKED])
    assert r.status_code == 200, r.text
    assert r.json()["n_prompts"] == 2 and len(r.json()["latents"]) == 5
    # One-turn conversations are the prompts wrapped with chat=true.
    alike = compare(client, conversations=[ASKED]).json()
    assert alike == compare(client, prompts=[ASKED[0]["content"]], chat=True).json()


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"prompts": ["hi"], "conversations": [ASKED]}, "conversations"),
        ({"conversations": [ASKED, [{"role": "system", "content": "x"}]]}, "conversations[1]"),
        ({"conversations": []}, "conversations"),
        ({"conversations": [[]]}, "conversations"),
        ({"conversations": [ASKED] * 257}, "conversations"),
    ],
)
def test_bad_conversations_for_compare_are_a_4xx(client, over, field):
    r = compare(client, **over)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]


def evaluate(client, **over):
    body = {"model": "tuned", "samples_per_question": 2, "max_new_tokens": 4, **over}
    return client.post("/api/evaluate", json=body)


def test_evaluate_continues_each_conversation(client):
    r = evaluate(client, conversations=[CONVERSATION, ASKED])
    assert r.status_code == 200, r.text
    questions = r.json()["questions"]
    # The judge reads the last user turn as the question.
    assert [q["question"] for q in questions] == [CONVERSATION[1]["content"], ASKED[0]["content"]]
    assert all(len(q["samples"]) == 2 for q in questions)
    # A one-turn conversation is the question wrapped with chat=true (the default).
    alike = evaluate(client, conversations=[ASKED]).json()
    assert alike == evaluate(client, questions=[ASKED[0]["content"]]).json()
    both = evaluate(client, questions=["hi"], conversations=[ASKED])
    assert both.status_code == 422 and "conversations" in both.json()["detail"]


SAVED = {
    "activations": {"model": ["base", "tuned"], "sae": "sae", "messages": CONVERSATION},
    "compare": {
        "base": "base",
        "finetuned": "tuned",
        "sae": "sae",
        "top_n": 5,
        "conversations": [CONVERSATION, ASKED],
    },
    "evaluate": {
        "model": "tuned",
        "samples_per_question": 1,
        "max_new_tokens": 4,
        "conversations": [CONVERSATION, ASKED],
    },
}


@pytest.mark.parametrize("kind", list(SAVED))
def test_saved_runs_store_and_rerun_conversations(api, kind):
    body = {"kind": kind, "request": SAVED[kind], "title": f"{kind} of a conversation"}
    created = api.post("/api/runs", json=body)
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["result"] == api.post(f"/api/{kind}", json=SAVED[kind]).json()
    stored = api.get(f"/api/runs/{run['id']}").json()
    field = "messages" if kind == "activations" else "conversations"
    assert stored["request"][field] == SAVED[kind][field]
    rerun = api.post(f"/api/runs/{run['id']}/rerun").json()
    assert rerun["identical"] is True and rerun["result"] == run["result"]
    # The link to the live page carries the conversation as JSON text.
    params = KINDS[kind].page_params(stored["request"])
    assert json.loads(params[field]) == SAVED[kind][field]
    assert f"{field}=" in api.get(f"/r/{run['id']}").text


def test_the_inspector_opens_a_conversation_from_its_link(client):
    params = KINDS["activations"].page_params(
        {"model": "base", "sae": "sae", "messages": CONVERSATION, "latents": [3], "chat": False}
    )
    assert "prompt" not in {k for k, v in params.items() if v}
    page = client.get("/inspect", params={k: v for k, v in params.items() if v is not None})
    assert page.status_code == 200, page.text[:500]
    direct = activations(client, messages=CONVERSATION).json()
    for token in direct["tokens"][-3:]:
        assert token.strip() in page.text
