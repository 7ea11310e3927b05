"""The loaded models behind one device worker, and the request limits every job is
checked against before it is queued (prompt length, α, new tokens, prompt count).

Use cases (inspection, steering, diffing, evaluation) live in `app.services`; they build
jobs from these checks and run them on `worker`.
"""

import math

from app.engine.registry import HostedModel, Registry
from app.engine.worker import DeviceWorker
from app.errors import InvalidRequest
from app.settings import Settings


class Engine:
    def __init__(self, registry: Registry, settings: Settings):
        self.registry = registry
        self.settings = settings
        self.worker = DeviceWorker(
            registry.device,
            settings.queue_size,
            settings.retry_after_s,
            cost_budget=settings.queue_cost_budget,
            batch_window_s=settings.batch_window_ms / 1000,
        )

    # ------------------------------------------------------------ tokenisation
    def tokenize(
        self,
        model: HostedModel,
        prompt: str,
        chat: bool = False,
        reserve: int = 0,
        field: str = "prompt",
    ) -> list[int]:
        """Token ids of a prompt (wrapped as a user turn when `chat`), within the prompt
        limit and the model's context minus `reserve` new tokens."""
        if not prompt or not prompt.strip():
            raise InvalidRequest(f"{field}: must not be empty", field=field)
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(
                f"{field}: is not valid Unicode text (it holds a lone surrogate)", field=field
            ) from None
        # The chat template's text holds its own special tokens: one BOS, never two.
        ids = model.encode_prompt(prompt, chat, field)
        self._check_length(model, ids, reserve, field)
        return ids

    def tokenize_conversation(
        self, model: HostedModel, messages: list[dict], reserve: int = 0, field: str = "messages"
    ) -> tuple[list[int], int]:
        """(token ids, start of the newest assistant turn) of a conversation, within the
        same limits as a prompt; errors name `field`."""
        if not any(m["role"] == "user" for m in messages):
            raise InvalidRequest(f"{field}: give at least one user turn", field=field)
        ids, start = model.encode_conversation(messages, field)
        self._check_length(model, ids, reserve, field)
        return ids, start

    def tokenize_input(
        self,
        model: HostedModel,
        prompt: str | None,
        messages: list | None,
        chat: bool,
        reserve: int = 0,
    ) -> tuple[list[int], int | None]:
        """A request's `prompt` or `messages` (exactly one): (token ids, start of the newest
        assistant turn, None for a prompt)."""
        if prompt is None and messages is None:
            raise InvalidRequest(
                "prompt: this field is required (or give `messages`, a conversation)",
                field="prompt",
            )
        if prompt is not None and messages is not None:
            raise InvalidRequest(
                "messages: give either `prompt` or `messages` (a conversation), not both",
                field="messages",
            )
        if messages is not None:
            turns = [m.model_dump() if hasattr(m, "model_dump") else m for m in messages]
            return self.tokenize_conversation(model, turns, reserve)
        return self.tokenize(model, prompt, chat, reserve), None

    def _check_length(self, model: HostedModel, ids: list[int], reserve: int, field: str) -> None:
        """Within the prompt limit and the model's context minus `reserve` new tokens."""
        limit = min(self.settings.max_prompt_tokens, model.max_positions - reserve)
        if len(ids) > limit:
            raise InvalidRequest(
                f"{field}: {len(ids)} tokens is over the limit of {limit} tokens for model "
                f"{model.id!r} (max_prompt_tokens={self.settings.max_prompt_tokens}, "
                f"context {model.max_positions} minus {reserve} new tokens)",
                field=field,
            )

    def tokenize_all(
        self, model: HostedModel, texts: list[str], chat: bool, reserve: int = 0
    ) -> list[list[int]]:
        """Several prompts (`prompts[i]` in errors), at most `max_prompts`."""
        if len(texts) > self.settings.max_prompts:
            raise InvalidRequest(
                f"prompts: {len(texts)} prompts is over the limit of {self.settings.max_prompts}",
                field="prompts",
            )
        return [
            self.tokenize(model, t, chat, reserve, field=f"prompts[{i}]")
            for i, t in enumerate(texts)
        ]

    def tokenize_conversations(
        self, model: HostedModel, conversations: list[list[dict]], reserve: int = 0
    ) -> list[list[int]]:
        """Several conversations (`conversations[i]` in errors), at most `max_prompts`."""
        return [ids for ids, _ in self.tokenize_turns(model, conversations, reserve)]

    def tokenize_turns(
        self, model: HostedModel, conversations: list[list[dict]], reserve: int = 0
    ) -> list[tuple[list[int], int]]:
        """`tokenize_conversations` with where each one's newest assistant turn starts:
        [(token ids, start)]."""
        if len(conversations) > self.settings.max_prompts:
            raise InvalidRequest(
                f"conversations: {len(conversations)} conversations is over the limit of "
                f"{self.settings.max_prompts} (max_prompts)",
                field="conversations",
            )
        return [
            self.tokenize_conversation(model, turns, reserve, field=f"conversations[{i}]")
            for i, turns in enumerate(conversations)
        ]

    # ------------------------------------------------------------------ limits
    def check_alphas(self, alphas: list[float], method: str, field: str = "alphas") -> None:
        cap = self.settings.max_abs_alpha
        if not alphas:
            raise InvalidRequest(f"{field}: give at least one alpha", field=field)
        if len(alphas) > self.settings.max_alphas:
            raise InvalidRequest(
                f"{field}: {len(alphas)} values is over the limit of {self.settings.max_alphas}",
                field=field,
            )
        for a in alphas:
            if not math.isfinite(a) or abs(a) > cap:
                raise InvalidRequest(
                    f"{field}: {a} is not a finite number in [-{cap:g}, {cap:g}]", field=field
                )
            if method == "clamp" and a < 0:
                raise InvalidRequest(
                    f"{field}: clamp sets an SAE activation, which is never negative; "
                    f"got {a} (use method 'add' to push against a latent)",
                    field=field,
                )

    def check_max_new_tokens(self, value: int) -> None:
        if value > self.settings.max_new_tokens:
            raise InvalidRequest(
                f"max_new_tokens: {value} is over the cap of {self.settings.max_new_tokens}",
                field="max_new_tokens",
            )

    def check_models(self, model_ids: list[str], field: str = "model") -> None:
        if len(model_ids) > self.settings.max_models:
            raise InvalidRequest(
                f"{field}: {len(model_ids)} models is over the limit of "
                f"{self.settings.max_models} per request (max_models)",
                field=field,
            )

    def admit(self, cost: int) -> int:
        """A request's cost in token positions (rows x (prompt + new tokens) x models), if
        it is within `max_request_cost`; the worker also counts it against its budget."""
        cap = self.settings.max_request_cost
        if cost > cap:
            raise InvalidRequest(
                f"request: this request costs {cost:,} token positions (rows x (prompt + new "
                f"tokens) x models), over the limit of {cap:,} (max_request_cost); ask for "
                "fewer models, α values, prompts, samples or new tokens",
                field="request",
            )
        return cost

    def check_top_k(self, value: int) -> None:
        if value > self.settings.max_top_k:
            raise InvalidRequest(
                f"top_k: {value} is over the cap of {self.settings.max_top_k}", field="top_k"
            )
