"""What a saved run records besides its result, and how a rerun is judged against it.

Provenance names every model, SAE, judge and question set a request used with a
fingerprint of its weights or file (sha256, or the hub revision), plus the app and library
versions, device, dtype, seed and timestamps. A rerun compares the new result with the
stored one byte for byte (canonical JSON) and, when they differ, says which fingerprint or
part of the environment changed.
"""

import hashlib
import json
from datetime import datetime
from functools import cache, lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter

from app import __version__
from app.api.schemas import model_ids
from app.engine.engine import Engine
from app.errors import InvalidRequest

LIBRARIES = ("torch", "transformers", "peft", "sae-lens")
CATEGORIES = ("models", "saes", "judges", "question_sets")
ENVIRONMENT = ("device", "dtype", "app_version")
MAX_DIFFERENCES = 20


# --------------------------------------------------------------------------- serialisation
@cache
def _response_adapter(kind: str) -> TypeAdapter | None:
    """The response model of `POST /api/{kind}`, read off the route itself, so a stored
    result is serialised exactly as the endpoint serialises it."""
    from fastapi.routing import APIRoute

    from app.api.main import api_router  # late: app.api.main imports the runs router

    for route in api_router.routes:
        if (
            isinstance(route, APIRoute)
            and route.path == f"/api/{kind}"
            and "POST" in (route.methods or ())
            and route.response_model is not None
        ):
            return TypeAdapter(route.response_model)
    return None


def public_result(kind: str, raw: Any) -> dict[str, Any]:
    """The JSON the endpoint of `kind` returns for the computed value `raw`."""
    adapter = _response_adapter(kind)
    if adapter is None:
        out = jsonable_encoder(raw)
    else:
        out = adapter.dump_python(adapter.validate_python(raw), mode="json")
    try:
        canonical_json(out)
    except ValueError as exc:  # NaN or infinity: JSON cannot hold it, so neither can a run
        raise InvalidRequest(f"the result cannot be stored as JSON: {exc}") from None
    return out


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def differences(stored: Any, current: Any, path: str = "", limit: int = MAX_DIFFERENCES) -> list:
    """JSON paths (e.g. `steered[1].text`) where two results differ, the first `limit`."""
    out: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in list(a) + [k for k in b if k not in a]:
                sub = f"{where}.{key}" if where else str(key)
                if key not in a or key not in b:
                    out.append(sub)
                else:
                    walk(a[key], b[key], sub)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                out.append(f"{where} (length {len(a)} -> {len(b)})")
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                walk(x, y, f"{where}[{i}]")
        elif a != b or type(a) is not type(b):
            out.append(where or "(root)")

    walk(stored, current, path)
    return out[:limit]


# ------------------------------------------------------------------------------ provenance
@lru_cache(maxsize=256)
def _file_sha256(path: str, _mtime_ns: int, _size: int) -> str:
    with open(path, "rb") as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()[:32]


def file_fingerprint(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return _file_sha256(str(path), stat.st_mtime_ns, stat.st_size)


def referenced(kind: str, body: Any) -> dict[str, list[tuple[str, str]]]:
    """The (id, request field) of every model and SAE a request uses."""
    models: list[tuple[str, str]] = []
    saes: list[tuple[str, str]] = []
    if kind in ("activations", "steer"):
        models = [(m, "model") for m in model_ids(body.model)]
        saes = [(body.sae, "sae")]
    elif kind == "compare":
        models = [(body.base, "base"), (body.finetuned, "finetuned")]
        saes = [(body.sae, "sae")]
    elif kind == "evaluate":
        models = [(body.model, "model")]
        if body.steer is not None:
            saes = [(body.steer.sae, "steer.sae")]
    return {"models": models, "saes": saes}


def _question_set(engine: Engine, set_id: str | None) -> dict[str, str]:
    sets = engine.registry.config.spec.question_sets
    set_id = set_id or next(iter(sets), None)
    if set_id is None or set_id not in sets:
        return {}  # the computation reports the unknown id itself
    return {set_id: file_fingerprint(engine.registry.config.resolve(sets[set_id].path))}


def _judge(engine: Engine, judge_id: str | None) -> dict[str, str]:
    spec = engine.registry.config.spec.judges
    settings = engine.settings
    valid = [*spec, *(["llm"] if settings.judge_base_url else [])]
    judge_id = judge_id or (valid[0] if valid else None)
    if judge_id is None or judge_id not in valid:
        return {}
    js = spec.get(judge_id)
    if js is not None and js.kind == "classifier" and js.path:
        return {judge_id: file_fingerprint(engine.registry.config.resolve(js.path))}
    # An LLM judge has no weights here; its model name is all that identifies it.
    return {judge_id: f"llm:{settings.judge_model}@{settings.judge_base_url}"}


def fingerprints(engine: Engine, kind: str, body: Any) -> dict[str, dict[str, str]]:
    """Fingerprints of everything the request reads. Unknown ids raise NotFound naming
    the field (the caller nests it under `request.`)."""
    refs = referenced(kind, body)
    registry = engine.registry
    out: dict[str, dict[str, str]] = {c: {} for c in CATEGORIES}
    for model_id, field in refs["models"]:
        out["models"][model_id] = registry.model(model_id, field).fingerprint
    for sae_id, field in refs["saes"]:
        out["saes"][sae_id] = registry.sae(sae_id, field).fingerprint
    if kind == "compare" and not body.prompts:
        out["question_sets"] = _question_set(engine, body.question_set)
    if kind == "evaluate":
        if not body.questions:
            out["question_sets"] = _question_set(engine, body.question_set)
        out["judges"] = _judge(engine, body.judge)
    return out


@cache
def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def environment(engine: Engine) -> dict[str, Any]:
    return {
        "app_version": __version__,
        "device": str(engine.registry.device),
        "dtype": str(engine.registry.dtype).removeprefix("torch."),
        "libraries": library_versions(),
    }


def record(
    engine: Engine,
    kind: str,
    body: Any,
    prints: dict[str, dict[str, str]],
    started: datetime,
    finished: datetime,
) -> dict[str, Any]:
    return {
        "kind": kind,
        **prints,
        "seed": getattr(body, "seed", None),
        "temperature": getattr(body, "temperature", None),
        **environment(engine),
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": round((finished - started).total_seconds(), 3),
    }


# ----------------------------------------------------------------------------------- rerun
def judge_rerun(
    stored: dict[str, Any],
    stored_result: Any,
    current: dict[str, Any],
    current_result: Any,
) -> dict[str, Any]:
    """Whether a rerun reproduced the stored result, and if not, the likely reason."""
    identical = canonical_json(stored_result) == canonical_json(current_result)
    changes = []
    for category in CATEGORIES:
        old, new = stored.get(category) or {}, current.get(category) or {}
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                changes.append(
                    {
                        "what": category,
                        "id": key,
                        "stored": old.get(key),
                        "current": new.get(key),
                    }
                )
    old_env = {k: stored.get(k) for k in ENVIRONMENT} | (stored.get("libraries") or {})
    new_env = {k: current.get(k) for k in ENVIRONMENT} | (current.get("libraries") or {})
    env_changes = [
        {"what": key, "stored": old_env.get(key), "current": new_env.get(key)}
        for key in dict.fromkeys([*old_env, *new_env])
        if old_env.get(key) != new_env.get(key)
    ]
    weights_changed = any(c["what"] in ("models", "saes") for c in changes)

    def names(kinds: tuple[str, ...]) -> str:
        return ", ".join(
            f"{c['what'][:-1].replace('_', ' ')} {c['id']!r}" for c in changes if c["what"] in kinds
        )

    if identical:
        message = "Reproduced exactly: the rerun's result is identical to the stored one."
        if changes:
            message += f" (Inputs changed since: {names(CATEGORIES)}.)"
    elif weights_changed:
        message = (
            f"Cannot reproduce: the weights changed since this run was saved "
            f"({names(('models', 'saes'))}). The stored result is what the old weights computed."
        )
    elif changes:
        message = (
            f"Cannot reproduce: an input changed since this run was saved "
            f"({names(('judges', 'question_sets'))})."
        )
    elif env_changes:
        what = ", ".join(f"{c['what']} {c['stored']} -> {c['current']}" for c in env_changes)
        message = (
            f"Not reproduced although the weights are unchanged; the environment changed "
            f"({what}), and floating-point results can differ across devices, dtypes and "
            "library versions."
        )
    elif any(str(v).startswith("llm:") for v in (current.get("judges") or {}).values()):
        message = "Not reproduced: the LLM judge's scores are not deterministic."
    else:
        message = (
            "Not reproduced although weights, inputs and environment are unchanged. This "
            "should not happen; please report it with this run's link."
        )
    return {
        "identical": identical,
        "weights_changed": weights_changed,
        "changes": changes,
        "environment_changes": env_changes,
        "differences": [] if identical else differences(stored_result, current_result),
        "message": message,
    }
