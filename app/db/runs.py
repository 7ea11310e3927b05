"""The runs repository: saved runs and comparisons of runs. Small keyword-only functions
over a `Session`; each write commits its own single transaction, so a process killed at any
moment leaves either the whole row set or none.

Lookups by id return None for an unknown or malformed id; the services turn that into 404.
Domain rules (wrong token, a run still shown by a comparison) raise `app.errors` types.
"""

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.db.models import Comparison, ComparisonRun, Run, utcnow
from app.errors import Conflict, Forbidden, NotFound, Unauthorized

ID_BYTES = 16  # 128 random bits -> 22 URL-safe characters
TOKEN_BYTES = 32
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
    """Insert a comparison of existing runs, in order, in one transaction. A listed
    comparison may show only listed runs: listing it would publish an unlisted run's id,
    which only its own link should give away."""
    wanted = [r for r in run_ids if is_id(r)]
    rows = session.execute(select(Run.id, Run.unlisted).where(Run.id.in_(wanted)))
    known = {run_id: unlisted_run for run_id, unlisted_run in rows}
    for i, run_id in enumerate(run_ids):
        if run_id not in known:
            raise NotFound(f"runs[{i}]: no run with id {run_id!r}", field=f"runs[{i}]")
        if known[run_id] and not unlisted:
            raise Conflict(
                f"runs[{i}]: run {run_id!r} is unlisted, and a listed comparison would show "
                "its id to everyone; save the comparison unlisted (its link still shows the "
                "run), or list the run",
                field=f"runs[{i}]",
            )
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
