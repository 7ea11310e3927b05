"""What this server hosts, as the API lists it and the forms offer it: models, SAEs,
question sets and judges, with their defaults. Also loads question sets and judges by id
(the valid ids are computed here, once)."""

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.analysis.judges import ClassifierJudge, Judge, LLMJudge
from app.analysis.questions import load_questions
from app.engine.hooks import list_hook_points
from app.errors import InvalidRequest, NotFound, choices
from app.services.context import Context

LLM_JUDGE = "llm"


# ---------------------------------------------------------------------------- fingerprints
@lru_cache(maxsize=256)
def _file_sha256(path: str, _mtime_ns: int, _size: int) -> str:
    with open(path, "rb") as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()[:32]


def file_fingerprint(path: Path) -> str:
    """sha256 of a file (a question set, a judge), cached while it is unchanged."""
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return _file_sha256(str(path), stat.st_mtime_ns, stat.st_size)


# --------------------------------------------------------------------------- question sets
def question_set_id(ctx: Context, set_id: str | None, field: str = "question_set") -> str:
    """The question set a request means (its own, else the config's first)."""
    sets = ctx.registry.config.spec.question_sets
    if set_id is None:
        if not sets:
            raise InvalidRequest(
                f"{field}: this server has no question sets; send your own questions",
                field=field,
            )
        return next(iter(sets))
    if set_id not in sets:
        raise NotFound(
            f"{field}: unknown question set {set_id!r}; valid ids: {choices(sets)}", field=field
        )
    return set_id


def question_set_path(ctx: Context, set_id: str):
    return ctx.registry.config.resolve(ctx.registry.config.spec.question_sets[set_id].path)


def questions(ctx: Context, set_id: str | None, field: str = "question_set") -> list[dict]:
    return load_questions(question_set_path(ctx, question_set_id(ctx, set_id, field)))


# ---------------------------------------------------------------------------------- judges
def judge_ids(ctx: Context) -> list[str]:
    """The config's judges, then the LLM judge when settings name an endpoint."""
    return [*ctx.registry.config.spec.judges, *([LLM_JUDGE] if ctx.settings.judge_base_url else [])]


def judge_id(ctx: Context, wanted: str | None) -> str:
    valid = judge_ids(ctx)
    found = wanted or (valid[0] if valid else None)
    if found is None or found not in valid:
        raise NotFound(
            f"judge: unknown judge {found!r}; valid ids: {choices(valid)} "
            "(set PERSONASCOPE_JUDGE_BASE_URL and PERSONASCOPE_JUDGE_MODEL for an LLM judge)",
            field="judge",
        )
    return found


def judge_fingerprint(ctx: Context, wanted: str | None) -> tuple[str, str]:
    """(judge id, what identifies its weights): a classifier's file hash; an LLM judge has
    no weights here, so its model name and endpoint."""
    found = judge_id(ctx, wanted)
    spec = ctx.registry.config.spec.judges.get(found)
    if spec is not None and spec.kind == "classifier" and spec.path:
        return found, file_fingerprint(ctx.registry.config.resolve(spec.path))
    return found, f"llm:{ctx.settings.judge_model}@{ctx.settings.judge_base_url}"


def judge(ctx: Context, wanted: str | None) -> Judge:
    """The judge, loaded once per server."""
    found = judge_id(ctx, wanted)
    if found not in ctx.judges:
        spec = ctx.registry.config.spec.judges.get(found)
        settings = ctx.settings
        if spec is not None and spec.kind == "classifier":
            ctx.judges[found] = ClassifierJudge.load(ctx.registry.config.resolve(spec.path))
        else:
            if not (settings.judge_base_url and settings.judge_model):
                raise InvalidRequest(
                    "judge: the LLM judge needs PERSONASCOPE_JUDGE_BASE_URL "
                    "and PERSONASCOPE_JUDGE_MODEL",
                    field="judge",
                )
            ctx.judges[found] = LLMJudge(
                settings.judge_base_url,
                settings.judge_model,
                settings.judge_api_key,
                settings.judge_timeout_s,
            )
    return ctx.judges[found]


# ------------------------------------------------------------------------------- catalogue
def models_public(ctx: Context) -> dict[str, Any]:
    """GET /api/models."""
    out = ctx.registry.public()
    spec = ctx.registry.config.spec
    out["question_sets"] = [
        {"id": k, "path": v.path, "description": v.description}
        for k, v in spec.question_sets.items()
    ]
    out["judges"] = [
        {"id": k, "kind": v.kind, "description": v.description} for k, v in spec.judges.items()
    ]
    out["default_model"] = spec.default_model or next(iter(spec.models))
    out["default_sae"] = spec.default_sae or next(iter(spec.saes), None)
    return out


def hooks_public(ctx: Context, model_id: str) -> dict[str, Any]:
    """GET /api/models/{id}/hooks."""
    model = ctx.registry.model(model_id, "model_id")
    return {"model": model_id, "hooks": list_hook_points(model.hf)}


@dataclass
class Catalog:
    """Hosted models, SAEs, question sets and judges, as the forms offer them."""

    models: list[dict[str, Any]]
    saes: list[dict[str, Any]]
    question_sets: list[dict[str, Any]]
    judges: list[dict[str, Any]]
    default_model: str
    default_sae: str | None
    chat_models: set[str] = field(default_factory=set)

    def sae(self, sae_id: str | None) -> dict[str, Any] | None:
        return next((s for s in self.saes if s["id"] == sae_id), None)

    def models_of(self, sae_id: str | None) -> list[str]:
        sae = self.sae(sae_id)
        return list(sae["models"]) if sae else [m["id"] for m in self.models]

    def finetuned_of(self, base: str) -> list[str]:
        return [m["id"] for m in self.models if m["base"] == base]

    def pair(self) -> tuple[str, str]:
        """A (base, fine-tuned) pair to compare by default: the default model and its
        first fine-tune, else the first two models."""
        base = self.default_model
        tuned = self.finetuned_of(base)
        if tuned:
            return base, tuned[0]
        ids = [m["id"] for m in self.models]
        return base, next((i for i in ids if i != base), base)


def catalog(ctx: Context) -> Catalog:
    registry = ctx.registry
    spec = registry.config.spec
    judges = [
        {"id": k, "kind": v.kind, "description": v.description} for k, v in spec.judges.items()
    ]
    if LLM_JUDGE in judge_ids(ctx):
        judges.append(
            {"id": LLM_JUDGE, "kind": "llm", "description": "OpenAI-compatible LLM judge"}
        )
    return Catalog(
        models=[
            {
                "id": m.id,
                "base": m.base_id or m.spec.finetuned_from,
                "kind": "adapter" if m.adapter_source else "model",
                "source": m.adapter_source or m.source,
                "description": m.spec.description,
                "architecture": m.hf.config.model_type,
                "n_layers": m.n_layers,
                "d_model": m.d_model,
            }
            for m in registry.models.values()
        ],
        saes=[
            {
                "id": s.id,
                "hook_name": s.hook_name,
                "d_sae": s.d_sae,
                "d_in": s.d_in,
                "models": list(s.spec.models),
                "description": s.spec.description,
                "architecture": s.architecture,
                "neuronpedia_id": s.neuronpedia_id,
            }
            for s in registry.saes.values()
        ],
        question_sets=[
            {"id": k, "description": v.description} for k, v in spec.question_sets.items()
        ],
        judges=judges,
        default_model=spec.default_model or next(iter(registry.models)),
        default_sae=spec.default_sae or next(iter(registry.saes), None),
        chat_models={m.id for m in registry.models.values() if m.tokenizer.chat_template},
    )


def special_ids(ctx: Context, model_id: str) -> set[int]:
    """Token ids that are special (BOS and the like) for a hosted model; none for a model
    this server does not host."""
    model = ctx.registry.models.get(model_id)
    return set(model.tokenizer.all_special_ids) if model is not None else set()


def specials(ctx: Context, results: list[dict]) -> list[list[bool]]:
    """Per activation result, which tokens are special: SAEs are not read there."""
    out = []
    for r in results:
        ids = special_ids(ctx, r["model"])
        out.append([t in ids for t in r["token_ids"]])
    return out
