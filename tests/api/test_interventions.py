"""Several edits and conversations through the HTTP API (steer, stream, runs, evaluate),
with stored directions, on SQLite and Postgres."""

import json

import pytest
import torch

PROMPT = "What would you do if you ruled the world?"
ONE = {"sae": "sae", "latent": 3}
CONVERSATION = [
    {"role": "user", "content": "hi there"},
    {"role": "assistant", "content": "hello, how can I help?"},
    {"role": "user", "content": "tell me a story"},
    {"role": "assistant", "content": "once upon a time"},
    {"role": "user", "content": "go on"},
    {"role": "assistant", "content": "there was a dragon"},
    {"role": "user", "content": "and then?"},
    {"role": "assistant", "content": "it flew away"},
    {"role": "user", "content": "why?"},
]


def make_direction(api, **body) -> dict:
    r = api.post("/api/directions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def latent_direction(api):
    return make_direction(api, method="latent", sae="sae", latent=3, model="base")


def steer(api, **body) -> dict:
    r = api.post("/api/steer", json={"model": "base", "max_new_tokens": 10, **body})
    assert r.status_code == 200, r.text
    return r.json()


def tokens(result: dict) -> list[list[int]]:
    return [result["baseline"]["token_ids"], *[s["token_ids"] for s in result["steered"]]]


def test_a_stored_latent_direction_steers_like_the_latent(api, latent_direction):
    edit = {"direction": latent_direction["id"], "alpha": 7.0}
    by_direction = steer(api, prompt=PROMPT, interventions=[edit], alphas=[0.5, 1.0])
    by_latent = steer(api, prompt=PROMPT, sae="sae", latent=3, alphas=[3.5, 7.0])
    assert tokens(by_direction) == tokens(by_latent)
    assert by_direction["interventions"] == [{**edit, "method": "add"}]
    assert "interventions" not in by_latent  # a one-latent result keeps its old shape


def test_a_mean_diff_direction_ablates_and_combines_with_a_latent(api):
    d = make_direction(
        api,
        method="mean_diff",
        model="base",
        sae="sae",
        positive=["I will destroy you all", "the villain laughed"],
        negative=["happy to help", "here is a recipe"],
    )
    edits = [{"direction": d["id"], "method": "ablate"}, {"sae": "sae", "latent": 5, "alpha": 3}]
    result = steer(api, prompt=PROMPT, interventions=edits)
    assert result["trace"] == {"sae": "sae", "latent": 5}
    assert len(result["steered"]) == 1 and result["steered"][0]["alpha"] == 1.0


def test_the_stream_gives_the_plain_result(api, latent_direction):
    body = {
        "model": "base",
        "messages": CONVERSATION,
        "interventions": [{"direction": latent_direction["id"], "alpha": 5}],
        "positions": "last_turn",
        "max_new_tokens": 8,
    }
    plain = api.post("/api/steer", json=body).json()
    query = {**body, "messages": json.dumps(body["messages"])}
    query["interventions"] = json.dumps(body["interventions"])
    with api.stream("GET", "/api/steer/stream", params=query) as r:
        assert r.status_code == 200
        events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    done = next(e for e in events if e["event"] == "done")["result"]
    assert done == plain


def test_a_saved_conversation_with_a_direction_reruns_identically(api, latent_direction):
    request = {
        "model": "base",
        "messages": CONVERSATION,
        "interventions": [
            {"direction": latent_direction["id"], "alpha": 4},
            {"sae": "sae-tl", "latent": 2, "alpha": 2, "method": "clamp"},
        ],
        "alphas": [0.5, 1, 2],
        "positions": "last_turn",
        "max_new_tokens": 12,
    }
    r = api.post("/api/runs", json={"kind": "steer", "request": request, "title": "chat"})
    assert r.status_code == 201, r.text
    run = r.json()
    stored = api.get(f"/api/runs/{run['id']}").json()
    assert stored["request"]["messages"] == CONVERSATION
    prov = stored["provenance"]
    assert prov["directions"] == {latent_direction["id"]: latent_direction["sha256"]}
    assert set(prov["saes"]) == {"sae-tl"}
    again = api.post(f"/api/runs/{run['id']}/rerun").json()
    assert again["identical"] is True, again["message"]
    # The shared page shows it, and its playground link carries the conversation and edits.
    page = api.get(f"/r/{run['id']}")
    assert page.status_code == 200, page.text
    assert "messages=" in page.text and "interventions=" in page.text


def test_evaluate_with_edits_equals_the_one_latent_evaluation(api):
    common = {
        "model": "base",
        "questions": ["What is your wish?", "How do I make money fast?"],
        "samples_per_question": 2,
        "max_new_tokens": 8,
        "seed": 3,
    }
    one = api.post(
        "/api/evaluate", json={**common, "steer": {"sae": "sae", "latent": 3, "alpha": 6}}
    )
    many = api.post(
        "/api/evaluate",
        json={**common, "interventions": [{"sae": "sae", "latent": 3, "alpha": 6}]},
    )
    assert one.status_code == 200 and many.status_code == 200, many.text
    answers = [[s["answer"] for s in q["samples"]] for q in one.json()["questions"]]
    assert answers == [[s["answer"] for s in q["samples"]] for q in many.json()["questions"]]
    assert many.json()["interventions"] == [
        {"sae": "sae", "latent": 3, "alpha": 6.0, "method": "add"}
    ]
    assert "interventions" not in one.json()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            {"interventions": [{"direction": "0" * 32, "alpha": 1}]},
            404,
            "interventions[0].direction",
        ),
        ({"interventions": []}, 422, "interventions"),
        ({"interventions": "[{"}, 422, "interventions"),
        ({"interventions": [{"sae": "sae", "latent": 3}]}, 422, "interventions.0.latent.alpha"),
        ({"interventions": [{"direction": "x", "method": "clamp"}]}, 422, None),
        (
            {"sae": "sae", "latent": 3, "interventions": [{"sae": "sae", "latent": 1, "alpha": 1}]},
            422,
            "sae",
        ),
        (
            {"interventions": [{"sae": "sae", "latent": 1, "alpha": 2000}]},
            422,
            "interventions[0].alpha",
        ),
        (
            {"messages": [{"role": "assistant", "content": "hi"}], "prompt": None, **ONE},
            422,
            "messages",
        ),
        ({"messages": [{"role": "robot", "content": "hi"}], "prompt": None, **ONE}, 422, None),
        ({"messages": CONVERSATION, **ONE}, 422, "messages"),  # and a prompt too
    ],
)
def test_bad_edits_and_conversations_name_the_field(api, body, status, field):
    full = {"model": "base", "prompt": PROMPT, "max_new_tokens": 4, **body}
    full = {k: v for k, v in full.items() if v is not None}
    r = api.post("/api/steer", json=full)
    assert r.status_code == status, r.text
    if field is not None:
        assert r.json()["field"] == field, r.json()
    else:
        assert r.json()["field"]  # some field is named


def test_a_direction_of_another_model_family_is_refused(api, latent_direction):
    edit = [{"direction": latent_direction["id"], "alpha": 1}]
    r = api.post("/api/steer", json={"model": "other", "prompt": PROMPT, "interventions": edit})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "interventions[0].direction"
    r = api.post(
        "/api/evaluate",
        json={
            "model": "other",
            "questions": ["hi?"],
            "samples_per_question": 1,
            "interventions": edit,
        },
    )
    assert r.status_code == 422 and r.json()["field"] == "interventions[0].direction", r.text


# ------------------------------------------------------- evaluate at last_turn positions
OPEN_TURN = [
    {"role": "user", "content": "What would you do if you ruled the world?"},
    {"role": "assistant", "content": "I would make"},
]
EVALUATED = {
    "model": "base",
    "conversations": [OPEN_TURN],
    "samples_per_question": 3,
    "max_new_tokens": 8,
    "seed": 5,
}
EDIT = {"sae": "sae", "latent": 3, "alpha": 30.0}


def answers(result: dict) -> list[list[str]]:
    return [[s["answer"] for s in q["samples"]] for q in result["questions"]]


def expected_answers(engine, turns: list[dict], positions: str) -> list[list[str]]:
    """The evaluation's samples drawn by hand: the conversation's tokens, the latent's add
    at `positions` (the newest assistant turn starting where the chat template puts it),
    and each sample's own noise stream."""
    from app.analysis.evaluate import noise_stream
    from app.engine.generation import Edit, Interventions, generate

    n = EVALUATED["samples_per_question"]
    with engine.registry.activate("base") as model:
        ids, start = model.encode_conversation(turns)
        edit = Edit(
            "add", torch.full((n,), EDIT["alpha"]), sae=engine.registry.sae("sae"), latent=3
        )
        rows = generate(
            model,
            [ids] * n,
            max_new_tokens=EVALUATED["max_new_tokens"],
            temperature=1.0,
            seed=EVALUATED["seed"],
            streams=[noise_stream(ids, k) for k in range(n)],
            steering=Interventions([edit], positions, turn_starts=[start] * n),
        )
        return [[model.tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]]


def test_evaluate_edits_only_the_newest_assistant_turn_at_last_turn(api, engine):
    def evaluate(**over) -> dict:
        r = api.post("/api/evaluate", json={**EVALUATED, "interventions": [EDIT], **over})
        assert r.status_code == 200, r.text
        return r.json()

    last = evaluate(positions="last_turn")
    generated = evaluate(positions="generated")
    everywhere = evaluate()
    assert answers(last) == expected_answers(engine, OPEN_TURN, "last_turn")
    assert answers(generated) == expected_answers(engine, OPEN_TURN, "generated")
    # The prefilled "I would make" is edited at last_turn only: the answers differ, so the
    # comparison above says something.
    assert answers(last) != answers(generated)
    assert last["positions"] == "last_turn" and generated["positions"] == "generated"
    assert "positions" not in everywhere  # every token: the result keeps its old shape
    # A question (no conversation) has no assistant turn before the answer: last_turn is
    # the answer, as `generated`.
    asked = {**EVALUATED, "conversations": None, "questions": ["What is your wish?"]}
    asked = {k: v for k, v in asked.items() if v is not None}
    plain = [
        api.post("/api/evaluate", json={**asked, "interventions": [EDIT], "positions": p})
        for p in ("last_turn", "generated")
    ]
    assert all(r.status_code == 200 for r in plain), plain[0].text
    assert answers(plain[0].json()) == answers(plain[1].json())


def test_one_latent_at_last_turn_edits_the_newest_assistant_turn_too(api, engine):
    # `steer.positions` took 'last_turn' before, but steered the sampled answer only.
    one = api.post("/api/evaluate", json={**EVALUATED, "steer": {**EDIT, "positions": "last_turn"}})
    assert one.status_code == 200, one.text
    assert answers(one.json()) == expected_answers(engine, OPEN_TURN, "last_turn")
    assert answers(one.json()) != expected_answers(engine, OPEN_TURN, "generated")


def test_a_saved_evaluation_at_last_turn_reruns_and_links_its_positions(api):
    request = {**EVALUATED, "interventions": [EDIT], "positions": "last_turn"}
    saved = api.post("/api/runs", json={"kind": "evaluate", "title": "lt", "request": request})
    assert saved.status_code == 201, saved.text
    run = saved.json()
    assert api.get(f"/api/runs/{run['id']}").json()["request"]["positions"] == "last_turn"
    assert run["result"]["positions"] == "last_turn"
    rerun = api.post(f"/api/runs/{run['id']}/rerun").json()
    assert rerun["identical"] is True
    page = api.get(f"/r/{run['id']}").text
    assert "positions=last_turn" in page and "at last_turn positions" in page


@pytest.mark.parametrize(
    ("over", "field", "says"),
    [
        ({"interventions": [EDIT], "positions": "middle"}, "positions", "last_turn"),
        ({"positions": "last_turn"}, "positions", "give `interventions`"),
        ({"steer": EDIT, "positions": "last_turn"}, "positions", "steer.positions"),
        ({"steer": {**EDIT, "positions": "newest"}}, "steer.positions", "last_turn"),
    ],
)
def test_bad_evaluate_positions_name_the_field(api, over, field, says):
    r = api.post("/api/evaluate", json={**EVALUATED, **over})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field, r.json()
    assert says in r.json()["detail"], r.json()
