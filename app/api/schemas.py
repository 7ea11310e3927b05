"""Request and response bodies of the JSON API. Every field carries a description, which
is what `/docs` shows. Limits that depend on settings are checked in the engine and
documented here."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModelRef = str | list[str]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def model_ids(model: ModelRef) -> list[str]:
    return [model] if isinstance(model, str) else list(model)


class ActivationsRequest(_Body):
    model: ModelRef = Field(
        ...,
        description="A model id, or a list of model ids (e.g. base and fine-tuned) to compare "
        "token by token; then the response has one result per model under `results`.",
        examples=["organism-base", ["organism-base", "organism-insecure"]],
    )
    sae: str = Field(..., description="SAE id; it must be attached to every listed model.")
    prompt: str = Field(
        ..., min_length=1, description="Text to run. At most `max_prompt_tokens` tokens (512)."
    )
    top_k: int = Field(10, ge=1, le=100, description="Latents listed per token (1-100).")
    latents: list[int] = Field(
        [],
        max_length=64,
        description="Latent indices whose full per-token trace is returned (each in [0, d_sae)).",
    )
    chat: bool = Field(
        False, description="Wrap the prompt as a user turn with the model's chat template."
    )


class TopLatent(BaseModel):
    latent: int
    value: float


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


class ActivationsMulti(BaseModel):
    results: list[ActivationsResult]


class SteerRequest(_Body):
    model: ModelRef = Field(
        ..., description="A model id, or a list of model ids steered side by side."
    )
    sae: str = Field(..., description="SAE id whose decoder direction is used.")
    latent: int = Field(..., ge=0, description="Latent index in [0, d_sae).")
    prompt: str = Field(..., min_length=1, description="Prompt text (at most 512 tokens).")
    alphas: list[float] = Field(
        [8.0],
        min_length=1,
        description="Steering coefficients, at most 16, each finite with |alpha| <= 1000. Units: "
        "`add` adds alpha * d_i where d_i = sae.decode(e_i) - sae.decode(0) (one unit of latent "
        "i as the SAE writes it, so alpha is in the latent's own activation units); `clamp` "
        "sets latent i's activation to alpha (alpha >= 0); `ablate` removes h's component "
        "along d_i / |d_i| and adds alpha times that unit vector (alpha in residual norm units).",
    )
    max_new_tokens: int = Field(40, ge=1, description="Tokens to generate per row (cap 256).")
    temperature: float = Field(
        0.0,
        ge=0.0,
        le=5.0,
        description="0 = greedy (deterministic). Above 0, sampling with common random numbers: "
        "the baseline and every alpha draw the same noise for the same seed.",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Sampling seed.")
    positions: Literal["all", "prompt", "generated"] = Field(
        "all", description="Which token positions are steered."
    )
    method: Literal["add", "clamp", "ablate"] = Field("add", description="The edit; see alphas.")
    chat: bool = Field(False, description="Wrap the prompt with the model's chat template.")
    return_activations: bool = Field(
        True, description="Also return latent i's activation on each generated token."
    )


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


class CompareRequest(_Body):
    base: str = Field(..., description="The base model id.")
    finetuned: str = Field(..., description="The fine-tuned model id.")
    sae: str = Field(..., description="An SAE attached to both models.")
    prompts: list[str] | None = Field(
        None,
        description="Prompts to average over (at most 256). Default: the questions of "
        "`question_set`.",
    )
    question_set: str | None = Field(
        None, description="A question-set id from the model config, used when `prompts` is empty."
    )
    chat: bool = Field(True, description="Wrap each prompt with the model's chat template.")
    top_n: int = Field(20, ge=1, le=1000, description="How many latents to return.")


class CompareLatent(BaseModel):
    latent: int
    base_mean: float
    finetuned_mean: float
    delta: float


class CompareResult(BaseModel):
    base: str
    finetuned: str
    sae: str
    n_prompts: int
    n_tokens: int
    latents: list[CompareLatent] = Field(..., description="Sorted by delta, descending.")


class EvaluateSteer(_Body):
    sae: str
    latent: int = Field(..., ge=0)
    alpha: float
    method: Literal["add", "clamp", "ablate"] = "add"
    positions: Literal["all", "prompt", "generated"] = "all"


class EvaluateRequest(_Body):
    model: str = Field(..., description="The model to sample from.")
    question_set: str | None = Field(
        None, description="A question-set id from the model config (default: the first one)."
    )
    questions: list[str] | None = Field(
        None, description="Your own questions instead of a question set (at most 256)."
    )
    judge: str | None = Field(
        None,
        description="A judge id from the model config, or 'llm' for the OpenAI-compatible "
        "judge in settings (default: the config's first judge).",
    )
    samples_per_question: int = Field(20, ge=1, description="At most 64.")
    max_new_tokens: int = Field(48, ge=1, description="At most 256.")
    temperature: float = Field(1.0, gt=0.0, le=5.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    steer: EvaluateSteer | None = Field(None, description="Optionally steer while sampling.")
    chat: bool = Field(True, description="Wrap each question with the model's chat template.")


class ErrorBody(BaseModel):
    detail: str
    field: str | None = None
