"""The Jinja2 environment of the pages (frontend/templates, autoescape on) and its filters.

A page is one template; the pieces htmx swaps are named blocks of it. `render` returns the
whole page for a normal request and only the named block for an htmx request
(jinja2-fragments), so a widget and its page can never drift apart.
"""

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from jinja2_fragments.fastapi import Jinja2Blocks
from markupsafe import Markup, escape
from starlette.responses import Response

from app import __version__
from app.schemas.fields import MAX_SEED, METHOD_LABELS, POSITION_LABELS
from app.settings import REPO_ROOT
from app.web import plots
from app.web.vendor import plotly_style_ids, static_url

TEMPLATES_DIR = REPO_ROOT / "frontend" / "templates"
SHADES = 10  # background shading levels of a token (CSS classes s1..s10 and n1..n10)


# -------------------------------------------------------------------------------- filters
def shade(value: float | None, top: float | None) -> str:
    """CSS class for a token's background: s0 (nothing) to s10 (the maximum). Any positive
    value gets at least s1, so a weak activation is still visible."""
    if value is None or top is None or not math.isfinite(value) or top <= 0 or value <= 0:
        return "s0"
    return f"s{min(SHADES, max(1, math.ceil(SHADES * value / top)))}"


def diverging(value: float | None, top: float | None) -> str:
    """CSS class for a signed difference: n10..n1 (decrease), s0, s1..s10 (increase)."""
    if value is None or top is None or not math.isfinite(value) or top <= 0 or value == 0:
        return "s0"
    level = min(SHADES, max(1, math.ceil(SHADES * abs(value) / top)))
    return f"s{level}" if value > 0 else f"n{level}"


def num(value: Any, digits: int = 3) -> str:
    """A number for people: 3 significant digits, no exponent for ordinary sizes."""
    if value is None:
        return "—"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.{max(digits - 1, 0)}f}"
    if abs(v) >= 1e-3:
        return f"{v:.{digits}g}"
    return f"{v:.{max(digits - 1, 0)}e}"


def pct(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    v = float(value) * 100
    if 0 < v < 10**-digits:
        return f"{v:.2g}%"
    return f"{v:.{digits}f}%"


def gen(text: str) -> Markup:
    """Generated text, escaped, with line breaks as character references: the exact text
    survives server-sent events (which split data on line breaks) and shows with
    `white-space: pre-wrap`."""
    return Markup(str(escape(text)).replace("\r", "&#13;").replace("\n", "&#10;"))


def url(path: str, params: Mapping[str, Any] | None = None, **more: Any) -> str:
    """`path?query` from params; lists repeat the key, None and "" are left out."""
    merged = {**(params or {}), **more}
    pairs: list[tuple[str, str]] = []
    for key, value in merged.items():
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            if v is None or v == "":
                continue
            if isinstance(v, bool):
                v = "1" if v else "0"
            elif isinstance(v, float):
                v = f"{v:g}"
            pairs.append((key, str(v)))
    query = urlencode(pairs, quote_via=quote)
    return f"{path}?{query}" if query else path


def latent_url(sae: str, latent: int, **params: Any) -> str:
    """The page of one latent."""
    return url(f"/latents/{quote(str(sae), safe='')}/{int(latent)}", params)


def alphas_text(values: list[float]) -> str:
    return ", ".join(f"{a:g}" for a in values)


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        shade=shade,
        diverging=diverging,
        num=num,
        pct=pct,
        token=plots.visible,
        gen=gen,
        alphas=alphas_text,
        alpha_name=plots.alpha_name,
    )
    env.globals.update(
        url=url,
        latent_url=latent_url,
        version=__version__,
        plotly_style_ids=plotly_style_ids,
        static=static_url,
        method_choices=METHOD_LABELS,
        position_choices=POSITION_LABELS,
        max_seed=MAX_SEED,
    )
    return env


templates = Jinja2Blocks(env=make_environment())


# ------------------------------------------------------------------------------- rendering
def is_htmx(request: Request) -> bool:
    """An htmx request for a piece of a page (not a history restore, which needs it all)."""
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The whole page, or only `block` when htmx asks for a piece of it."""
    context = {"request": request, "errors": {}, **context}
    if block is not None and is_htmx(request):
        return templates.TemplateResponse(
            request, name, context, status_code=status_code, headers=headers, block_name=block
        )
    return templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=headers
    )


def render_block(name: str, block: str, context: dict[str, Any]) -> str:
    """A block as a string (for server-sent events)."""
    from jinja2_fragments import render_block as _render_block

    return _render_block(templates.env, name, block, {"errors": {}, **context})
