"""What several pages need: the catalogue of hosted models and SAEs with their defaults,
latent labels, and finding a latent by its number or its label."""

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.api.annotations import default_pins, latent_annotations
from app.db import crud
from app.engine.engine import Engine
from app.web.forms import Form


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


def catalog(engine: Engine) -> Catalog:
    registry = engine.registry
    spec = registry.config.spec
    models = [
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
    ]
    saes = [
        {
            "id": s.id,
            "hook_name": s.hook_name,
            "d_sae": s.d_sae,
            "d_in": s.d_in,
            "models": list(s.spec.models),
            "description": s.spec.description,
            "architecture": s.architecture,
        }
        for s in registry.saes.values()
    ]
    default_sae = spec.default_sae or next(iter(registry.saes), None)
    return Catalog(
        models=models,
        saes=saes,
        question_sets=[
            {"id": k, "description": v.description} for k, v in spec.question_sets.items()
        ],
        judges=[
            {"id": k, "kind": v.kind, "description": v.description} for k, v in spec.judges.items()
        ]
        + (
            [{"id": "llm", "kind": "llm", "description": "OpenAI-compatible LLM judge"}]
            if engine.settings.judge_base_url
            else []
        ),
        default_model=spec.default_model or next(iter(registry.models)),
        default_sae=default_sae,
        chat_models={m.id for m in registry.models.values() if m.tokenizer.chat_template},
    )


def labels(session: Session, engine: Engine, sae_id: str, latents) -> dict[int, str]:
    notes = latent_annotations(session, engine, sae_id, latents)
    return {i: a["label"] for i, a in notes.items()}


def labelled(session: Session, engine: Engine, sae_id: str | None) -> list[dict[str, Any]]:
    """Latents of the SAE with a label or a pin, for the latent pickers."""
    if not sae_id or sae_id not in engine.registry.saes:
        return []
    ids = {*crud.annotated_latents(session, sae_id=sae_id), *default_pins(engine, sae_id)}
    ids |= {p.latent for p in crud.list_pins(session, sae_id=sae_id)}
    notes = latent_annotations(session, engine, sae_id, ids)
    return [{"latent": i, **notes[i]} for i in sorted(ids)]


def default_latent(session: Session, engine: Engine, sae_id: str | None) -> int | None:
    """The SAE's first default pin (the organism's persona latent), if any."""
    if not sae_id or sae_id not in engine.registry.saes:
        return None
    pins = default_pins(engine, sae_id)
    return next(iter(pins), None)


def resolve_latent(
    form: Form,
    session: Session,
    engine: Engine,
    sae_id: str | None,
    raw: str,
    name: str = "latent",
    required: bool = True,
) -> int | None:
    """A latent from its number ('12', '#12') or its label (exact, else a unique part)."""
    raw = raw.strip()
    if not raw:
        if required:
            form.fail(name, "Enter a latent number, or a label such as 'villain persona'.")
        return None
    number = raw.removeprefix("#")
    if number.lstrip("-").isdigit():
        value = int(number)
        if value < 0:
            form.fail(name, "Latent numbers start at 0.")
            return None
        return value
    if not sae_id or sae_id not in engine.registry.saes:
        return None  # the SAE's own error is shown on its field
    needle = raw.casefold()
    found = [x for x in labelled(session, engine, sae_id) if x["label"]]
    exact = [x for x in found if x["label"].casefold() == needle]
    partial = exact or [x for x in found if needle in x["label"].casefold()]
    if len(partial) == 1:
        return partial[0]["latent"]
    if not partial:
        form.fail(
            name,
            f"No latent of SAE '{sae_id}' is labelled '{raw}'. Enter its number, or label it "
            "on its latent page.",
        )
    else:
        listed = ", ".join(f"{x['latent']} ({x['label']})" for x in partial[:8])
        form.fail(name, f"'{raw}' matches several latents: {listed}. Enter the number.")
    return None
