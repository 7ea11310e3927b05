"""Latent annotations: a team's labels and notes on SAE latents, and pinned latents.

Stored pins sit beside default pins that come from data, not the database: the model
config's `pins:` entries and, when the config names the organism's `report:`, its
`persona_latent` labelled "villain persona". Every latent a service returns carries its
annotation through `for_latents`.
"""

import hmac
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.db import annotations as repo
from app.db.annotations import DefaultPin
from app.engine.config import LoadedConfig
from app.errors import Conflict, Forbidden, NotFound, Unauthorized
from app.schemas.annotations import PERSONA_LABEL, AnnotationUpdate
from app.services.context import Context

log = logging.getLogger(__name__)


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


def default_pins(ctx: Context, sae_id: str) -> dict[int, DefaultPin]:
    """The SAE's default pins in display order: the report's persona latent, then the
    config's `pins:` (a config label wins). Latents outside [0, d_sae) are left out."""
    config = ctx.registry.config
    out: dict[int, DefaultPin] = {}
    found = report_pin(config)
    if found and found[0] == sae_id:
        out[found[1]] = DefaultPin(found[1], PERSONA_LABEL, "report")
    for pin in config.spec.pins:
        if pin.sae == sae_id:
            label = pin.label or (out[pin.latent].label if pin.latent in out else "")
            out[pin.latent] = DefaultPin(pin.latent, label, "config")
    sae = ctx.registry.saes.get(sae_id)
    d_sae = sae.d_sae if sae is not None else None
    return {i: p for i, p in out.items() if d_sae is None or i < d_sae}


# -------------------------------------------------------------------------------- reads
def for_latents(ctx: Context, sae_id: str, latents) -> dict[int, dict[str, Any]]:
    """Label, note and pin state of each latent (default pins merged in)."""
    with ctx.database.session() as session:
        return repo.annotations_for(session, sae_id, latents, defaults=default_pins(ctx, sae_id))


def labels(ctx: Context, sae_id: str, latents) -> dict[int, str]:
    return {i: a["label"] for i, a in for_latents(ctx, sae_id, latents).items()}


def _public(sae_id: str, values: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"sae": sae_id, "latent": i, **v} for i, v in values.items()]


def _check(ctx: Context, sae_id: str, latent: int | None = None) -> None:
    sae = ctx.registry.sae(sae_id, "sae")
    if latent is not None:
        sae.check_latent(latent)


def list_annotations(ctx: Context, sae_id: str, latents: list[int] | None) -> dict[str, Any]:
    """Every latent of the SAE with a label, note or pin (default pins included), by
    latent index; or exactly the latents asked for."""
    sae = ctx.registry.sae(sae_id, "sae")
    if latents is not None:
        for i, latent in enumerate(latents):
            sae.check_latent(latent, f"latents[{i}]")
        wanted = latents
    else:
        with ctx.database.session() as session:
            stored = repo.annotated_latents(session, sae_id=sae_id)
        wanted = [*stored, *default_pins(ctx, sae_id)]
    data = _public(sae_id, for_latents(ctx, sae_id, wanted))
    return {"sae": sae_id, "data": data, "count": len(data)}


def get(ctx: Context, sae_id: str, latent: int) -> dict[str, Any]:
    """One latent's label, note and pin state (empty when it has none)."""
    _check(ctx, sae_id, latent)
    return _public(sae_id, for_latents(ctx, sae_id, [latent]))[0]


def pins(ctx: Context, sae_id: str) -> dict[str, Any]:
    """Default pins first, then the latents pinned here in the order they were pinned."""
    _check(ctx, sae_id)
    defaults = default_pins(ctx, sae_id)
    with ctx.database.session() as session:
        stored = [p.latent for p in repo.list_pins(session, sae_id=sae_id)]
        order = [*defaults, *(i for i in stored if i not in defaults)]
        values = repo.annotations_for(session, sae_id, order, defaults=defaults)
    data = _public(sae_id, {i: values[i] for i in order})
    return {"sae": sae_id, "data": data, "count": len(data)}


def labelled(ctx: Context, sae_id: str | None) -> list[dict[str, Any]]:
    """Latents of the SAE with a label or a pin, for the latent pickers."""
    if not sae_id or sae_id not in ctx.registry.saes:
        return []
    with ctx.database.session() as session:
        ids = {*repo.annotated_latents(session, sae_id=sae_id), *default_pins(ctx, sae_id)}
    notes = for_latents(ctx, sae_id, ids)
    return [{"latent": i, **notes[i]} for i in sorted(ids)]


def default_latent(ctx: Context, sae_id: str | None) -> int | None:
    """The SAE's first default pin (the organism's persona latent), if any."""
    if not sae_id or sae_id not in ctx.registry.saes:
        return None
    return next(iter(default_pins(ctx, sae_id)), None)


def find_by_label(ctx: Context, sae_id: str, text: str) -> list[dict[str, Any]]:
    """Labelled latents whose label is `text` (case-insensitive), else contains it."""
    needle = text.strip().casefold()
    found = [x for x in labelled(ctx, sae_id) if x["label"]]
    exact = [x for x in found if x["label"].casefold() == needle]
    return exact or [x for x in found if needle in x["label"].casefold()]


# ------------------------------------------------------------------------------- writes
def edit_required(ctx: Context) -> bool:
    """Whether writes need the edit token (PERSONASCOPE_EDIT_TOKEN is set)."""
    return bool(ctx.settings.edit_token)


def authorize(ctx: Context, token: str | None) -> None:
    """Labels, notes and pins are open to anyone unless the server has an edit token;
    then a write must send it (401 without it, 403 when wrong)."""
    expected = ctx.settings.edit_token
    if not expected:
        return
    if not token:
        raise Unauthorized(
            "this server needs its edit token to change labels, notes and pins: send it in "
            "the X-Edit-Token header",
            field="X-Edit-Token",
        )
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("wrong edit token", field="X-Edit-Token")


def put(
    ctx: Context, sae_id: str, latent: int, body: AnnotationUpdate, token: str | None = None
) -> dict[str, Any]:
    """Set the latent's label and note (replacing both)."""
    authorize(ctx, token)
    _check(ctx, sae_id, latent)
    with ctx.database.session() as session:
        repo.set_annotation(session, sae_id=sae_id, latent=latent, label=body.label, note=body.note)
    return get(ctx, sae_id, latent)


def delete(ctx: Context, sae_id: str, latent: int, token: str | None = None) -> None:
    """Remove the stored label and note (NotFound when there is none)."""
    authorize(ctx, token)
    _check(ctx, sae_id, latent)
    with ctx.database.session() as session:
        deleted = repo.delete_annotation(session, sae_id=sae_id, latent=latent)
    if not deleted:
        raise NotFound(f"latent {latent} of SAE {sae_id!r} has no stored annotation")


def pin(ctx: Context, sae_id: str, latent: int, token: str | None = None) -> dict[str, Any]:
    authorize(ctx, token)
    _check(ctx, sae_id, latent)
    with ctx.database.session() as session:
        repo.add_pin(session, sae_id=sae_id, latent=latent)
    return get(ctx, sae_id, latent)


def unpin(ctx: Context, sae_id: str, latent: int, token: str | None = None) -> None:
    """Unpin a latent pinned here; a default pin stays (Conflict)."""
    authorize(ctx, token)
    _check(ctx, sae_id, latent)
    with ctx.database.session() as session:
        if repo.delete_pin(session, sae_id=sae_id, latent=latent):
            return
    if latent in default_pins(ctx, sae_id):
        raise Conflict(
            f"latent {latent} is a default pin of SAE {sae_id!r} (from the model config or "
            "the organism report); remove it there"
        )
    raise NotFound(f"latent {latent} of SAE {sae_id!r} is not pinned")
