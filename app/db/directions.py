"""The directions repository: residual-stream directions, immutable, with a delete token."""

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db.index_models import IndexContext, LatentIndex
from app.db.models import Direction, utcnow
from app.db.runs import _check_token, _newest_page, is_id, new_id, new_token, token_hash
from app.errors import NotFound


def create_direction(session: Session, **fields) -> tuple[Direction, str]:
    """Insert a computed direction in one transaction; returns it and its delete token."""
    token = new_token()
    row = Direction(
        id=new_id(), delete_token_sha256=token_hash(token), created_at=utcnow(), **fields
    )
    session.add(row)
    session.commit()
    return row, token


def get_direction(session: Session, *, direction_id: str) -> Direction | None:
    return session.get(Direction, direction_id) if is_id(direction_id) else None


def list_directions(session: Session, *, limit: int, offset: int = 0) -> tuple[list, int]:
    return _newest_page(session, Direction, [Direction.unlisted.is_(False)], limit, offset)


def delete_direction(session: Session, *, direction_id: str, token: str | None) -> None:
    row = get_direction(session, direction_id=direction_id)
    if row is None:
        raise NotFound(f"no direction with id {direction_id!r}", field="id")
    _check_token(row.delete_token_sha256, token, "direction")
    session.execute(delete(Direction).where(Direction.id == direction_id))
    session.commit()


# ----------------------------------------------------------- the index a direction reads
def index_for_models(session: Session, model_ids: list[str]) -> LatentIndex | None:
    """The newest latent index of the first of `model_ids` that has one (any SAE), or None."""
    for model_id in model_ids:
        found = session.scalars(
            select(LatentIndex)
            .where(LatentIndex.model_id == model_id)
            .order_by(LatentIndex.created_at.desc(), LatentIndex.id)
            .limit(1)
        ).first()
        if found is not None:
            return found
    return None


def sample_contexts(session: Session, index_id: str, n: int) -> list[tuple[int, list[int]]]:
    """Up to `n` of the token contexts the index stored, evenly spaced over their numbers
    (so the same index always gives the same sample): [(context number, token ids)]."""
    numbers = list(
        session.scalars(
            select(IndexContext.context)
            .where(IndexContext.index_id == index_id)
            .order_by(IndexContext.context)
        )
    )
    if len(numbers) > n:
        step = len(numbers) / n
        numbers = [numbers[int(i * step)] for i in range(n)]
    rows = session.execute(
        select(IndexContext.context, IndexContext.token_ids).where(
            IndexContext.index_id == index_id, IndexContext.context.in_(numbers)
        )
    ).all()
    return sorted((int(c), list(ids)) for c, ids in rows)
