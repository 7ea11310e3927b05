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
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel

from app import __version__, kinds
from app.db import directions as direction_repo
from app.errors import DomainError, InvalidRequest, NotFound
from app.services import catalog
from app.services.context import Context

LIBRARIES = ("torch", "transformers", "peft", "sae-lens")
CATEGORIES = ("models", "saes", "directions", "judges", "question_sets")
ENVIRONMENT = ("device", "dtype", "app_version")
MAX_DIFFERENCES = 20


# --------------------------------------------------------------------------- serialisation
def public_result(kind: str, raw: Any) -> dict[str, Any]:
    """The JSON the endpoint of `kind` returns for the computed value `raw` (its response
    model, from the kind's registry entry)."""
    adapter = kinds.get(kind).adapter
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
def fingerprints(ctx: Context, body: BaseModel) -> dict[str, dict[str, str]]:
    """Fingerprints of everything the request reads (its `references()`). Unknown model
    and SAE ids raise NotFound naming the field (the caller nests it under `request.`);
    an unknown question set or judge is left to the computation to report."""
    refs = body.references()  # type: ignore[attr-defined]
    registry = ctx.registry
    out: dict[str, dict[str, str]] = {c: {} for c in CATEGORIES}
    for model_id, field in refs.get("models", []):
        out["models"][model_id] = registry.model(model_id, field).fingerprint
    for sae_id, field in refs.get("saes", []):
        out["saes"][sae_id] = registry.sae(sae_id, field).fingerprint
    wanted = refs.get("directions", [])
    if wanted:  # a direction's sha256 (of its float32 bytes): what the run steered with
        with ctx.database.session() as session:
            for direction_id, field in wanted:
                row = direction_repo.get_direction(session, direction_id=direction_id)
                if row is None:
                    raise NotFound(f"{field}: no direction with id {direction_id!r}", field=field)
                out["directions"][direction_id] = row.sha256
    for set_id in refs.get("question_sets", []):
        try:
            found = catalog.question_set_id(ctx, set_id)
        except DomainError:
            continue
        out["question_sets"][found] = catalog.file_fingerprint(
            catalog.question_set_path(ctx, found)
        )
    for judge_id in refs.get("judges", []):
        try:
            found, print_ = catalog.judge_fingerprint(ctx, judge_id)
        except DomainError:
            continue
        out["judges"][found] = print_
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


def environment(ctx: Context) -> dict[str, Any]:
    return {
        "app_version": __version__,
        "device": str(ctx.registry.device),
        "dtype": str(ctx.registry.dtype).removeprefix("torch."),
        "libraries": library_versions(),
    }


def record(
    ctx: Context,
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
        **environment(ctx),
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
