"""The server's own recent results, so that saving a run it just computed (and showed) is a
database write, not the same model work again.

Every computation of a request kind records its public result and provenance here, keyed
by the kind, the canonical request and the fingerprints of everything the request reads
(so a changed model or SAE never matches an old result). Entries live for `ttl_s` and the
whole store for `max_bytes` of results; the oldest go first. Only the server writes here:
a client never supplies a result, it can only ask for one this server computed.
"""

import hashlib
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from pydantic import BaseModel

from app.db.models import utcnow
from app.services import provenance
from app.services.cache import Computed
from app.services.context import Context, off_loop


def key(kind: str, body: BaseModel, prints: dict[str, dict[str, str]]) -> str:
    text = provenance.canonical_json(
        {"kind": kind, "request": body.model_dump(mode="json"), "reads": prints}
    )
    return hashlib.sha256(text.encode()).hexdigest()


def lookup(ctx: Context, kind: str, body: BaseModel) -> Computed | None:
    """The result this server computed for exactly this request and these weights, if it
    is still kept."""
    return ctx.recent().get(key(kind, body, provenance.fingerprints(ctx, body)))


class Recording:
    """One computation of `kind`: fingerprints and start time now, result at `done`."""

    def __init__(self, ctx: Context, kind: str, body: BaseModel):
        self.ctx, self.kind, self.body = ctx, kind, body
        self.started = utcnow()

    def done(self, raw: Any) -> Computed:
        finished = utcnow()
        # Read after the work: a request's own checks name its bad fields first.
        prints = provenance.fingerprints(self.ctx, self.body)
        result = provenance.public_result(self.kind, raw)
        record = provenance.record(self.ctx, self.kind, self.body, prints, self.started, finished)
        text = provenance.canonical_json(result)
        entry = Computed(
            result=result,
            provenance=record,
            result_sha256=hashlib.sha256(text.encode()).hexdigest(),
            size=len(text),
            expires=time.monotonic() + self.ctx.recent().ttl_s,
        )
        self.ctx.recent().put(key(self.kind, self.body, prints), entry)
        return entry


def recorded(kind: str):
    """Decorate a kind's computation (`async def run(ctx, body) -> raw result`) so that
    every result it returns is kept as this server's own."""

    def wrap(fn: Callable[[Context, Any], Awaitable[Any]]):
        @wraps(fn)
        async def run(ctx: Context, body: BaseModel) -> Any:
            recording = Recording(ctx, kind, body)
            raw = await fn(ctx, body)
            await off_loop(recording.done, raw)  # fingerprints may read the database
            return raw

        return run

    return wrap
