"""Queries: small keyword-only functions over a `Session`. Each write commits its own single
transaction, so a process killed at any moment leaves either the whole row set or none.

Lookups by id return None for an unknown or malformed id; the routes turn that into 404.
Domain rules (wrong token, a run still shown by a comparison) raise `app.errors` types.
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.db.models import (
    Comparison,
    ComparisonRun,
    LatentAnnotation,
    LatentPin,
    Run,
    utcnow,
)
from app.errors import Conflict, Forbidden, NotFound, Unauthorized

ID_BYTES = 16  # 128 random bits -> 22 URL-safe characters
TOKEN_BYTES = 32
MAX_IN_LIST = 1000  # above this many latents, annotations_for reads the SAE's rows whole
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")


# ------------------------------------------------------------------------------ ids, tokens
def new_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_id(value: str) -> bool:
    """Ids are exactly what `new_id` makes; anything else is unknown without a query."""
    return bool(_ID_PATTERN.fullmatch(value))


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_token(stored_hash: str, token: str | None, what: str) -> None:
    if not token:
        raise Unauthorized(
            f"send the {what}'s delete token in the X-Delete-Token header", field="X-Delete-Token"
        )
    if not hmac.compare_digest(stored_hash, token_hash(token)):
        raise Forbidden(f"wrong delete token for this {what}", field="X-Delete-Token")


# ------------------------------------------------------------------------------------ runs
def create_run(
    session: Session,
    *,
    kind: str,
    title: str,
    request: dict[str, Any],
    result: dict[str, Any],
    provenance: dict[str, Any],
    result_sha256: str,
    unlisted: bool = False,
    created_at: datetime | None = None,
) -> tuple[Run, str]:
    """Insert a computed run in one transaction; returns it and its delete token (the only
    copy: the database keeps a hash)."""
    token = new_token()
    run = Run(
        id=new_id(),
        kind=kind,
        title=title,
        request=request,
        result=result,
        provenance=provenance,
        result_sha256=result_sha256,
        unlisted=unlisted,
        delete_token_sha256=token_hash(token),
        created_at=created_at or utcnow(),
    )
    session.add(run)
    session.commit()
    return run, token


def get_run(session: Session, *, run_id: str) -> Run | None:
    return session.get(Run, run_id) if is_id(run_id) else None


def list_runs(
    session: Session, *, limit: int, offset: int = 0, kind: str | None = None
) -> tuple[list[Run], int]:
    """Listed runs, newest first, and how many there are in all."""
    where: list[ColumnElement[bool]] = [Run.unlisted.is_(False)]
    if kind is not None:
        where.append(Run.kind == kind)
    return _newest_page(session, Run, where, limit, offset)


def _newest_page(session: Session, entity, where, limit: int, offset: int) -> tuple[list, int]:
    """One page of listed rows of a Run or Comparison table, newest first, and the total."""
    count = session.scalar(select(func.count()).select_from(entity).where(*where)) or 0
    rows = session.scalars(
        select(entity)
        .where(*where)
        .order_by(entity.created_at.desc(), entity.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), count


def comparisons_showing(session: Session, *, run_id: str) -> list[str]:
    return list(
        session.scalars(
            select(ComparisonRun.comparison_id)
            .where(ComparisonRun.run_id == run_id)
            .distinct()
            .order_by(ComparisonRun.comparison_id)
        ).all()
    )


def delete_run(session: Session, *, run_id: str, token: str | None) -> None:
    """Delete a run given its delete token. A wrong or missing token deletes nothing; a run
    that a comparison shows cannot be deleted (its link must keep working)."""
    run = get_run(session, run_id=run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}", field="id")
    _check_token(run.delete_token_sha256, token, "run")
    shown_by = comparisons_showing(session, run_id=run_id)
    if shown_by:
        raise Conflict(_in_use(run_id, shown_by), field="id")
    try:
        session.execute(delete(Run).where(Run.id == run_id))
        session.commit()
    except IntegrityError:  # a comparison took it in meanwhile
        session.rollback()
        raise Conflict(
            _in_use(run_id, comparisons_showing(session, run_id=run_id)), field="id"
        ) from None


def _in_use(run_id: str, comparison_ids: list[str]) -> str:
    shown = ", ".join(comparison_ids) or "a comparison"
    return (
        f"run {run_id!r} is part of comparison(s) {shown}; delete those first "
        "(each with its own delete token) so their links keep working until then"
    )


# ----------------------------------------------------------------------------- comparisons
def create_comparison(
    session: Session,
    *,
    title: str,
    description: str,
    run_ids: list[str],
    unlisted: bool = False,
) -> tuple[Comparison, str]:
    """Insert a comparison of existing runs, in order, in one transaction."""
    known = set(session.scalars(select(Run.id).where(Run.id.in_([r for r in run_ids if is_id(r)]))))
    for i, run_id in enumerate(run_ids):
        if run_id not in known:
            raise NotFound(f"runs[{i}]: no run with id {run_id!r}", field=f"runs[{i}]")
    token = new_token()
    comparison = Comparison(
        id=new_id(),
        title=title,
        description=description,
        unlisted=unlisted,
        delete_token_sha256=token_hash(token),
        created_at=utcnow(),
        items=[ComparisonRun(position=i, run_id=r) for i, r in enumerate(run_ids)],
    )
    session.add(comparison)
    try:
        session.commit()
    except IntegrityError:  # a run was deleted between the check and the insert
        session.rollback()
        raise NotFound("runs: a run was deleted while the comparison was saved") from None
    return comparison, token


def get_comparison(
    session: Session, *, comparison_id: str, with_runs: bool = False
) -> Comparison | None:
    if not is_id(comparison_id):
        return None
    options = [selectinload(Comparison.items).selectinload(ComparisonRun.run)] if with_runs else []
    return session.get(Comparison, comparison_id, options=options)


def list_comparisons(
    session: Session, *, limit: int, offset: int = 0
) -> tuple[list[Comparison], int]:
    return _newest_page(session, Comparison, [Comparison.unlisted.is_(False)], limit, offset)


def delete_comparison(session: Session, *, comparison_id: str, token: str | None) -> None:
    """Delete a comparison (not its runs) given its delete token."""
    comparison = get_comparison(session, comparison_id=comparison_id)
    if comparison is None:
        raise NotFound(f"no comparison with id {comparison_id!r}", field="id")
    _check_token(comparison.delete_token_sha256, token, "comparison")
    session.execute(delete(ComparisonRun).where(ComparisonRun.comparison_id == comparison_id))
    session.execute(delete(Comparison).where(Comparison.id == comparison_id))
    session.commit()


# ----------------------------------------------------------------------- latent annotations
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
    and report pins (`app.api.annotations.default_pins`): they count as pinned, and their
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
