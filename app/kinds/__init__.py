"""The registry of request kinds (activations, steer, compare, evaluate, ...): one entry
per kind, registered once by the service that runs it, in the style of SAELens'
architecture registry. Saved runs, provenance, shared pages and page links all read an
entry here instead of branching on the kind's name.

An entry holds
- `request` / `response`: the pydantic models of POST /api/<kind> (`request.references()`
  names the models, SAEs, question sets and judges it reads, for provenance);
- `run`: the coroutine that computes a validated request (the endpoint and saved runs
  share it, so a saved run is exactly what its endpoint returns);
- `page` and `page_params`: the live page that shows such a request, and its query;
- `view`: the name of the web view that draws a result (app.web.views registers it).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter

from app.errors import InvalidRequest, choices


def _query_of(request: dict[str, Any]) -> dict[str, Any]:
    return dict(request)


@dataclass(frozen=True)
class Kind:
    name: str
    request: type[BaseModel]
    response: Any  # a model or a union of models
    run: Callable[[Any, Any], Awaitable[dict]]  # (services context, request) -> result
    page: str
    view: str
    page_params: Callable[[dict[str, Any]], dict[str, Any]] = _query_of
    summary: str = ""
    adapter: TypeAdapter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapter", TypeAdapter(self.response))


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.name in KINDS:
        raise ValueError(f"request kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def get(name: str, field_name: str = "kind") -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise InvalidRequest(
            f"{field_name}: unknown kind {name!r}; valid kinds: {choices(KINDS)}",
            field=field_name,
        ) from None
