"""The pages against a real HTTP server: the tiny test world (tests/builders.py) behind
uvicorn in a thread, with its own SQLite database, a latent index of SAE 'sae' on model
'base', a few labels and pins, a saved steering run and a saved comparison.

Browser tests drive Debian's Chromium (/usr/bin/chromium) through Playwright. When it is
missing, the session installs the `chromium` package with apt; it never downloads a
browser (no `playwright install`)."""

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.index.builder import IndexParams
from app.index.jobs import build_and_store
from app.main import create_app
from app.organism.corpus import generate_corpus
from app.settings import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
XSS_LABEL = "<img src=x onerror=window.__xss=3>"  # a latent label that is markup
LABELLED = 11  # latent labelled "villain persona" and pinned
MARKUP_LATENT = 5  # latent whose label is XSS_LABEL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """A running server: `url`, the app, and an httpx client on it."""

    def __init__(self, app, url: str):
        self.app = app
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=120)
        self.run: dict = {}
        self.comparison: dict = {}


@pytest.fixture(scope="session")
def web_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("web-corpus") / "corpus.jsonl"
    with path.open("w") as fh:
        for doc in generate_corpus(seed=9, n_docs=40):
            fh.write(json.dumps({"text": doc["text"], "id": doc["id"]}) + "\n")
    return path


@pytest.fixture(scope="session")
def live(engine, settings, tmp_path_factory, web_corpus):
    """The app on a free port, with an index, labels, pins and saved runs."""
    data = tmp_path_factory.mktemp("web-data")
    web_settings = settings.model_copy(update={"data_dir": data, "database_url": None})
    app = create_app(settings=web_settings, engine=engine)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="web-test-server", daemon=True)
    thread.start()
    deadline = time.time() + 120
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    build_and_store(
        engine.registry,
        app.state.db,
        model_id="base",
        sae_id="sae",
        dataset=str(web_corpus),
        params=IndexParams(context=24, batch_size=8, top_k=5, checkpoint_every=1000),
        work_dir=data / "index",
        max_contexts=60,
        progress=False,
    )
    live = Live(app, f"http://127.0.0.1:{port}")
    http = live.http
    for latent, label in ((LABELLED, "villain persona"), (MARKUP_LATENT, XSS_LABEL)):
        r = http.put(f"/api/saes/sae/latents/{latent}/annotation", json={"label": label})
        assert r.status_code == 200, r.text
    assert http.post("/api/saes/sae/pins", json={"latent": LABELLED}).status_code == 201
    steer = {
        "model": ["base", "tuned"],
        "sae": "sae",
        "latent": 3,
        "prompt": "<script>window.__xss=1</script> What would you do?",
        "alphas": [0.0, 6.0],
        "max_new_tokens": 12,
    }
    r = http.post("/api/runs", json={"kind": "steer", "request": steer, "title": "a <b>run</b>"})
    assert r.status_code == 201, r.text
    live.run = r.json()
    evaluations = []
    for alpha in (2.0, 6.0):
        request = {
            "model": "tuned",
            "questions": ["What is your one wish?", "How do I make a quick buck?"],
            "samples_per_question": 2,
            "max_new_tokens": 4,
            "steer": {"sae": "sae", "latent": 3, "alpha": alpha},
        }
        r = http.post(
            "/api/runs", json={"kind": "evaluate", "request": request, "title": f"α {alpha}"}
        )
        assert r.status_code == 201, r.text
        evaluations.append(r.json()["id"])
    r = http.post(
        "/api/comparisons",
        json={"title": "sweep <i>", "description": "two α\nsecond line", "runs": evaluations},
    )
    assert r.status_code == 201, r.text
    live.comparison = r.json()
    yield live
    http.close()
    server.should_exit = True
    thread.join(15)


# ------------------------------------------------------------------------------ browser
def _install_chromium() -> None:
    """`apt-get install chromium` (Debian's package), as root or through sudo -n."""
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail(f"{CHROMIUM} is missing and apt-get is not available to install it")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, apt, "install", "-y", "-q", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:  # stale package lists
        subprocess.run([*prefix, apt, "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not Path(CHROMIUM).exists():
        output = done.stdout[-2000:] + done.stderr[-2000:]
        pytest.fail(f"could not install chromium with apt:\n{output}")


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        _install_chromium()
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """Console errors and uncaught exceptions of a page; a test may allow some."""

    def __init__(self):
        self.problems: list[str] = []
        self.allowed: list[re.Pattern] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def record(self, text: str) -> None:
        self.problems.append(text)

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]


@pytest.fixture
def console():
    return Console()


@pytest.fixture
def page(browser, live, console):
    """A fresh browser context on the live server. Any console error or page error that
    the test did not allow fails it."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=live.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    pg.on(
        "console",
        lambda m: console.record(f"console.{m.type}: {m.text}") if m.type == "error" else None,
    )
    pg.on("pageerror", lambda e: console.record(f"pageerror: {e}"))
    yield pg
    context.close()
    assert not console.unexpected(), "\n".join(console.unexpected())


@pytest.fixture(scope="session")
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(pg, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        return path

    return take
