"""Results shaped for the templates. A live page and a shared page (`/r/{id}`) show a result
through the same function and the same partial, so a saved run looks exactly like the run."""

import json
import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.schemas.evaluate import describe_edits
from app.schemas.fields import json_param, model_ids
from app.services import annotations, catalog
from app.services.context import Context
from app.services.inspection import peak_by_latent, results_of
from app.web import plots
from app.web.templating import latent_url, url

log = logging.getLogger(__name__)

# A request kind's view (its registry entry names it): (context, stored request, result)
# -> what the kind's partial draws.
VIEWS: dict[str, Callable[[Context, dict, dict], Any]] = {}


def view(name: str):
    def register(fn):
        VIEWS[name] = fn
        return fn

    return register


MAX_DETAIL_TOKENS = 512  # per model: the token-detail panels of the inspector


def activation_view(
    results: list[dict],
    latent: int | None,
    labels: dict[int, str],
    specials: list[list[bool]],
    link_params: dict[str, Any],
    growth: list[dict] | None = None,
) -> dict[str, Any]:
    """Per model: tokens shaded by `latent`, each with its top latents; the difference of
    each model from the first (when they share tokens); the line plot; prompt-level tops."""
    models = []
    top = 0.0
    proj_top = 0.0  # the persona score's shading scale: largest |projection| of any model
    traces = []
    for m, (r, special) in enumerate(zip(results, specials, strict=True)):
        values = r["latents"].get(str(latent)) if latent is not None else None
        if values:
            top = max([top, *(v for v, s in zip(values, special, strict=True) if not s)])
            traces.append((r["model"], r["tokens"], values))
        peaks = peak_by_latent(r, special)
        projection = r.get("projection")
        if projection:
            kept = [v for v, s in zip(projection["values"], special, strict=True) if not s]
            proj_top = max([proj_top, *(abs(v) for v in kept)])
        models.append(
            {
                "index": m,
                "model": r["model"],
                "tokens": r["tokens"],
                "token_ids": r["token_ids"],
                "special": special,
                "values": values,
                "top": r["top"],
                "detail": len(r["tokens"]) <= MAX_DETAIL_TOKENS,
                "prompt_top": sorted(peaks.items(), key=lambda kv: -kv[1])[:10],
                "projection": projection,
            }
        )
    diffs = []
    if latent is not None and len(models) >= 2 and models[0]["values"]:
        first = models[0]
        for other in models[1:]:
            if other["token_ids"] != first["token_ids"] or not other["values"]:
                diffs.append({"model": other["model"], "base": first["model"], "values": None})
                continue
            delta = [
                0.0 if s else b - a
                for a, b, s in zip(first["values"], other["values"], first["special"], strict=True)
            ]
            diffs.append(
                {
                    "model": other["model"],
                    "base": first["model"],
                    "tokens": first["tokens"],
                    "special": first["special"],
                    "values": delta,
                    "scale": max((abs(d) for d in delta), default=0.0),
                    "total": sum(delta),
                }
            )
    # Computed by the server over every latent from both models' activations (a stored
    # run from before it was computed has none, and shows none rather than a guess).
    changed = [(g["latent"], g["delta"]) for g in growth or []]
    label = labels.get(latent, "") if latent is not None else ""
    return {
        "latent": latent,
        "label": label,
        "labels": labels,
        "models": models,
        "top": top,
        "projection_top": proj_top,
        "direction": next((m["projection"] for m in models if m["projection"]), None),
        "diffs": diffs,
        "changed": changed,
        "fig": plots.activation_lines(traces, latent, label)
        if traces and latent is not None
        else None,
        "link": lambda **over: url("/inspect", {**link_params, **over}),
    }


# ------------------------------------------------------------------------------- steering
def steer_view(result: dict) -> dict[str, Any]:
    """One model's steering result: a cell per row (baseline, then each α)."""
    rows = [(None, result["baseline"]), *((s["alpha"], s) for s in result["steered"])]
    top = max((v for _, row in rows for v in (row.get("latent_activations") or [])), default=0.0)
    cells = []
    for alpha, row in rows:
        tokens = row.get("tokens") or []
        values = row.get("latent_activations") or []
        cells.append(
            {
                "alpha": alpha,
                "text": row["text"],
                "tokens": tokens,
                "values": values,
                "exact": "".join(tokens) == row["text"],
                "mean": sum(values) / len(values) if values else None,
                "n_tokens": len(row.get("token_ids") or []),
            }
        )
    return {
        "model": result["model"],
        "sae": result["sae"],
        "latent": result["latent"],
        "cells": cells,
        "top": top,
        "fig": plots.steer_lines(result),
    }


# ------------------------------------------------------------------ links to evaluations
DEFAULT_ALPHA = 1.0  # what an "evaluate steered" link steers with when no report names one


@lru_cache(maxsize=4)
def _report_alpha(path: str, _mtime_ns: int) -> float | None:
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        alpha = report["steering"]["amplify"]["alpha"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.info("no chosen α in report %s (%s)", path, exc)
        return None
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha == 0:
        return None
    return float(alpha)


def suggested_alpha(ctx: Context) -> float:
    """The α that links to a steered evaluation carry: the organism report's chosen
    amplification α (REPORT.json `steering.amplify.alpha`) when the model config names a
    report, else 1. (A link with a latent but no α would only give an error.)"""
    config = ctx.registry.config
    if not config.spec.report:
        return DEFAULT_ALPHA
    path = config.resolve(config.spec.report)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return DEFAULT_ALPHA
    found = _report_alpha(str(path), mtime)
    return DEFAULT_ALPHA if found is None else found


# ----------------------------------------------------------------------------- model diff
def compare_view(
    result: dict, labels: dict[int, str], alpha: float = DEFAULT_ALPHA
) -> dict[str, Any]:
    """`alpha`: what each row's "evaluate" link steers with."""
    sae = result["sae"]
    links = [latent_url(sae, r["latent"], model=result["base"]) for r in result["latents"]]
    return {
        "result": result,
        "labels": labels,
        "links": links,
        "alpha": alpha,
        "fig": plots.diff_bars(result["latents"], labels, links) if result["latents"] else None,
    }


# ----------------------------------------------------------------------------- evaluation
def condition(result: dict) -> dict[str, Any]:
    steer = result.get("steer")
    alpha = steer["alpha"] if steer else None
    if result.get("interventions"):
        name = describe_edits(result["interventions"], result.get("positions"))
    else:
        name = "not steered" if steer is None else f"α = {alpha:g}"
    return {
        "alpha": alpha,
        "name": name,
        "steer": steer,
        "result": result,
    }


def evaluation_view(results: list[dict]) -> dict[str, Any]:
    """One evaluation or a sweep of them (the same questions at several α)."""
    conditions = [condition(r) for r in results]
    steered = [c for c in conditions if c["alpha"] is not None]
    sweep = len(steered) >= 2 or (len(steered) == 1 and len(conditions) >= 2)
    return {
        "conditions": conditions,
        "fig": plots.eval_sweep(conditions) if sweep else None,
    }


# ------------------------------------------------------------------------- views by kind
@view("steer")
def _steer(_ctx: Context, _request: dict, result: dict) -> list[dict]:
    return [steer_view(r) for r in results_of(result)]


@view("compare")
def _compare(ctx: Context, _request: dict, result: dict) -> dict:
    names = annotations.labels(ctx, result["sae"], [r["latent"] for r in result["latents"]])
    return compare_view(result, names, suggested_alpha(ctx))


@view("evaluate")
def _evaluate(_ctx: Context, _request: dict, result: dict) -> dict:
    return evaluation_view([result])


@view("activations")
def _activations(ctx: Context, request: dict, result: dict) -> dict:
    results = results_of(result)
    wanted = [int(k) for k in results[0]["latents"]] if results else []
    latent = wanted[0] if wanted else None
    names = annotations.labels(
        ctx,
        request["sae"],
        {
            *wanted,
            *(x["latent"] for r in results for top in r["top"] for x in top),
            *(g["latent"] for g in result.get("growth") or []),
        },
    )
    link = {
        "model": model_ids(request["model"]),
        "sae": request["sae"],
        "prompt": request.get("prompt"),
        **({"messages": json_param(request["messages"])} if request.get("messages") else {}),
        "top_k": request.get("top_k"),
        "chat": bool(request.get("chat", False)),
        "direction": request.get("direction"),
        "run": 1,
    }
    specials = catalog.specials(ctx, results)
    return activation_view(results, latent, names, specials, link, result.get("growth"))
