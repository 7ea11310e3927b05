"""The body of every error response of the JSON API, and which statuses a route documents."""

from typing import Any

from pydantic import BaseModel, Field


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: str = Field(..., description="What is wrong, naming the field and the valid choices.")
    field: str | None = Field(None, description="The field at fault, as the client sent it.")
    errors: list[ValidationIssue] | None = Field(
        None, description="On 422 from validation: every problem pydantic found."
    )


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"model": ErrorBody, "description": description}
    if retry:
        out["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        }
    return out


# Every API route: a wrong id, a body over the size limit, invalid input, a busy device or
# database.
COMMON = {
    404: _error("An id that does not exist (the message lists the valid ones)."),
    413: _error("The request body is over `max_body_bytes`."),
    422: _error("Invalid input: `detail` names the field and the valid choices."),
    503: _error("The device queue or the database is busy or down; retry.", retry=True),
}
# Routes that change stored state.
WRITES = {
    401: _error("A required token (delete or edit token) was not sent."),
    403: _error("The token sent is wrong."),
    409: _error("The stored state forbids it (e.g. a run a comparison still shows)."),
}
RATE_LIMITED = {429: _error("Too many of these from one client; retry later.", retry=True)}


def event_stream(description: str, events: list[str]) -> dict[int | str, dict[str, Any]]:
    """The 200 response of a server-sent-events route: each event has a name from
    `events` and JSON in its data."""
    event = {
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": events},
            "data": {"type": "string", "description": "The event as JSON."},
        },
        "required": ["event", "data"],
    }
    return {200: {"description": description, "content": {"text/event-stream": {"schema": event}}}}
