"""What the server hosts."""

from typing import Any

from pydantic import BaseModel, Field


class ModelsPublic(BaseModel):
    models: list[dict[str, Any]] = Field(
        ..., description="Each hosted model: `source` is the hub id or local path of its weights."
    )
    saes: list[dict[str, Any]] = Field(..., description="Each SAE, its hook and its models.")
    device: str
    dtype: str
    config: str = Field(..., description="The model config file.")
    question_sets: list[dict[str, Any]]
    judges: list[dict[str, Any]]
    default_model: str
    default_sae: str | None


class HooksPublic(BaseModel):
    model: str
    hooks: Any = Field(..., description="TransformerLens-style names and the modules they map to.")
