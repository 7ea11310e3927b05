"""The evaluation page's "Positions" choice applies to its edits (`interventions`) as it
does to one latent: `last_turn` edits only each conversation's newest assistant turn, as
POST /api/evaluate does with `positions`."""

import json
import re
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

OPEN_TURN = [
    {"role": "user", "content": "What would you do if you ruled the world?"},
    {"role": "assistant", "content": "I would make"},
]
EDIT = {"sae": "sae", "latent": 3, "alpha": 30.0}
FORM = {
    "model": "base",
    "conversations": json.dumps([OPEN_TURN]),
    "interventions": json.dumps([EDIT]),
    "positions": "last_turn",
    "samples_per_question": "2",
    "max_new_tokens": "6",
    "seed": "5",
    "baseline": "1",
    "run": "1",
}
API = {
    "model": "base",
    "conversations": [OPEN_TURN],
    "samples_per_question": 2,
    "max_new_tokens": 6,
    "seed": 5,
}


def test_the_form_evaluates_edits_at_the_chosen_positions(live):
    page = live.http.get("/evaluate?" + urlencode(FORM))
    assert page.status_code == 200, page.text[-3000:]
    summary = unescape(re.search(r'class="muted run-summary">(.*?)</p>', page.text, re.S)[1])
    assert "not steered" in summary and "last_turn positions" in summary
    stream = unescape(re.search(r'sse-connect="([^"]+)"', page.text)[1])
    query = parse_qs(urlsplit(stream).query)
    assert query["positions"] == ["last_turn"]
    assert json.loads(query["conversations"][0]) == [OPEN_TURN]  # sent as the JSON it is
    body = live.http.get(stream).text
    done = unescape(body[body.index("event: done") :])
    assert "edits: add sae/3 α=30 · last_turn positions" in done


def test_saving_stores_the_positions_with_the_edits_only(live):
    r = live.http.post(
        "/evaluate/save",
        data={**FORM, "title": "last turn"},
        headers={"Origin": live.url, "HX-Request": "true"},
    )
    assert r.status_code == 201, r.text
    comparison = re.search(r"/c/([A-Za-z0-9_-]+)", r.text)[1]
    runs = live.http.get(f"/api/comparisons/{comparison}").json()["runs"]
    baseline, edited = (live.http.get(f"/api/runs/{x['id']}").json() for x in runs)
    assert baseline["request"].get("positions", "all") == "all"
    assert baseline["request"].get("interventions") is None
    assert edited["request"]["positions"] == "last_turn"
    direct = live.http.post(
        "/api/evaluate", json={**API, "interventions": [EDIT], "positions": "last_turn"}
    )
    assert direct.status_code == 200, direct.text
    assert edited["result"] == direct.json()
    answers_only = live.http.post(
        "/api/evaluate", json={**API, "interventions": [EDIT], "positions": "generated"}
    ).json()
    assert answers_only["questions"] != direct.json()["questions"]  # positions made a change
