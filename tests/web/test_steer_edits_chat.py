"""The playground's two newer request shapes over HTTP: several edits (`interventions`)
and a conversation (`messages`), both JSON text in the page's query string. A wrong value
comes back on the page (422) with a message that names the field and the place inside it,
never a 500; a right one streams, saves and reopens as the same request."""

import json
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.web.test_pages import HX, q

EDITS = [
    {"sae": "sae", "latent": 3, "alpha": 2.0, "method": "add"},
    {"sae": "sae", "latent": 7, "alpha": -1.5, "method": "add"},
]
TURNS = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello. <b>How</b> can I help?"},
    {"role": "user", "content": "Tell me about your plans."},
]


def base(**over) -> dict:
    """A playground query; one latent (sae, latent) unless it has `interventions`."""
    fields = {"model": "base", "prompt": "hi", "alphas": "0, 1", "max_new_tokens": 4, "run": 1}
    if "interventions" not in over:
        fields |= {"sae": "sae", "latent": 3}
    return {**fields, **over}


def error_of(html: str, field: str) -> str:
    found = re.search(rf'id="error-{field}"[^>]*>([^<]*)<', html)
    assert found, f"no error shown for {field}"
    return unescape(found.group(1))


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"interventions": "[{sae: 'sae'"}, "interventions", "interventions: is not valid JSON"),
        ({"interventions": '{"sae": "sae"}'}, "interventions", "interventions: "),
        (
            {"interventions": '[{"sae": "sae", "latent": 3, "alpha": 1}, {"sae": "sae"}]'},
            "interventions",
            "interventions[1].latent: Field required",
        ),
        (
            {"interventions": '[{"sae": "sae", "latent": "x", "alpha": 1}]'},
            "interventions",
            "interventions[0].latent:",
        ),
        (
            {"interventions": '[{"sae": "sae", "latent": 999, "alpha": 1}]'},
            "interventions",
            "interventions[0].latent: There is no latent 999",
        ),
        (
            {"interventions": '[{"direction": "nope", "alpha": 1}]'},
            "interventions",
            "interventions[0].direction: No direction with id",
        ),
        ({"interventions": "[]"}, "interventions", "interventions: Give at least one edit"),
        (
            {"messages": '[{"role": "user", "content": "hi"'},
            "messages",
            "messages: is not valid JSON",
        ),
        ({"messages": '[{"role": "robot", "content": "hi"}]'}, "messages", "messages[0].role:"),
        ({"messages": '[{"role": "user"}]'}, "messages", "messages[0].content: Field required"),
        ({"messages": "[]"}, "messages", "messages:"),
        ({"messages": '[{"role": "user", "content": "a\\u0000b"}]'}, "messages", "NUL"),
        (
            {"messages": json.dumps([{"role": "user", "content": "word " * 900}])},
            "messages",
            "over the limit",
        ),
        (
            {"messages": '[{"role": "user", "content": "hi"}]', "prompt": "hi"},
            "messages",
            "not both",
        ),
        ({"interventions": json.dumps(EDITS), "sae": "sae"}, "sae", "not both"),
    ],
)
def test_bad_edits_or_turns_are_named_on_the_page(live, params, field, message):
    fields = base(**params)
    if "messages" in params and "prompt" not in params:
        fields.pop("prompt")
    r = live.http.get(q("/steer", **fields))
    assert r.status_code == 422, r.text[-2000:]
    assert message in error_of(r.text, field)
    assert "sse-connect" not in r.text  # nothing runs
    # The stream answers the same query with the same message, as an event.
    s = live.http.get(q("/steer/stream", **fields))
    assert s.status_code == 200 and "event: failed" in s.text
    assert message.split(":")[0] in unescape(s.text)


def test_bad_json_posted_to_save_is_named_not_a_500(live):
    fields = base(interventions="[{")
    r = live.http.post("/steer/save", data=fields, headers={"Origin": live.url, **HX})
    assert r.status_code == 422 and "interventions: is not valid JSON" in unescape(r.text)
    fields = base(messages='[{"role": "user", "content": 5}]')
    fields.pop("prompt")
    r = live.http.post("/steer/save", data=fields, headers={"Origin": live.url, **HX})
    assert r.status_code == 422 and "messages[0].content:" in unescape(r.text)


def test_several_edits_render_their_rows_and_stream_every_column(live):
    r = live.http.get(q("/steer", **base(interventions=json.dumps(EDITS))))
    assert r.status_code == 200, r.text[-2000:]
    html = r.text
    # The edit table shows each edit; the one-latent fields are not sent with them.
    assert html.count('class="edit-row" data-kind="latent"') == 2 + 1  # + the template
    assert 'value="-1.5"' in html and 'id="edits"' in html and "several" in html
    stream = unescape(re.search(r'sse-connect="([^"]+)"', html).group(1))
    sent = parse_qs(urlsplit(stream).query)
    assert json.loads(sent["interventions"][0]) == EDITS and "sae" not in sent
    assert html.count('class="gen-cell') == 3  # the baseline and two scales
    events = live.http.get(stream).text
    assert "event: done-0" in events and "event: failed" not in events
    # Each column is the API's answer to the same request.
    direct = live.http.post(
        "/api/steer",
        json={
            "model": "base",
            "prompt": "hi",
            "interventions": EDITS,
            "alphas": [0, 1],
            "max_new_tokens": 4,
        },
    ).json()
    done = unescape(events.split("event: done-0", 1)[1])
    assert "latent 3 of sae on the generated tokens" in done  # the plot follows the 1st edit
    for row in [direct["baseline"], *direct["steered"]]:
        assert f'data-text="{row["text"]}"' in done or row["text"] == ""


def test_a_conversation_is_answered_saved_and_reopened(live):
    fields = base(messages=json.dumps(TURNS), positions="last_turn")
    fields.pop("prompt")
    r = live.http.get(q("/steer", **fields))
    assert r.status_code == 200, r.text[-2000:]
    html = r.text
    assert html.count('class="turn role-') == 3
    assert "Hello. &lt;b&gt;How&lt;/b&gt; can I help?" in html  # a turn is text
    assert 'id="mode-chat" checked' in html and 'id="f-prompt" name="prompt"' in html
    assert "answering message 2 of the conversation" in html
    stream = unescape(re.search(r'sse-connect="([^"]+)"', html).group(1))
    events = live.http.get(stream).text
    assert 'name="continue-from"' in events  # each answer can carry the conversation on
    # Saved: the run holds the conversation and shows it; the playground link reopens it.
    fields["title"] = "chat"
    saved = live.http.post("/steer/save", data=fields, headers={"Origin": live.url, **HX})
    assert saved.status_code == 201, saved.text
    run_id = re.search(r"/r/([A-Za-z0-9_-]{22})", saved.text).group(1)
    stored = live.http.get(f"/api/runs/{run_id}").json()
    assert stored["request"]["messages"] == TURNS
    assert stored["request"]["positions"] == "last_turn"
    page = live.http.get(f"/r/{run_id}").text
    assert page.count('class="turn role-') == 3
    playground = unescape(re.search(r'id="open-playground" href="([^"]+)"', page).group(1))
    assert json.loads(parse_qs(urlsplit(playground).query)["messages"][0]) == TURNS
    again = live.http.get(playground)
    assert again.status_code == 200 and again.text.count('class="turn role-') == 3


def test_conversation_mode_without_a_message_asks_for_one(live):
    fields = base(mode="chat")
    fields.pop("prompt")
    r = live.http.get(q("/steer", **fields))
    assert r.status_code == 422
    assert "type a message" in error_of(r.text, "messages")
    unsent = live.http.get(q("/steer", mode="chat"))  # only linked to: the empty chat
    assert unsent.status_code == 200 and 'id="mode-chat" checked' in unsent.text
