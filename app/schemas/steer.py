"""The `steer` kind: generation steered by α along one SAE latent, or by several edits at
once (`interventions`: latents and residual-stream directions). The JSON body, the GET
stream's query string and the playground's form are all `SteerRequest` (the GET forms
read it through `SteerQuery`, which differs only in taking `model` as repeated ids)."""

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from app.schemas.fields import (
    Alphas,
    Body,
    Chat,
    Latent,
    Messages,
    MethodField,
    ModelRef,
    PositionsField,
    Prompt,
    Seed,
    json_text,
    model_ids,
)

DEFAULT_MAX_NEW_TOKENS = 40
DEFAULT_ALPHAS = [8.0]  # one latent: alphas are its coefficients
DEFAULT_SCALES = [1.0]  # interventions: alphas scale every edit's own alpha
MAX_INTERVENTIONS = 16


class LatentEdit(Body):
    """Edit along one SAE latent, as a single-latent request does."""

    sae: str = Field(..., description="SAE id.")
    latent: Latent
    alpha: float = Field(..., description="Coefficient; units as in `alphas`.")
    method: MethodField = "add"


class DirectionEdit(Body):
    """Edit along a stored residual-stream direction (POST /api/directions), at its hook."""

    direction: str = Field(..., description="A direction id.")
    alpha: float = Field(
        1.0, description="`add`: h + alpha * v (v as stored, not normalised); `ablate`: unused."
    )
    method: Literal["add", "ablate"] = Field(
        "add",
        description="`add` alpha times the direction, or `ablate`: project it out "
        "(h - (h.u)u, u = v/|v|).",
    )


def _edit_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "direction" if "direction" in value else "latent"
    return "direction" if isinstance(value, DirectionEdit) else "latent"


Intervention = Annotated[
    Annotated[LatentEdit, Tag("latent")] | Annotated[DirectionEdit, Tag("direction")],
    Discriminator(_edit_kind),
]
Interventions = Annotated[
    Annotated[list[Intervention], Field(max_length=MAX_INTERVENTIONS)] | None,
    BeforeValidator(json_text),
    Field(
        description="Several edits every steered row applies together, instead of `sae` "
        "and `latent`: {sae, latent, alpha, method: add|clamp|ablate} or {direction, alpha, "
        "method: add|ablate}. Row k applies every edit with alpha x alphas[k] (alphas "
        "default to [1]). Order: at one hook, edits apply in list order, except that an "
        "`add` of a latent or direction already added earlier in the list (with no clamp or "
        "ablate of it between) is summed into that earlier edit; edits at different hooks "
        f"apply as the forward pass reaches them. At most {MAX_INTERVENTIONS} edits.",
    ),
]


def direction_refs(interventions, field: str = "interventions") -> list[tuple[str, str]]:
    """(direction id, field) of every direction edit."""
    return [
        (e.direction, f"{field}[{i}].direction")
        for i, e in enumerate(interventions or [])
        if isinstance(e, DirectionEdit)
    ]


def sae_refs(interventions, field: str = "interventions") -> list[tuple[str, str]]:
    """(SAE id, field) of every latent edit."""
    return [
        (e.sae, f"{field}[{i}].sae")
        for i, e in enumerate(interventions or [])
        if isinstance(e, LatentEdit)
    ]


class _SteerFields(Body):
    sae: str | None = Field(
        None, description="SAE id whose decoder direction is used (one latent)."
    )
    latent: Latent | None = Field(None, description="Latent index in [0, d_sae) (one latent).")
    interventions: Interventions = None
    prompt: Prompt | None = Field(
        None, description="Text to continue (not only white space; or give `messages`)."
    )
    messages: Messages = None
    alphas: Alphas | None = Field(
        None,
        description="One steered row per value: the latent's coefficient (default [8]), "
        "or with `interventions` a scale of every edit's alpha (default [1]).",
        validate_default=True,
    )
    max_new_tokens: int = Field(
        DEFAULT_MAX_NEW_TOKENS, ge=1, description="Tokens to generate per row (cap 256)."
    )
    temperature: float = Field(
        0.0,
        ge=0.0,
        le=5.0,
        description="0 = greedy (deterministic). Above 0, sampling with common random numbers: "
        "the baseline and every alpha draw the same noise for the same seed.",
    )
    seed: Seed = 0
    positions: PositionsField = "all"
    method: MethodField = "add"
    chat: Chat = False
    return_activations: bool = Field(
        True,
        description="Also return latent i's activation on each generated token (with "
        "`interventions`: the first latent edit's latent, if any).",
    )

    @field_validator("alphas")
    @classmethod
    def _default_alphas(cls, value: list[float] | None, info: ValidationInfo) -> list[float]:
        if value is not None:
            return value
        return list(DEFAULT_SCALES if info.data.get("interventions") else DEFAULT_ALPHAS)

    def latent_edits(self) -> list[LatentEdit]:
        """Every latent edit, as a list (a single-latent request is one edit of alpha 1
        whose rows scale it by `alphas`)."""
        if self.interventions is None:
            if self.sae is None or self.latent is None:
                return []
            return [LatentEdit(sae=self.sae, latent=self.latent, alpha=1.0, method=self.method)]
        return [e for e in self.interventions if isinstance(e, LatentEdit)]

    def direction_ids(self) -> list[tuple[str, str]]:
        return direction_refs(self.interventions)


class SteerRequest(_SteerFields):
    model: ModelRef = Field(
        ..., description="A model id, or a list of model ids steered side by side."
    )

    def references(self) -> dict[str, list]:
        saes = [(self.sae, "sae")] if self.interventions is None and self.sae else []
        saes += sae_refs(self.interventions)
        return {
            "models": [(m, "model") for m in model_ids(self.model)],
            "saes": list(dict.fromkeys(saes)),
            "directions": self.direction_ids(),
        }


class SteerQuery(_SteerFields):
    """`SteerRequest` as query parameters: `model` once per id. Other parameters in the
    query string (a page's own) are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: list[str] = Field(..., min_length=1, description="Model id(s).")

    def request(self) -> SteerRequest:
        fields = self.model_dump(exclude={"model"})
        return SteerRequest(model=self.model if len(self.model) > 1 else self.model[0], **fields)


class Generation(BaseModel):
    text: str
    token_ids: list[int] = Field(..., description="Generated tokens only (not the prompt).")
    tokens: list[str]
    latent_activations: list[float] | None = Field(
        None,
        description="The steered latent's activation on each generated token, read at "
        "the SAE's hook point after the steering edit.",
    )


class SteeredGeneration(Generation):
    alpha: float = Field(..., description="The row's alpha (with interventions: its scale).")


class SteerResult(BaseModel):
    model: str
    sae: str | None = Field(None, description="The steered SAE (one latent).")
    latent: int | None = Field(None, description="The steered latent (one latent).")
    interventions: list[Intervention] | None = Field(
        None, description="The edits (with `interventions`), after adds were merged."
    )
    trace: dict | None = Field(
        None, description="{sae, latent} that `latent_activations` follow (interventions)."
    )

    @model_serializer(mode="wrap")
    def _only_when_edited(self, handler):
        # Absent, not null, for a one-latent result: results saved before `interventions`
        # existed still rerun byte for byte.
        out = handler(self)
        for key in ("interventions", "trace"):
            if out.get(key) is None:
                out.pop(key, None)
        return out

    prompt_token_ids: list[int]
    baseline: Generation
    steered: list[SteeredGeneration]


class SteerMulti(BaseModel):
    results: list[SteerResult]


SteerResponse = SteerResult | SteerMulti
