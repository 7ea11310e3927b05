"""The HTML routes over HTTP (no browser): status codes, security headers, escaping, htmx
partials, inline field errors, the streams, static files and the helpers behind them."""

import re
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest

from app.schemas.steer import SteerQuery
from app.web import forms, plots, templating, vendor
from app.web.forms import humanize
from app.web.security import CSP
from tests.web.conftest import LABELLED, MARKUP_LATENT, XSS_LABEL


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    @classmethod
    def of(cls, html: str) -> list[tuple[str, dict]]:
        parser = cls()
        parser.feed(html)
        return parser.found


XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
HX = {"HX-Request": "true"}


def q(path: str, **params) -> str:
    pairs = []
    for k, v in params.items():
        for item in v if isinstance(v, list) else [v]:
            pairs.append((k, item))
    return f"{path}?{urlencode(pairs)}"


def pages(live) -> dict[str, str]:
    return {
        "home": "/",
        "latents": "/latents?sae=sae",
        "latent": "/latents/sae/3",
        "inspect": q("/inspect", model=["base", "tuned"], sae="sae", prompt="hello world"),
        "steer": "/steer",
        "diff": q("/diff", run=1, top_n=5, chat=1),
        "evaluate": "/evaluate",
        "run": f"/r/{live.run['id']}",
        "comparison": f"/c/{live.comparison['id']}",
    }


def test_every_page_is_html_with_the_security_headers(live):
    for name, path in pages(live).items():
        r = live.http.get(path)
        assert r.status_code == 200, (name, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe" not in CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        # Nothing loads from elsewhere, nothing runs inline, no inline style.
        for tag, attrs in Tags.of(r.text):
            for key, value in attrs.items():
                assert not key.startswith("on") and key != "style", (name, tag, key)
                if key in ("src", "href") and value:
                    external = re.match(r"(https?:)?//", value) and not value.startswith(live.url)
                    assert not external, (name, value)
            if tag == "script":
                assert "src" in attrs or attrs.get("type") == "application/json", (name, attrs)


def test_static_files_are_served_offline(live):
    for path, kind in (
        ("/static/app.js", "javascript"),
        ("/static/app.css", "css"),
        ("/static/vendor/htmx.min.js", "javascript"),
        ("/static/vendor/htmx-ext-sse.min.js", "javascript"),
        ("/static/vendor/plotly.min.js", "javascript"),
        ("/static/vendor/plotly.css", "css"),
        ("/static/vendor/swagger-ui-bundle.js", "javascript"),
        ("/static/vendor/swagger-ui.css", "css"),
        ("/static/favicon.svg", "svg"),
    ):
        r = live.http.get(path)
        assert r.status_code == 200 and kind in r.headers["content-type"], path
    css = live.http.get("/static/vendor/plotly.css").text
    assert ".js-plotly-plot .plotly .modebar" in css
    assert ".maplibregl-map" in css  # the bundled stylesheet plotly.js would inject
    html = live.http.get("/docs").text
    assert "/static/vendor/swagger-ui-bundle.js" in html and "cdn" not in html.lower()


def test_plotly_style_rules_are_read_from_the_installed_bundle():
    src = vendor.PLOTLY_JS.read_text(encoding="utf-8")
    rules = vendor.extract_plotly_rules(src)
    assert len(rules) > 40
    assert any(sel == ".js-plotly-plot .plotly .modebar" for sel, _ in rules)
    assert vendor.plotly_style_ids() and all(
        re.fullmatch(r"[0-9a-f]{16,}", i) for i in vendor.plotly_style_ids()
    )


def test_api_keeps_json_errors_and_pages_get_html_ones(live):
    r = live.http.get("/api/nope")
    assert r.status_code == 404 and r.json()["detail"]
    r = live.http.get("/nope")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert "There is no page at this address" in r.text
    r = live.http.get("/latents/sae/999")
    assert r.status_code == 404
    assert "There is no latent 999: SAE &#39;sae&#39; has latents 0 to 95." in r.text
    r = live.http.get("/latents/nope/1")
    assert r.status_code == 404 and "There is no SAE &#39;nope&#39;" in r.text
    r = live.http.get("/latents/sae/abc")
    assert r.status_code == 422 and "text/html" in r.headers["content-type"]


def test_prompt_markup_is_escaped(live):
    r = live.http.get(q("/inspect", model=["base", "tuned"], sae="sae", prompt=XSS))
    assert r.status_code == 200
    html = r.text
    assert "window.__xss" in html  # shown as text...
    assert "<script>window" not in html and "<img src=x" not in html  # ...never as markup
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html


def test_labels_are_escaped_in_pages_and_plot_data(live):
    r = live.http.get(q("/inspect", model="base", sae="sae", prompt="hello", latent=MARKUP_LATENT))
    html = r.text
    assert "<img src=x onerror" not in html
    assert "&lt;img src=x onerror=window.__xss=3&gt;" in html
    # In the plot's JSON the label is entity-escaped for plotly.js and tojson hides < and >.
    blocks = re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)
    assert blocks and all("<" not in b and ">" not in b for b in blocks)
    assert any("\\u0026lt;img src=x" in b for b in blocks)


def test_plot_text_is_escaped_for_plotly():
    assert plots.text("<b>&</b>") == "&lt;b&gt;&amp;&lt;/b&gt;"
    result = {
        "model": "<m>",
        "latent": 1,
        "baseline": {"tokens": ["<script>"], "latent_activations": [1.0]},
        "steered": [{"alpha": 2.0, "tokens": ["\n"], "latent_activations": [0.5]}],
    }
    fig = plots.steer_lines(result)
    assert fig["data"][0]["customdata"] == ["&lt;script&gt;"]
    assert fig["data"][1]["customdata"] == ["↵"]
    assert "&lt;m&gt;" in fig["layout"]["title"]["text"]
    bars = plots.diff_bars(
        [{"latent": 4, "delta": 1.0}], {4: "<a href='javascript:x'>"}, ["/latents/sae/4"]
    )
    assert bars["data"][0]["text"] == ["#4 · &lt;a href='javascript:x'&gt;"]
    assert bars["click"] == "link"


def test_htmx_requests_get_only_the_block(live):
    path = q("/inspect", model="base", sae="sae", prompt="hello world", run=1)
    full = live.http.get(path).text
    part = live.http.get(path, headers=HX).text
    assert "<html" in full and "<nav" in full
    assert "<html" not in part and "<nav" not in part and 'id="f-prompt"' in part
    assert "activation-results" in part
    # A history restore needs the whole page.
    restore = live.http.get(path, headers={**HX, "HX-History-Restore-Request": "true"}).text
    assert "<html" in restore
    part = live.http.get("/latents?sae=sae&q=zzzz&run=1", headers=HX).text
    assert "<html" not in part and "No latent matches." in part
    # The latent page's test box gets only its result.
    r = live.http.get(
        q("/latents/sae/3", text="hello world"), headers={**HX, "HX-Target": "test-result"}
    )
    assert r.status_code == 200 and r.text.lstrip().startswith('<div id="test-result">')


def _after(html: str, field: str) -> str:
    """The markup from a field's input to the next field's label."""
    start = html.index(f'id="f-{field}"')
    end = html.find("<label", start)
    return html[start : end if end > 0 else None]


@pytest.mark.parametrize(
    "params,field,message",
    [
        ({"latent": "999"}, "latent", "There is no latent 999: SAE &#39;sae&#39; has latents 0"),
        ({"latent": "no such label"}, "latent", "No latent of SAE &#39;sae&#39; is labelled"),
        ({"alphas": "4, x"}, "alphas", "&#39;x&#39; is not a number"),
        ({"alphas": "5000"}, "alphas", "not a finite number in [-1000, 1000]"),
        ({"alphas": "-2", "method": "clamp"}, "alphas", "Clamp sets an SAE activation"),
        ({"max_new_tokens": "100000"}, "max_new_tokens", "Must be between 1 and 256"),
        ({"temperature": "hot"}, "temperature", "Enter a number"),
        ({"prompt": "   "}, "prompt", "Type a prompt"),
        ({"prompt": "word " * 600}, "prompt", "over the limit"),
    ],
)
def test_steer_errors_show_next_to_their_field(live, params, field, message):
    base = {"model": "base", "sae": "sae", "latent": "3", "prompt": "hi", "alphas": "4", "run": 1}
    r = live.http.get(q("/steer", **{**base, **params}))
    assert r.status_code == 422
    html = r.text
    assert f'id="error-{field}"' in html, html[:3000]
    near = _after(html, field)
    assert f'id="error-{field}"' in near and message in near
    assert 'aria-invalid="true"' in near
    assert "sse-connect" not in html  # nothing runs


def test_model_not_attached_to_the_sae_is_an_inline_error(live):
    r = live.http.get(q("/steer", model="other", sae="sae", latent=3, prompt="hi", run=1))
    assert r.status_code == 422
    assert "is not attached to model" in r.text and 'id="error-sae"' in r.text


def test_other_forms_validate_on_the_server(live):
    r = live.http.get(q("/inspect", model="base", sae="sae", prompt="hi", latent="500"))
    assert r.status_code == 422 and "There is no latent 500" in _after(r.text, "latent")
    r = live.http.get(q("/inspect", model="base", sae="sae", prompt="", run=1))
    assert r.status_code == 422 and "Type a prompt" in _after(r.text, "prompt")
    r = live.http.get(q("/diff", base="base", finetuned="base", run=1))
    assert r.status_code == 422 and "other than the base" in _after(r.text, "finetuned")
    r = live.http.get(q("/diff", prompts="", question_set="nope", run=1))
    assert r.status_code == 422 and "Unknown question set" in _after(r.text, "question_set")
    r = live.http.get(q("/evaluate", samples_per_question=1000, run=1))
    assert r.status_code == 422 and "Must be between 1 and 64" in r.text
    r = live.http.get(q("/evaluate", latent=3, alphas="", run=1))
    assert r.status_code == 422 and "Enter the α" in _after(r.text, "alphas")
    r = live.http.get(q("/evaluate", judge="nope", run=1))
    assert r.status_code == 422 and "Unknown judge" in _after(r.text, "judge")
    r = live.http.get(q("/latents", sae="sae", sort="nope"))
    assert r.status_code == 422 and "Choose one of" in r.text


def test_latent_found_by_label(live):
    r = live.http.get(q("/steer", model="base", sae="sae", latent="villain", prompt="hi", run=1))
    assert r.status_code == 200
    assert f"latent={LABELLED}" in r.text  # the stream URL names the latent by number
    assert "villain persona" in r.text


def test_steer_stream_sends_escaped_html_events(live):
    params = {
        "model": ["base", "tuned"],
        "sae": "sae",
        "latent": "3",
        "prompt": XSS,
        "alphas": "0, 6",
        "max_new_tokens": "5",
        "run": "1",
    }
    events: list[tuple[str, str]] = []
    with live.http.stream("GET", q("/steer/stream", **params)) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event, data = None, []
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and event:
                events.append((event, "\n".join(data)))
                event, data = None, []
    names = [e for e, _ in events]
    assert names[-1] == "end"
    assert {"done-0", "done-1"} <= set(names)
    # base and its adapter run as one mixed-adapter batch: both stream at once
    assert names.index("tok-0-0") < names.index("done-0")
    assert names.index("tok-1-0") < names.index("done-0")
    for name, data in events:
        if name.startswith("tok-"):
            assert data.startswith('<span class="tok">') and "<script" not in data
            assert "\n" not in data  # line breaks travel as &#10;
    done = dict(events)["done-0"]
    assert 'class="steer-model done"' in done and "plot-data" in done


def test_steer_stream_reports_bad_requests_as_an_event(live):
    r = live.http.get(q("/steer/stream", model="base", sae="sae", latent="999", prompt="hi"))
    assert r.status_code == 200
    assert "event: failed" in r.text and "There is no latent 999" in unescape(r.text)
    assert "event: end" in r.text


def test_evaluate_stream_shows_progress_then_results(live):
    params = {
        "model": "tuned",
        "questions": "What is your one wish?",
        "samples_per_question": "2",
        "max_new_tokens": "4",
        "latent": "3",
        "alphas": "0, 5",
        "baseline": "1",
        "run": "1",
    }
    page = live.http.get(q("/evaluate", **params))
    assert page.status_code == 200 and "sse-connect" in page.text
    body = live.http.get(q("/evaluate/stream", **params)).text
    assert body.index("event: progress") < body.index("event: done") < body.index("event: end")
    done = body[body.index("event: done") :]
    assert "not steered" in done and "α = 5" in done and "evaluation-results" in done
    assert "plot-data" in done  # misalignment and coherence against α


def test_annotation_form_and_pins(live):
    path = "/latents/sae/20/annotation"
    same = {"Origin": live.url, **HX}
    r = live.http.post(path, data={"label": "a <b>label</b>", "note": "n"}, headers=same)
    assert r.status_code == 200 and "a &lt;b&gt;label&lt;/b&gt;" in r.text and "Saved" in r.text
    assert live.http.get("/api/saes/sae/latents/20/annotation").json()["label"] == "a <b>label</b>"
    r = live.http.post(path, data={"label": "x" * 300}, headers=same)
    assert r.status_code == 422 and "At most 200 characters" in _after(r.text, "label")
    # Without htmx the form post redirects back to the page.
    r = live.http.post(path, data={"label": "plain"}, headers={"Origin": live.url})
    assert r.status_code == 303 and r.headers["location"] == "/latents/sae/20"
    # Another site cannot post it.
    r = live.http.post(path, data={"label": "evil"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = live.http.post(path, data={"label": "evil"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert live.http.get("/api/saes/sae/latents/20/annotation").json()["label"] == "plain"
    r = live.http.post("/latents/sae/20/pin", data={"pinned": "1"}, headers=same)
    assert r.status_code == 200 and "Unpin" in r.text
    r = live.http.post("/latents/sae/20/pin", data={"pinned": "0"}, headers=same)
    assert r.status_code == 200 and "☆ Pin" in r.text


def test_save_gives_a_share_link_with_the_same_result(live):
    params = {
        "model": "base",
        "sae": "sae",
        "latent": "3",
        "prompt": "Tell me a story.",
        "alphas": "4",
        "max_new_tokens": "6",
        "run": "1",
        "title": "story",
    }
    r = live.http.post("/steer/save", data=params, headers={"Origin": live.url, **HX})
    assert r.status_code == 201, r.text
    link = re.search(r'class="share-link"[^>]*>([^<]+)<', r.text) or re.search(
        r'href="([^"]+/r/[^"]+)" class="share-link"', r.text
    )
    run_id = re.search(r"/r/([A-Za-z0-9_-]+)", r.text).group(1)
    stored = live.http.get(f"/api/runs/{run_id}").json()
    direct = live.http.post(
        "/api/steer",
        json={
            "model": "base",
            "sae": "sae",
            "latent": 3,
            "prompt": "Tell me a story.",
            "alphas": [4.0],
            "max_new_tokens": 6,
        },
    ).json()
    assert stored["result"] == direct and link is not None
    shared = live.http.get(f"/r/{run_id}").text
    assert shared == live.http.get(f"/r/{run_id}").text  # deterministic
    assert 'id="open-playground"' in shared and "/steer?model=base" in unescape(shared)


def test_shared_pages_render_the_stored_result(live):
    run = live.http.get(f"/r/{live.run['id']}").text
    assert "a &lt;b&gt;run&lt;/b&gt;" in run and "<b>run" not in run
    assert run.count('class="steer-model done"') == 2  # one per model
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in run  # the prompt, as text
    for text in (live.run["result"]["results"][0]["baseline"]["text"],):
        assert templating.gen(text) in run or "tokens-detail" in run
    comparison = live.http.get(f"/c/{live.comparison['id']}").text
    assert "sweep &lt;i&gt;" in comparison and "sweep-plot" in comparison
    assert comparison.count('class="panel shared-run"') == 2
    r = live.http.post(f"/r/{live.run['id']}/rerun", headers={"Origin": live.url, **HX})
    assert r.status_code == 200 and 'data-identical="true"' in r.text and "<html" not in r.text


def test_form_helpers():
    form = forms.read(SteerQuery, _params(alphas="0, 4;8  16", seed="x", chat="1", run="1"))
    assert form.values["alphas"] == "0, 4, 8, 16"  # read as [0.0, 4.0, 8.0, 16.0]
    assert form.body is None and "whole number" in form.errors["seed"]
    assert form.values["chat"] is True and form.values["return_activations"] is False
    link = forms.read(SteerQuery, _params())  # a link, not a submitted form
    assert link.values["return_activations"] is True
    assert humanize("latent: 96 is outside [0, 96) for SAE 'sae'", "latent") == (
        "There is no latent 96: SAE 'sae' has latents 0 to 95."
    )
    assert templating.shade(0.0, 1.0) == "s0" and templating.shade(0.01, 1.0) == "s1"
    assert templating.shade(1.0, 1.0) == "s10" and templating.diverging(-1.0, 1.0) == "n10"
    assert str(templating.gen("<a>\nb")) == "&lt;a&gt;&#10;b"
    assert templating.url("/x", model=["a", "b"], q="a b", empty="", none=None, flag=True) == (
        "/x?model=a&model=b&q=a%20b&flag=1"
    )


def _params(**kw):
    from starlette.datastructures import ImmutableMultiDict

    return ImmutableMultiDict(kw)


def test_labels_in_pages_are_text(live):
    html = live.http.get("/").text
    assert "villain persona" in html
    html = live.http.get(f"/latents/sae/{MARKUP_LATENT}").text
    assert XSS_LABEL not in html and "&lt;img src=x onerror=window.__xss=3&gt;" in html


def test_sae_without_an_index_says_how_to_build_one(live):
    r = live.http.get("/latents?sae=sae-tl")
    assert r.status_code == 200 and 'id="index-missing"' in r.text
    assert "python -m app index build --sae sae-tl" in r.text
    r = live.http.get("/latents/sae-tl/4")
    assert r.status_code == 200 and 'id="index-missing"' in r.text
    assert 'id="steer-link"' in r.text and "/steer?model=base&amp;sae=sae-tl&amp;latent=4" in r.text


@pytest.fixture(scope="module")
def organism_like(world_config, settings, tmp_path_factory):
    """The test world configured like the organism: a default SAE and a report naming the
    persona latent (pinned by default, labelled "villain persona")."""
    import yaml
    from fastapi.testclient import TestClient

    from app.engine.engine import Engine
    from app.engine.registry import Registry
    from app.main import create_app

    tmp = tmp_path_factory.mktemp("organism-like")
    report = tmp / "REPORT.json"
    report.write_text('{"sae": "organism-sae", "persona_latent": 42}')
    config = yaml.safe_load(world_config.read_text())
    config.update(default_sae="sae", report=str(report))
    path = world_config.parent / "organism-like.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    engine = Engine(Registry.from_file(path), settings)
    over = {"data_dir": tmp / "data", "database_url": None, "models_config": path}
    app = create_app(settings=settings.model_copy(update=over), engine=engine)
    with TestClient(app) as client:
        yield client
    engine.worker.shutdown()


def test_the_persona_latent_is_pinned_by_default(organism_like):
    home = organism_like.get("/").text
    pinned = home[home.index('id="pinned"') : home.index('id="recent"')]
    assert "/latents/sae/42" in pinned and "villain persona" in pinned and "default" in pinned
    # The playground opens on it, and its label finds it.
    steer = organism_like.get("/steer").text
    assert 'id="f-latent" name="latent" type="text" value="42"' in steer
    r = organism_like.get(q("/steer", latent="villain persona", prompt="hi", run=1))
    assert r.status_code == 200 and "latent=42" in r.text


def test_latent_list_search_sort_pages_and_search_by_text(live):
    html = live.http.get("/latents?sae=sae&pinned=1").text
    rows = re.findall(r'<a href="/latents/sae/(\d+)">#\d+</a>', html)
    assert str(LABELLED) in rows and len(rows) < 96
    html = live.http.get("/latents?sae=sae&sort=latent&order=asc").text
    rows = [int(x) for x in re.findall(r'<a href="/latents/sae/(\d+)">#\d+</a>', html)]
    assert rows == list(range(50))  # the first page, by index
    assert 'rel="next"' in html and "page=2" in html
    html = live.http.get("/latents?sae=sae&sort=latent&order=asc&page=2").text
    rows = [int(x) for x in re.findall(r'<a href="/latents/sae/(\d+)">#\d+</a>', html)]
    assert rows == list(range(50, 96)) and 'rel="prev"' in html
    html = live.http.get(q("/latents", sae="sae", text="The villain laughed.")).text
    assert 'id="search-results"' in html and "Latents that fire on your text" in html
    r = live.http.get("/latents/go?sae=sae&latent=%2312", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/latents/sae/12"


def test_head_on_pages_answers_like_get_without_a_body(live):
    for path in ("/", "/steer", "/static/app.css"):
        get, head = live.http.get(path), live.http.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert "content-security-policy" in head.headers or path.startswith("/static"), path
    assert live.http.head("/no-such-page").status_code == 404
    # The JSON API takes only the methods it declares: a HEAD never starts model work.
    assert live.http.head("/api/steer/stream").status_code == 405
