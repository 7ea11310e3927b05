"""The `activations` kind: per-prompt SAE latent activations, for one model or several."""

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.fields import Body, Chat, Messages, ModelRef, Prompt, model_ids


class _ActivationFields(Body):
    sae: str = Field(..., description="SAE id; it must be attached to every listed model.")
    prompt: Prompt | None = Field(
        None, description="Text to run (not only white space); or give `messages`."
    )
    messages: Messages = Field(
        None,
        description="A conversation, [{role, content}, ...] (at most 64 turns), rendered "
        "with the model's chat template (`chat` does not apply); instead of `prompt`. A last "
        "`user` turn gets the generation prompt; a last `assistant` turn is left open. Exactly "
        "one of `prompt` and `messages`.",
    )
    top_k: int = Field(10, ge=1, description="Latents listed per token (at most `max_top_k`, 100).")
    chat: Chat = False
    direction: str | None = Field(
        None,
        max_length=64,
        description="A direction id (`POST /api/directions`). Each result then holds "
        "`projection`: every token's activation at the direction's hook projected on the "
        "unit direction, and the prompt's mean. The direction must be at the hook the SAE "
        "reads, on the model it was made on or a model sharing its weights (its adapters).",
    )


class ActivationsRequest(_ActivationFields):
    model: ModelRef = Field(
        ...,
        description="A model id, or a list of model ids (e.g. base and fine-tuned) to compare "
        "token by token; then the response has one result per model under `results`.",
        examples=["organism-base", ["organism-base", "organism-insecure"]],
    )
    latents: list[int] = Field(
        [],
        max_length=64,
        description="Latent indices whose full per-token trace is returned (each in [0, d_sae)).",
    )

    def references(self) -> dict[str, list]:
        return {
            "models": [(m, "model") for m in model_ids(self.model)],
            "saes": [(self.sae, "sae")],
        }


class InspectQuery(_ActivationFields):
    """The inspector's form: `ActivationsRequest` with `model` once per id and at most one
    latent to trace (none: the inspector picks one)."""

    model_config = ConfigDict(extra="ignore")

    model: list[str] = Field(..., min_length=1, description="Model id(s).")
    latent: int | None = Field(None, ge=0, description="The latent to trace.")

    def request(self) -> ActivationsRequest:
        fields = self.model_dump(exclude={"model", "latent"})
        model = self.model if len(self.model) > 1 else self.model[0]
        latents = [] if self.latent is None else [self.latent]
        return ActivationsRequest(model=model, latents=latents, **fields)


class TopLatent(BaseModel):
    latent: int
    value: float


class Projection(BaseModel):
    """A prompt projected on a residual-stream direction (the persona score).

    Scaling: plain dot product with the unit vector, `value_t = h_t . d / |d|`, where `h_t`
    is the activation at the direction's hook on token t. It is in the residual stream's own
    units, so every prompt (and every model sharing those weights) is measured on one scale,
    the scale of the direction page's histogram of projections over the index's contexts.
    `score` is the mean of `values` over the prompt's non-special tokens (BOS and other
    special tokens are left out: their activations are outliers that no text moves)."""

    direction: str = Field(..., description="The direction's id.")
    name: str
    hook: str
    values: list[float] = Field(..., description="Per token, h_t . d / |d| (every token).")
    score: float | None = Field(
        ..., description="Mean of `values` over the non-special tokens (none: no such token)."
    )


class ActivationsResult(BaseModel):
    model: str
    sae: str
    tokens: list[str] = Field(..., description="Each token decoded on its own.")
    token_ids: list[int]
    top: list[list[TopLatent]] = Field(
        ..., description="Per token, the active latents with the largest activations, descending."
    )
    latents: dict[str, list[float]] = Field(
        ..., description="For each requested latent (as a string key), its activation per token."
    )
    projection: Projection | None = Field(
        None, description="With `direction`: the prompt projected on it (see Projection)."
    )


class LatentGrowth(BaseModel):
    latent: int
    first: float = Field(..., description="The latent's peak over the first model's tokens.")
    last: float = Field(..., description="Its peak over the last model's tokens.")
    delta: float = Field(..., description="last - first.")


class ActivationsMulti(BaseModel):
    results: list[ActivationsResult]
    growth: list[LatentGrowth] = Field(
        [],
        description="The latents whose peak (over non-special tokens) grows most from the "
        "first model to the last, computed over every latent of the SAE (at most 10, "
        "positive only).",
    )


ActivationsResponse = ActivationsResult | ActivationsMulti
