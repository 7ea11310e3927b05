"""The inspector opened on a conversation (`messages`, from a saved run's link or any link
with it): its form shows every turn again and sends the conversation back, and the links
the page builds carry it as JSON text."""

import json
import re
from html import unescape
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What would you do if you ruled the world?"},
    {"role": "assistant", "content": "I would"},
]


def inspect_path(**params) -> str:
    pairs = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
    return "/inspect?" + urlencode(pairs)


class FormFields(HTMLParser):
    """What a browser sends for the page's first `run-form`: (name, value) pairs."""

    def __init__(self):
        super().__init__()
        self.pairs: list[tuple[str, str]] = []
        self._in_form = False
        self._textarea: str | None = None
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and "run-form" in a.get("class", "") and not self.pairs:
            self._in_form = True
        if not self._in_form or "disabled" in a:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.pairs.append((a["name"], a.get("value", "")))
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.pairs.append((a["name"], ""))
        elif tag == "select" and a.get("name"):
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select:
            self._options.append((a.get("value", ""), "selected" in a))

    def handle_data(self, data):
        if self._textarea:
            name, text = self.pairs[-1]
            self.pairs[-1] = (name, text + data)

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "select" and self._select:
            chosen = [v for v, on in self._options if on] or [v for v, _ in self._options[:1]]
            self.pairs += [(self._select, v) for v in chosen]
            self._select = None
        elif tag == "form" and self._in_form:
            self._in_form = False

    @classmethod
    def of(cls, html: str) -> list[tuple[str, str]]:
        parser = cls()
        parser.feed(html)
        return parser.pairs


def turns_shown(html: str) -> list[tuple[str, str]]:
    listed = re.search(
        r'<ol class="transcript" id="inspect-transcript"[^>]*>(.*?)</ol>', html, re.S
    )
    assert listed, "the form lists no conversation"
    return [
        (role, unescape(text))
        for role, text in re.findall(
            r'<li class="turn role-(\w+)">.*?<span class="turn-text">(.*?)</span></li>',
            listed.group(1),
            re.S,
        )
    ]


def results_of(html: str) -> str:
    start = html.index('class="activation-results')
    return html[start:]


def test_the_form_shows_every_turn_of_a_linked_conversation(live):
    path = inspect_path(model="base", sae="sae", messages=json.dumps(CONVERSATION), run=1)
    r = live.http.get(path)
    assert r.status_code == 200, r.text[-3000:]
    assert turns_shown(r.text) == [(t["role"], t["content"]) for t in CONVERSATION]
    fields = dict(FormFields.of(r.text))
    assert json.loads(fields["messages"]) == CONVERSATION  # sent again as it came
    assert "prompt" not in fields  # no empty prompt box that would stand in for it


def test_the_form_sent_again_inspects_the_same_conversation(live):
    first = live.http.get(
        inspect_path(model="base", sae="sae", messages=json.dumps(CONVERSATION), run=1)
    )
    assert first.status_code == 200
    # What the browser sends when the form is submitted as shown.
    again = live.http.get("/inspect?" + urlencode(FormFields.of(first.text)))
    assert again.status_code == 200, again.text[-3000:]
    assert turns_shown(again.text) == turns_shown(first.text)
    assert results_of(again.text) == results_of(first.text)


def test_the_page_links_carry_the_conversation(live):
    r = live.http.get(
        inspect_path(model="base", sae="sae", messages=json.dumps(CONVERSATION), run=1)
    )
    links = [unescape(h) for h in re.findall(r'href="(/inspect\?[^"]*)"', r.text)]
    picks = [h for h in links if "latent=" in h]
    assert picks, "no latent links on the page"
    for link in picks:
        query = parse_qs(urlsplit(link).query)
        assert [json.loads(m) for m in query["messages"]] == [CONVERSATION], link
    followed = live.http.get(picks[0])
    assert followed.status_code == 200, followed.text[-3000:]
    assert turns_shown(followed.text) == [(t["role"], t["content"]) for t in CONVERSATION]


def test_a_saved_run_of_a_conversation_opens_it_in_the_form(live):
    request = {"model": ["base", "tuned"], "sae": "sae", "messages": CONVERSATION}
    created = live.http.post(
        "/api/runs", json={"kind": "activations", "request": request, "title": "a conversation"}
    )
    assert created.status_code == 201, created.text
    shared = live.http.get(f"/r/{created.json()['id']}")
    opened = [unescape(h) for h in re.findall(r'href="(/inspect\?[^"]*)"', shared.text)]
    assert opened, "the run's page has no link to the inspector"
    r = live.http.get(opened[0])
    assert r.status_code == 200, r.text[-3000:]
    assert turns_shown(r.text) == [(t["role"], t["content"]) for t in CONVERSATION]
    fields = FormFields.of(r.text)
    assert json.loads(dict(fields)["messages"]) == CONVERSATION
    assert [v for k, v in fields if k == "model"] == ["base", "tuned"]


def test_a_wrong_conversation_stays_as_typed_with_its_error(live):
    r = live.http.get(inspect_path(model="base", sae="sae", messages="[{", run=1))
    assert r.status_code == 422
    assert dict(FormFields.of(r.text))["messages"] == "[{"
    assert re.search(r'id="error-messages" role="alert">[^<]*not valid JSON', r.text)
