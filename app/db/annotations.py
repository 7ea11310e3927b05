"""The annotations repository: labels, notes and pins of SAE latents. Each write is one
statement in its own transaction (upserts: no read-then-write race)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Result, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.db.models import LatentAnnotation, LatentPin, utcnow
from app.db.runs import as_utc

MAX_IN_LIST = 1000  # above this many latents, annotations_for reads the SAE's rows whole


@dataclass(frozen=True)
class DefaultPin:
    """A pin that comes from the model config or the organism's report, not the database."""

    latent: int
    label: str
    source: str  # "config" or "report"


def _rowcount(result: Result) -> int:
    return cast(CursorResult, result).rowcount


def _insert(session: Session):
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert


def set_annotation(
    session: Session, *, sae_id: str, latent: int, label: str, note: str
) -> LatentAnnotation:
    """Create or replace the label and note of one latent (one statement: no race)."""
    now = utcnow()
    stmt = _insert(session)(LatentAnnotation).values(
        sae_id=sae_id, latent=latent, label=label, note=note, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[LatentAnnotation.sae_id, LatentAnnotation.latent],
        set_={"label": label, "note": note, "updated_at": now},
    )
    session.execute(stmt)
    session.commit()
    stored = session.get(LatentAnnotation, (sae_id, latent), populate_existing=True)
    assert stored is not None
    return stored


def delete_annotation(session: Session, *, sae_id: str, latent: int) -> bool:
    deleted = _rowcount(
        session.execute(
            delete(LatentAnnotation).where(
                LatentAnnotation.sae_id == sae_id, LatentAnnotation.latent == latent
            )
        )
    )
    session.commit()
    return bool(deleted)


def list_pins(session: Session, *, sae_id: str) -> list[LatentPin]:
    return list(
        session.scalars(
            select(LatentPin)
            .where(LatentPin.sae_id == sae_id)
            .order_by(LatentPin.created_at, LatentPin.latent)
        ).all()
    )


def add_pin(session: Session, *, sae_id: str, latent: int) -> bool:
    """Pin a latent; False when it was pinned already (pinning twice is harmless)."""
    stmt = (
        _insert(session)(LatentPin)
        .values(sae_id=sae_id, latent=latent, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[LatentPin.sae_id, LatentPin.latent])
        .returning(LatentPin.latent)
    )
    added = session.execute(stmt).first() is not None
    session.commit()
    return added


def delete_pin(session: Session, *, sae_id: str, latent: int) -> bool:
    deleted = _rowcount(
        session.execute(
            delete(LatentPin).where(LatentPin.sae_id == sae_id, LatentPin.latent == latent)
        )
    )
    session.commit()
    return bool(deleted)


def annotated_latents(session: Session, *, sae_id: str) -> list[int]:
    """Every latent of an SAE with a stored label, note or pin, ascending."""
    labelled = select(LatentAnnotation.latent).where(LatentAnnotation.sae_id == sae_id)
    pinned = select(LatentPin.latent).where(LatentPin.sae_id == sae_id)
    return sorted(set(session.scalars(labelled)) | set(session.scalars(pinned)))


def annotations_for(
    session: Session,
    sae_id: str,
    latents: Iterable[int],
    *,
    defaults: Mapping[int, DefaultPin] | None = None,
) -> dict[int, dict[str, Any]]:
    """Label, note and pin state of each latent in `latents` (every one gets an entry), for
    the latent endpoints to merge into what they return. `defaults` are the SAE's config
    and report pins (`app.services.annotations.default_pins`): they count as pinned, and their
    label shows where the database has none.

    Each value: {"label", "note", "pinned", "pin_source" ("user", "config", "report" or
    None), "updated_at" (ISO 8601 or None)}.
    """
    wanted = sorted({int(i) for i in latents})
    defaults = defaults or {}
    notes_q = select(LatentAnnotation).where(LatentAnnotation.sae_id == sae_id)
    pins_q = select(LatentPin.latent).where(LatentPin.sae_id == sae_id)
    if len(wanted) <= MAX_IN_LIST:
        notes_q = notes_q.where(LatentAnnotation.latent.in_(wanted))
        pins_q = pins_q.where(LatentPin.latent.in_(wanted))
    # else (e.g. every latent of the SAE): an SAE's annotations are few, so read them all
    # rather than send tens of thousands of parameters (SQLite allows 32766).
    notes: dict[int, LatentAnnotation] = {}
    pins: set[int] = set()
    if wanted:
        notes = {a.latent: a for a in session.scalars(notes_q)}
        pins = set(session.scalars(pins_q))
    out: dict[int, dict[str, Any]] = {}
    for i in wanted:
        note, default = notes.get(i), defaults.get(i)
        label = (note.label if note is not None else "") or (default.label if default else "")
        source = "user" if i in pins else (default.source if default else None)
        out[i] = {
            "label": label,
            "note": note.note if note is not None else "",
            "pinned": source is not None,
            "pin_source": source,
            "updated_at": as_utc(note.updated_at).isoformat() if note is not None else None,
        }
    return out
