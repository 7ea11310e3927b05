"""Static files of the UI: `frontend/static` at `/static`, plus plotly.js from the installed
`plotly` Python package and the CSS rules plotly.js would otherwise inject inline.

plotly.js adds its style rules with `<style>` elements at run time, which a
Content-Security-Policy without 'unsafe-inline' refuses. It skips that when the page holds
an element with id `plotly.js-style-global` and class `no-inline-styles`, so the layout
links `/static/vendor/plotly.css` with that id: the rules read here from plotly.min.js
itself, so they always match the installed version.
"""

import hashlib
import logging
import re
from functools import lru_cache
from pathlib import Path

import plotly
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from app.settings import REPO_ROOT

log = logging.getLogger(__name__)

STATIC_DIR = REPO_ROOT / "frontend" / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# plotly.js's src/css/_plotcss.js, minified: {"X,X div":"direction:ltr;...", ...}; X and Y
# stand for the two root selectors below.
_RULES_START = re.compile(r"""\{\s*["']X,X div["']\s*:""")
_ROOTS = {"X": ".js-plotly-plot .plotly", "Y": ".plotly-notifier"}
# Bundled stylesheets (e.g. maplibre's) that plotly.js adds as <style id=HASH> unless an
# element with that id exists: the layout holds an inert <template id=HASH> for each, and
# their CSS is served in plotly.css.
_BUNDLED_STYLE = re.compile(
    r"""if\(!document\.getElementById\("([0-9a-f]{16,})"\)\)\{var (\w+)=document\.createElement"""
    r"""\("style"\);\2\.id="\1",\2\.textContent=(?=['"])"""
)

router = APIRouter(include_in_schema=False)


def _string(src: str, i: int) -> tuple[str, int]:
    """The JavaScript string literal starting at src[i]; returns (value, index after it)."""
    quote = src[i]
    if quote not in "'\"":
        raise ValueError(f"expected a string at {i}")
    out, i = [], i + 1
    while src[i] != quote:
        if src[i] == "\\":
            i += 1
        out.append(src[i])
        i += 1
    return "".join(out), i + 1


def extract_plotly_rules(src: str) -> list[tuple[str, str]]:
    """(selector, declarations) of plotly.js's injected style rules, in source order."""
    match = _RULES_START.search(src)
    if match is None:
        raise ValueError("plotly.js style rules not found")
    rules, i = [], match.start() + 1
    while True:
        while src[i].isspace():
            i += 1
        if src[i] in "'\"":
            key, i = _string(src, i)
        else:  # an unquoted key, e.g. Y:
            name = re.match(r"[A-Za-z_$][\w$]*", src[i:])
            if name is None:
                raise ValueError(f"unexpected {src[i]!r} in plotly.js style rules")
            key, i = name.group(), i + name.end()
        i = src.index(":", i) + 1
        while src[i].isspace():
            i += 1
        value, i = _string(src, i)
        selector = re.sub(r"^,", " ,", key)
        for short, root in _ROOTS.items():
            selector = selector.replace(short, root)
        rules.append((selector, value))
        while src[i].isspace():
            i += 1
        if src[i] == "}":
            return rules
        if src[i] != ",":
            raise ValueError(f"unexpected {src[i]!r} in plotly.js style rules")
        i += 1


def extract_bundled_styles(src: str) -> list[tuple[str, str]]:
    """(element id, CSS) of the stylesheets plotly.js injects whole."""
    return [(m.group(1), _string(src, m.end())[0]) for m in _BUNDLED_STYLE.finditer(src)]


@lru_cache(maxsize=1)
def _plotly_styles() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    try:
        src = PLOTLY_JS.read_text(encoding="utf-8")
        return extract_plotly_rules(src), extract_bundled_styles(src)
    except (OSError, ValueError, IndexError) as exc:
        log.warning("plotly.js style rules could not be read (%s); plots lose their styling", exc)
        return [], []


def plotly_style_ids() -> list[str]:
    """Ids of the bundled stylesheets, for the layout's inert markers."""
    return [style_id for style_id, _ in _plotly_styles()[1]]


@lru_cache(maxsize=1)
def plotly_css() -> str:
    rules, bundled = _plotly_styles()
    if not rules:
        return "/* plotly.js style rules could not be read */\n"
    # plotly.js inserts each rule at index 0 of its sheet, so the last one comes first.
    body = "\n".join(f"{sel}{{{decl}}}" for sel, decl in reversed(rules))
    body += "".join(f"\n/* bundled stylesheet {i} */\n{css}" for i, css in bundled)
    head = f"/* Style rules of plotly.js ({PLOTLY_JS.name}), served as a file for the CSP. */"
    return f"{head}\n{body}\n"


# ------------------------------------------------------------------ fingerprinted URLs
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # a URL without its fingerprint: ask again (ETag) every time


@lru_cache(maxsize=64)
def _fingerprint(path: str, _mtime_ns: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:12]


def _file_for(name: str) -> Path:
    if name == "vendor/plotly.min.js":
        return PLOTLY_JS
    if name == "vendor/plotly.css":  # generated from plotly.min.js: its hash names it
        return PLOTLY_JS
    return STATIC_DIR / name


def static_url(name: str) -> str:
    """`/static/<name>?v=<content hash>`: a URL that changes when the file does, so it can
    be cached for a year."""
    path = _file_for(name)
    try:
        version = _fingerprint(str(path), path.stat().st_mtime_ns)
    except OSError:
        return f"/static/{name}"
    return f"/static/{name}?v={version}"


def cache_control(request) -> str:
    return IMMUTABLE if request.query_params.get("v") else REVALIDATE


class CachedStaticFiles(StaticFiles):
    """The static folder with the cache policy above (ETag revalidation otherwise)."""

    async def get_response(self, path: str, scope) -> Response:
        response = await super().get_response(path, scope)
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["Cache-Control"] = IMMUTABLE if versioned else REVALIDATE
        return response


@router.get("/static/vendor/plotly.min.js")
def plotly_js(request: Request) -> FileResponse:
    return FileResponse(
        PLOTLY_JS,
        media_type="text/javascript",
        headers={"Cache-Control": cache_control(request)},
    )


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """Browsers ask for /favicon.ico whatever the page links (JSON pages, /docs)."""
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/static/vendor/plotly.css")
def plotly_stylesheet(request: Request) -> Response:
    return Response(
        plotly_css(),
        media_type="text/css",
        headers={"Cache-Control": cache_control(request)},
    )


def mount(app: FastAPI) -> None:
    """The plotly routes and /favicon.ico first, then everything else under /static from the
    folder."""
    app.include_router(router)
    app.mount("/static", CachedStaticFiles(directory=STATIC_DIR), name="static")
