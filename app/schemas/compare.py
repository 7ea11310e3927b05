"""The `compare` kind: model diffing in SAE space (base vs fine-tuned)."""

from pydantic import BaseModel, Field

from app.schemas.conversation import Conversations
from app.schemas.fields import Body, Prompts

DEFAULT_TOP_N = 20


class CompareRequest(Body):
    base: str = Field(..., description="The base model id.")
    finetuned: str = Field(..., description="The fine-tuned model id.")
    sae: str = Field(..., description="An SAE attached to both models.")
    prompts: Prompts = Field(
        None,
        description="Prompts to average over (at most `max_prompts`, 256). Default: the "
        "questions of `question_set`.",
    )
    conversations: Conversations = Field(
        None,
        description="Conversations to average over instead of `prompts`: each a list of "
        "[{role, content}, ...] turns (at most 64) rendered with the model's chat template "
        "(`chat` does not apply), at most `max_prompts` (256) of them; e.g. "
        '[[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"}]]. '
        "Give either `prompts` or `conversations`.",
    )
    question_set: str | None = Field(
        None, description="A question-set id from the model config, used when `prompts` is empty."
    )
    chat: bool = Field(True, description="Wrap each prompt with the model's chat template.")
    top_n: int = Field(DEFAULT_TOP_N, ge=1, le=1000, description="How many latents to return.")

    def references(self) -> dict[str, list]:
        return {
            "models": [(self.base, "base"), (self.finetuned, "finetuned")],
            "saes": [(self.sae, "sae")],
            "question_sets": [] if self.prompts or self.conversations else [self.question_set],
        }


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
