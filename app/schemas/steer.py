"""The `steer` kind: generation steered by α along one SAE latent. The JSON body, the GET
stream's query string and the playground's form are all `SteerRequest` (the GET forms
read it through `SteerQuery`, which differs only in taking `model` as repeated ids)."""

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.fields import (
    Alphas,
    Body,
    Chat,
    Latent,
    MethodField,
    ModelRef,
    PositionsField,
    Prompt,
    Seed,
    model_ids,
)

DEFAULT_MAX_NEW_TOKENS = 40
DEFAULT_ALPHAS = [8.0]


class _SteerFields(Body):
    sae: str = Field(..., description="SAE id whose decoder direction is used.")
    latent: Latent
    prompt: Prompt
    alphas: Alphas = DEFAULT_ALPHAS
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
        True, description="Also return latent i's activation on each generated token."
    )


class SteerRequest(_SteerFields):
    model: ModelRef = Field(
        ..., description="A model id, or a list of model ids steered side by side."
    )

    def references(self) -> dict[str, list]:
        return {
            "models": [(m, "model") for m in model_ids(self.model)],
            "saes": [(self.sae, "sae")],
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
    alpha: float


class SteerResult(BaseModel):
    model: str
    sae: str
    latent: int
    prompt_token_ids: list[int]
    baseline: Generation
    steered: list[SteeredGeneration]


class SteerMulti(BaseModel):
    results: list[SteerResult]


SteerResponse = SteerResult | SteerMulti
