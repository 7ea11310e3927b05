"""Latent annotations: a team's labels and notes on SAE latents, and pinned latents."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from app.schemas.fields import LABEL_LENGTH, Body, StoredText, no_nul

MAX_NOTE = 10_000
MAX_QUERY_LATENTS = 1000
PERSONA_LABEL = "villain persona"

Label = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=LABEL_LENGTH), AfterValidator(no_nul)
]


class AnnotationUpdate(Body):
    label: Label = Field("", description=f"A short name, e.g. 'villain persona' (≤{LABEL_LENGTH}).")
    note: StoredText = Field("", max_length=MAX_NOTE, description="Free-text notes (plain text).")


class PinCreate(Body):
    latent: int = Field(..., ge=0, description="Latent index in [0, d_sae).")


class LatentAnnotationPublic(BaseModel):
    sae: str
    latent: int
    label: str = Field(..., description="The stored label, else a default pin's label.")
    note: str
    pinned: bool
    pin_source: str | None = Field(
        ..., description="'user' (pinned here), 'config' or 'report' (default pins), or null."
    )
    updated_at: datetime | None = Field(..., description="When the label or note last changed.")


class AnnotationsPublic(BaseModel):
    sae: str
    data: list[LatentAnnotationPublic]
    count: int
