"""Fields that several request shapes share, each with its one description, default and
choices. A request model composes these; a form or a GET stream reads the same model."""

import json
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

# Steering: how a latent edits the residual stream, and where.
Method = Literal["add", "clamp", "ablate"]
METHODS: tuple[str, ...] = get_args(Method)
Positions = Literal["all", "prompt", "generated", "last_turn"]
POSITIONS: tuple[str, ...] = get_args(Positions)
# How the forms name each choice.
METHOD_LABELS = {
    "add": "add α × direction",
    "clamp": "clamp the latent to α",
    "ablate": "ablate (latent to 0), then add α × unit direction",
}
POSITION_LABELS = {
    "all": "all tokens",
    "prompt": "prompt only",
    "generated": "generated only",
    "last_turn": "newest assistant turn",
}
assert tuple(METHOD_LABELS) == METHODS and tuple(POSITION_LABELS) == POSITIONS

MAX_SEED = 2**31 - 1
TITLE_LENGTH = 200
LABEL_LENGTH = 200
MAX_OFFSET = 1_000_000  # paging: a database takes far larger offsets, but no page is there

_SPLIT = re.compile(r"[,;\s]+")


def split_list(value: Any) -> Any:
    """A list typed as text ('0, 4, 8', or one query parameter per value, or both) as a
    list; JSON lists pass unchanged."""
    if isinstance(value, str):
        return [part for part in _SPLIT.split(value.strip()) if part]
    if isinstance(value, list | tuple) and any(isinstance(v, str) for v in value):
        return [part for v in value for part in split_list(v)]
    return value


def split_lines(value: Any) -> Any:
    """A textarea (one item per line) as a list of its non-empty lines."""
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return value


def no_nul(value: str) -> str:
    """Text that is stored must not hold NUL: PostgreSQL refuses it in text columns, and it
    is refused on every database alike, before any work."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\x00)")
    return value


# Text that is stored in a column of its own (titles, labels, notes, descriptions).
StoredText = Annotated[str, AfterValidator(no_nul)]


class Body(BaseModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


# A hard ceiling in the schema (a request with thousands of ids is refused before any
# lookup); the server's own limit, `max_models`, is lower.
ModelRef = str | Annotated[list[str], Field(min_length=1, max_length=64)]


def model_ids(model: ModelRef) -> list[str]:
    return [model] if isinstance(model, str) else list(model)


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty (it holds only white space)")
    return value


Prompt = Annotated[
    str,
    AfterValidator(not_blank),
    Field(
        min_length=1,
        json_schema_extra={"pattern": r"\S"},  # what not_blank checks, for schema readers
        description="Text to run (not only white space). At most `max_prompt_tokens` tokens (512).",
    ),
]
Chat = Annotated[
    bool, Field(description="Wrap the prompt as a user turn with the model's chat template.")
]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description="Sampling seed.")]
Alphas = Annotated[
    list[float],
    BeforeValidator(split_list),
    Field(
        min_length=1,
        description="Steering coefficients, at most `max_alphas` (16), each finite with "
        "|alpha| <= `max_abs_alpha` (1000). Units: `add` adds alpha * d_i where d_i = "
        "sae.decode(e_i) - sae.decode(0) (one unit of latent i as the SAE writes it, so alpha "
        "is in the latent's own activation units); `clamp` sets latent i's activation to alpha "
        "(alpha >= 0), read with the SAE's own encode (so rescaling SAEs land on alpha "
        "exactly); `ablate` sets latent i to 0 through the same encode, then adds alpha times "
        "d_i / |d_i| (alpha in residual norm units).",
    ),
]
Latent = Annotated[int, Field(ge=0, description="Latent index in [0, d_sae).")]
MethodField = Annotated[Method, Field(description="The edit; see `alphas`.")]
PositionsField = Annotated[
    Positions,
    Field(
        description="Which token positions are steered: every token, the prompt's, the "
        "generated ones, or `last_turn`: the newest assistant turn of a conversation (its "
        "header, any prefilled text and the generated tokens; for a plain prompt, the "
        "generated tokens)."
    ),
]
Prompts = Annotated[
    list[str] | None,
    BeforeValidator(split_lines),
    Field(description="Prompts to average over (at most `max_prompts`, 256)."),
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_LENGTH),
    AfterValidator(no_nul),
]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description=f"Rows to skip (0-{MAX_OFFSET}).")]


def json_text(value: Any) -> Any:
    """A structured field typed as JSON text (a query parameter or a form field) as its
    value; anything else passes unchanged (and is validated as usual)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]  # one query parameter
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError("is not valid JSON") from None
    return value


def json_param(value: Any) -> str:
    """A structured field as the compact JSON text a page URL carries (`json_text` reads it
    back)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


MAX_MESSAGES = 64


class Message(Body):
    role: Literal["system", "user", "assistant"]
    content: StoredText = Field(..., max_length=20_000)


Messages = Annotated[
    Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)] | None,
    BeforeValidator(json_text),
    Field(
        description="A conversation, [{role, content}, ...] (at most 64 turns), rendered "
        "with the model's chat template; instead of `prompt`. A last `user` turn is "
        "answered; a last `assistant` turn is continued.",
    ),
]
