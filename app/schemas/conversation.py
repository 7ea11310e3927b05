"""Conversations where a prompt is taken: one (`messages`, instead of `prompt`) or several
(`conversations`, instead of a list of prompts), each rendered with the model's chat
template. Results keep their shapes: a conversation's result is a prompt's."""

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from app.schemas.fields import MAX_MESSAGES, Message, json_text

# The schema's own ceiling; the server's limit is `max_prompts`.
MAX_CONVERSATIONS = 256

Conversations = Annotated[
    Annotated[
        list[Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]],
        Field(min_length=1, max_length=MAX_CONVERSATIONS),
    ]
    | None,
    BeforeValidator(json_text),
    Field(
        description="Conversations, each a list of [{role, content}, ...] turns (at most 64) "
        "rendered with the model's chat template (`chat` does not apply), at most "
        "`max_prompts` (256) of them; instead of the list of prompts. Each needs a user turn. "
        "A last `user` turn gets the generation prompt; a last `assistant` turn is left open "
        "(continued).",
    ),
]


def turns(messages) -> list[dict]:
    """Validated messages as the plain dicts a chat template takes."""
    return [m.model_dump() if isinstance(m, BaseModel) else dict(m) for m in messages]


def last_user_turn(messages) -> str:
    """The content of the conversation's last user turn (what a judge reads as its
    question); empty when it has none."""
    for m in reversed(turns(messages)):
        if m["role"] == "user":
            return m["content"]
    return ""
