"""Latent annotations: a team's labels and notes on SAE latents, and pinned latents per SAE.

Stored pins sit beside default pins that come from data, not the database: the model
config's `pins:` entries and, when the config names the organism's `report:`, its
`persona_latent` labelled "villain persona". Latent endpoints elsewhere merge annotations
into what they return through `latent_annotations(session, engine, sae_id, latents)`.
"""

import json
import logging
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from app.api.deps import EngineDep, SessionDep
from app.db import crud
from app.db.crud import DefaultPin
from app.db.models import LABEL_LENGTH
from app.engine.config import LoadedConfig
from app.engine.engine import Engine
from app.engine.registry import HostedSAE
from app.errors import Conflict, NotFound

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/saes", tags=["annotations"])

PERSONA_LABEL = "villain persona"
MAX_NOTE = 10_000
MAX_QUERY_LATENTS = 1000


# ----------------------------------------------------------------------------- default pins
@lru_cache(maxsize=8)
def _read_report(path: str, _mtime_ns: int) -> dict | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("report %s could not be read: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def report_pin(config: LoadedConfig) -> tuple[str, int] | None:
    """(SAE id, persona latent) from the organism report the config names, if it has one.
    A missing or unreadable report is no error: there is just no such pin."""
    spec = config.spec
    if not spec.report:
        return None
    path = config.resolve(spec.report)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        log.info("report %s does not exist (yet); no persona pin", path)
        return None
    report = _read_report(str(path), mtime) or {}
    latent = report.get("persona_latent")
    if not isinstance(latent, int) or isinstance(latent, bool) or latent < 0:
        return None
    sae_id = report.get("sae")
    if sae_id not in spec.saes:  # the report's id may differ from this config's
        sae_id = spec.default_sae or (next(iter(spec.saes)) if len(spec.saes) == 1 else None)
    return (sae_id, latent) if sae_id else None


def default_pins(engine: Engine, sae_id: str) -> dict[int, DefaultPin]:
    """The SAE's default pins in display order: the report's persona latent, then the
    config's `pins:` (a config label wins). Latents outside [0, d_sae) are left out."""
    config = engine.registry.config
    out: dict[int, DefaultPin] = {}
    found = report_pin(config)
    if found and found[0] == sae_id:
        out[found[1]] = DefaultPin(found[1], PERSONA_LABEL, "report")
    for pin in config.spec.pins:
        if pin.sae == sae_id:
            label = pin.label or (out[pin.latent].label if pin.latent in out else "")
            out[pin.latent] = DefaultPin(pin.latent, label, "config")
    sae = engine.registry.saes.get(sae_id)
    d_sae = sae.d_sae if sae is not None else None
    return {i: p for i, p in out.items() if d_sae is None or i < d_sae}


def latent_annotations(
    session: Session, engine: Engine, sae_id: str, latents
) -> dict[int, dict[str, Any]]:
    """Annotations of `latents` with the SAE's default pins merged in (see
    `crud.annotations_for` for the shape). For the latent endpoints."""
    return crud.annotations_for(session, sae_id, latents, defaults=default_pins(engine, sae_id))


# --------------------------------------------------------------------------------- schemas
Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=LABEL_LENGTH)]


class AnnotationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Label = Field("", description=f"A short name, e.g. 'villain persona' (≤{LABEL_LENGTH}).")
    note: str = Field("", max_length=MAX_NOTE, description="Free-text notes (plain text).")


class PinCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latent: int = Field(..., ge=0, description="Latent index in [0, d_sae).")


class LatentAnnotationPublic(BaseModel):
    sae: str
    latent: int
    label: str = Field(..., description="The stored label, else a default pin's label.")
    note: str
    pinned: bool
    pin_source: str | None = Field(
        ..., description="'user' (pinned here), 'config' or 'report' (default pins), or null."
    )
    updated_at: datetime | None = Field(..., description="When the label or note last changed.")


class AnnotationsPublic(BaseModel):
    sae: str
    data: list[LatentAnnotationPublic]
    count: int


# --------------------------------------------------------------------------------- helpers
def _sae(engine: Engine, sae_id: str, latent: int | None = None) -> HostedSAE:
    sae = engine.registry.sae(sae_id, "sae")
    if latent is not None:
        sae.check_latent(latent)
    return sae


def _public(sae_id: str, values: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"sae": sae_id, "latent": i, **v} for i, v in values.items()]


def _pins(session: Session, engine: Engine, sae_id: str) -> list[dict[str, Any]]:
    defaults = default_pins(engine, sae_id)
    stored = [p.latent for p in crud.list_pins(session, sae_id=sae_id)]
    order = [*defaults, *(i for i in stored if i not in defaults)]
    values = crud.annotations_for(session, sae_id, order, defaults=defaults)
    return _public(sae_id, {i: values[i] for i in order})


# ---------------------------------------------------------------------------------- routes
@router.get("/{sae_id}/annotations", response_model=AnnotationsPublic, summary="Annotations")
def list_annotations(
    sae_id: str,
    session: SessionDep,
    engine: EngineDep,
    latents: Annotated[
        list[int] | None,
        Query(
            max_length=MAX_QUERY_LATENTS,
            description="Only these latents (each gets an entry, annotated or not).",
        ),
    ] = None,
):
    """Every latent of the SAE with a label, note or pin (default pins included), by
    latent index; or exactly the latents asked for."""
    sae = _sae(engine, sae_id)
    if latents is not None:
        for i, latent in enumerate(latents):
            sae.check_latent(latent, f"latents[{i}]")
        wanted = latents
    else:
        wanted = [*crud.annotated_latents(session, sae_id=sae_id), *default_pins(engine, sae_id)]
    data = _public(sae_id, latent_annotations(session, engine, sae_id, wanted))
    return {"sae": sae_id, "data": data, "count": len(data)}


@router.get(
    "/{sae_id}/latents/{latent}/annotation",
    response_model=LatentAnnotationPublic,
    summary="One latent's annotation",
)
def get_annotation(sae_id: str, latent: int, session: SessionDep, engine: EngineDep):
    """The latent's label, note and pin state (empty when it has none)."""
    _sae(engine, sae_id, latent)
    return _public(sae_id, latent_annotations(session, engine, sae_id, [latent]))[0]


@router.put(
    "/{sae_id}/latents/{latent}/annotation",
    response_model=LatentAnnotationPublic,
    summary="Label or note a latent",
)
def put_annotation(
    sae_id: str, latent: int, body: AnnotationUpdate, session: SessionDep, engine: EngineDep
):
    """Sets the latent's label and note (replacing both). The latent must be in
    [0, d_sae) of the SAE."""
    _sae(engine, sae_id, latent)
    crud.set_annotation(session, sae_id=sae_id, latent=latent, label=body.label, note=body.note)
    return _public(sae_id, latent_annotations(session, engine, sae_id, [latent]))[0]


@router.delete(
    "/{sae_id}/latents/{latent}/annotation", status_code=204, summary="Clear an annotation"
)
def delete_annotation(sae_id: str, latent: int, session: SessionDep, engine: EngineDep):
    """Removes the stored label and note (404 when there is none). Pins are unaffected."""
    _sae(engine, sae_id, latent)
    if not crud.delete_annotation(session, sae_id=sae_id, latent=latent):
        raise NotFound(f"latent {latent} of SAE {sae_id!r} has no stored annotation")
    return Response(status_code=204)


@router.get("/{sae_id}/pins", response_model=AnnotationsPublic, summary="Pinned latents")
def list_pins(sae_id: str, session: SessionDep, engine: EngineDep):
    """Default pins (the report's persona latent, the config's `pins:`) first, then the
    latents pinned here in the order they were pinned, each with its annotation."""
    _sae(engine, sae_id)
    data = _pins(session, engine, sae_id)
    return {"sae": sae_id, "data": data, "count": len(data)}


@router.post(
    "/{sae_id}/pins",
    status_code=201,
    response_model=LatentAnnotationPublic,
    summary="Pin a latent",
)
def add_pin(sae_id: str, body: PinCreate, session: SessionDep, engine: EngineDep):
    """Pins the latent (pinning it again changes nothing)."""
    _sae(engine, sae_id, body.latent)
    crud.add_pin(session, sae_id=sae_id, latent=body.latent)
    return _public(sae_id, latent_annotations(session, engine, sae_id, [body.latent]))[0]


@router.delete("/{sae_id}/pins/{latent}", status_code=204, summary="Unpin a latent")
def delete_pin(sae_id: str, latent: int, session: SessionDep, engine: EngineDep):
    """Unpins a latent pinned here. A default pin comes from the model config or the
    report and stays (409); edit the config to remove it."""
    _sae(engine, sae_id, latent)
    if crud.delete_pin(session, sae_id=sae_id, latent=latent):
        return Response(status_code=204)
    if latent in default_pins(engine, sae_id):
        raise Conflict(
            f"latent {latent} is a default pin of SAE {sae_id!r} (from the model config or "
            "the organism report); remove it there"
        )
    raise NotFound(f"latent {latent} of SAE {sae_id!r} is not pinned")
