"""Residual-stream directions (persona vectors, the convergent misalignment direction, an
SAE latent's own direction): how to make one, and what is stored and shown."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.schemas.fields import Body, Chat, Latent, StoredText

DirectionPositions = Literal["all", "last", "completion"]
MAX_TEXTS = 256
MAX_VECTOR = 65_536


class PromptCompletion(Body):
    prompt: str = Field(..., description="The prompt (context, not averaged over).")
    completion: str = Field(..., min_length=1, description="The text whose tokens count.")


Text = Annotated[str, Field(min_length=1)] | PromptCompletion
Texts = Annotated[
    list[Text],
    Field(min_length=1, max_length=MAX_TEXTS, description="Texts, or {prompt, completion} pairs."),
]
Name = Annotated[StoredText, Field(max_length=200, description="A name to show (optional).")]


class _Where(Body):
    hook: str | None = Field(
        None,
        description="A hook point of the model (module path or TransformerLens name); or "
        "give `sae` to use the hook that SAE reads.",
    )
    sae: str | None = Field(None, description="Use this SAE's hook.")

    @model_validator(mode="after")
    def _one_place(self):
        if (self.hook is None) == (self.sae is None):
            raise ValueError("give exactly one of `hook` and `sae`")
        return self


class MeanDiff(_Where):
    method: Literal["mean_diff"]
    name: Name = ""
    model: str = Field(..., description="The model whose activations are averaged.")
    positive: Texts
    negative: Texts
    positions: DirectionPositions = Field(
        "all",
        description="Tokens averaged: every token (BOS left out), the last token of each "
        "text, or the completion's tokens only (pairs).",
    )
    chat: Chat = False


class ModelDiff(_Where):
    method: Literal["model_diff"]
    name: Name = ""
    base: str
    finetuned: str
    prompts: Annotated[list[str], Field(min_length=1, max_length=MAX_TEXTS)]
    chat: Chat = True


class LatentDirection(Body):
    method: Literal["latent"]
    name: Name = ""
    sae: str
    latent: Latent
    model: str | None = Field(None, description="Default: the SAE's first model.")


class VectorDirection(_Where):
    method: Literal["vector"]
    name: Name = ""
    model: str
    values: Annotated[list[float], Field(min_length=1, max_length=MAX_VECTOR)]


DirectionCreate = Annotated[
    MeanDiff | ModelDiff | LatentDirection | VectorDirection, Field(discriminator="method")
]


class AlignedLatent(BaseModel):
    sae: str
    latent: int
    cosine: float


class DirectionPublic(BaseModel):
    id: str
    name: str
    method: str
    model: str
    hook: str
    d_model: int
    norm: float = Field(..., description="The vector's L2 norm in the hook's space.")
    sha256: str = Field(..., description="sha256 of the vector (float32 bytes).")
    created_at: datetime
    request: dict[str, Any]
    provenance: dict[str, Any]
    top_latents: list[AlignedLatent] = Field(
        ..., description="Per SAE on this hook, the 10 decoder directions of highest cosine."
    )


class DirectionCreated(DirectionPublic):
    delete_token: str = Field(..., description="Shown once: send it as X-Delete-Token.")


class DirectionSummary(BaseModel):
    id: str
    name: str
    method: str
    model: str
    hook: str
    norm: float
    created_at: datetime


class DirectionsPublic(BaseModel):
    data: list[DirectionSummary]
    count: int
