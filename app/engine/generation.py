"""Batched generation with optional SAE steering, through HF `generate` and its KV cache.

A sweep (baseline + every alpha) is one batch: each row carries its own alpha (NaN = not
steered). Sampling uses common random numbers: at temperature T > 0 every row draws its
token by the Gumbel-max trick, argmax(logits / T + g), where the noise g depends only on
(seed, stream, step). Rows that share a stream see the same noise, so the baseline and each
alpha differ only by the steering, and the result is the same whatever else is in the batch.
Temperature 0 is plain greedy decoding.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from app.engine.hooks import HookPoint, hook, resolve_hook
from app.engine.registry import HostedModel, HostedSAE
from app.engine.sae_ops import (
    add_vector,
    decoder_direction,
    encode,
    project_out,
    steer_values,
)


@dataclass
class Steering:
    """Edit the SAE's hook point along a latent, with one coefficient per batch row (and,
    for a batch that holds several requests, one latent per row: `latents`)."""

    sae: HostedSAE
    latent: int
    alphas: torch.Tensor  # (batch,), NaN = row not steered
    method: str = "add"
    positions: str = "all"
    # (batch,) absolute position where each row's generated tokens begin; set by the caller.
    generated_from: torch.Tensor | None = None
    latents: list[int] | None = None  # per row; None: every row steers `latent`
    # per row, where the newest assistant turn starts in its prompt (positions=last_turn)
    turn_starts: list[int | None] | None = None

    def edits(self) -> list["Edit"]:
        return [
            Edit(self.method, alphas, sae=self.sae, latent=latent)
            for latent, alphas in self.groups()
        ]

    def groups(self) -> list[tuple[int, torch.Tensor]]:
        """(latent, alphas with NaN for the other rows) per distinct latent: each row is
        edited by its own latent only, so a row's result does not depend on the others."""
        if self.latents is None or len(set(self.latents)) == 1:
            return [(self.latents[0] if self.latents else self.latent, self.alphas)]
        rows = torch.tensor(self.latents)
        out = []
        for latent in dict.fromkeys(self.latents):
            mine = rows == latent
            out.append((latent, torch.where(mine, self.alphas, torch.nan)))
        return out


@dataclass
class Edit:
    """One edit of the residual stream with a coefficient per batch row (NaN: that row is
    not edited): a latent edit (`sae`, `latent`; add, clamp or ablate, as `steer_values`)
    or a direction edit (`vector` at the hook named `hook`; add, or `ablate` = project the
    direction out, whatever the coefficient)."""

    method: str
    coefs: torch.Tensor  # (batch,)
    sae: HostedSAE | None = None
    latent: int | None = None
    vector: torch.Tensor | None = None  # (d_model,) float32
    hook: str | None = None

    def write_point(self, model: HostedModel) -> HookPoint:
        if self.sae is not None:
            return self.sae.write_hook(model.id)
        assert self.hook is not None
        return resolve_hook(model.hf, self.hook)

    def apply(self, value: torch.Tensor, coefs: torch.Tensor, source) -> torch.Tensor:
        if self.sae is not None:
            return steer_values(self.sae, value, self.latent, coefs, self.method, source)
        assert self.vector is not None
        if self.method == "add":
            return add_vector(value, self.vector, coefs)
        return project_out(value, self.vector, coefs)


@dataclass
class Interventions:
    """Several edits that every steered row applies together (a request's
    `interventions`, or several users' requests batched: each row has coefficients for
    its own edits only, NaN for the others). At one hook the edits apply in list order;
    edits at different hooks apply in the order the forward pass reaches them."""

    rows: list[Edit]
    positions: str = "all"
    generated_from: torch.Tensor | None = None
    turn_starts: list[int | None] | None = None  # as in Steering

    def edits(self) -> list[Edit]:
        return self.rows


def _position_mask(steering, start: int, seq: int, device) -> torch.Tensor | None:
    """(batch, seq) True where this forward call's positions are steered; None = all.
    `generated_from` holds each row's boundary: where its generated tokens (or, for
    `last_turn`, its newest assistant turn) begin."""
    if steering.positions == "all" or steering.generated_from is None:
        return None
    boundary = steering.generated_from.to(device)[:, None]  # (batch, 1)
    pos = torch.arange(start, start + seq, device=device)[None, :]  # (1, seq)
    return pos < boundary if steering.positions == "prompt" else pos >= boundary


def boundaries(steering, prompt_lengths: list[int], width: int, generated: list[int]):
    """Each row's steering boundary (absolute position in a left-padded batch of `width`):
    where its generated tokens begin, or with `last_turn` where its newest assistant turn
    begins (a row without a conversation: its generated tokens)."""
    starts = steering.turn_starts if steering.positions == "last_turn" else None
    out = []
    for r, (length, new) in enumerate(zip(prompt_lengths, generated, strict=True)):
        first = width - new  # the row's first generated position
        turn = starts[r] if starts is not None else None
        out.append(first if turn is None else first - length + turn)
    return torch.tensor(out)


@contextmanager
def steering_hooks(
    model: HostedModel, steering: "Steering | Interventions | None"
) -> Iterator[None]:
    """Install the steering edits for the duration of a `with` block; removed in `finally`,
    so a failed or cancelled request never leaves the model steered. An SAE is edited where
    it reads; a transcoder's latents are read at its input hook and its edit is written at
    its output hook (`hook_name_out`), where its decoder lives."""
    edits = [] if steering is None else steering.edits()
    edits = [e for e in edits if not bool(torch.isnan(e.coefs).all())]
    if not edits:
        yield
        return
    for e in edits:
        if e.sae is not None:
            e.sae.check_steerable(e.method)
    if steering.generated_from is not None:
        steering.generated_from = steering.generated_from.to(model.device)
    # Edits grouped by the hook they write, in list order; coefficients moved to the
    # device once, not at every step (each copy would wait for the GPU).
    # (Keyed by where the hook sits, not by its name: two names of one place are one hook.)
    points: dict[tuple, HookPoint] = {}
    by_point: dict[tuple, list[tuple[Edit, torch.Tensor]]] = {}
    for e in edits:
        point = e.write_point(model)
        where = (point.module, point.side, point.residual_from)
        points.setdefault(where, point)
        by_point.setdefault(where, []).append((e, e.coefs.to(model.device)))
    transcoders = {e.sae.id: e.sae for e in edits if e.sae is not None and e.sae.is_transcoder}
    sources: dict[str, torch.Tensor] = {}

    def reader(sae_id: str):
        def read(value: torch.Tensor):  # a transcoder's input: (batch, seq, d_in)
            sources[sae_id] = value

        return read

    def writer(group: list[tuple[Edit, torch.Tensor]]):
        state = {"offset": 0}  # absolute position of the first token in this forward call
        steps = _fused(group, model.device)

        def edit(value: torch.Tensor):  # value: (batch, seq, d_model)
            seq = value.shape[1]
            start = state["offset"]
            state["offset"] += seq
            new = value
            for step in steps:
                if isinstance(step, _SummedAdds):
                    new = step.apply(new)
                    continue
                e, coefs = step
                source = sources.get(e.sae.id) if e.sae is not None else None
                new = e.apply(new, coefs, source)
            keep = _position_mask(steering, start, seq, value.device)
            if keep is None:
                return new
            return torch.where(keep[..., None], new, value)

        return edit

    with ExitStack() as stack:
        for sae_id, hs in transcoders.items():
            stack.enter_context(hook(model.hf, hs.hooks[model.id], reader(sae_id)))
        for where, group in by_point.items():
            stack.enter_context(hook(model.hf, points[where], writer(group)))
        yield


@dataclass
class _SummedAdds:
    """Consecutive `add` edits at one hook as one: their sum per row, computed once per
    generation instead of at every step (adds commute), so more edits cost no more."""

    rows: torch.Tensor  # (batch,) bool: rows with at least one of the adds
    delta: torch.Tensor  # (batch, d_model) float32

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        hf = h.float()
        new = torch.where(self.rows[:, None, None], hf + self.delta[:, None, :], hf)
        return new.to(h.dtype)


def _fused(group: list[tuple[Edit, torch.Tensor]], device) -> list:
    """The hook's edits in order, each run of two or more adds summed into one step (a
    lone add stays as it is, so one edit is computed exactly as before)."""
    out: list = []
    run: list[tuple[Edit, torch.Tensor]] = []

    def flush():
        if len(run) >= 2:
            rows = torch.zeros_like(run[0][1], dtype=torch.bool)
            delta = None
            for e, coefs in run:
                d = e.vector if e.sae is None else decoder_direction(e.sae, e.latent)
                d = d.to(device, torch.float32)
                term = torch.nan_to_num(coefs.float(), nan=0.0)[:, None] * d
                delta = term if delta is None else delta + term
                rows |= ~torch.isnan(coefs)
            out.append(_SummedAdds(rows, delta))
        else:
            out.extend(run)
        run.clear()

    for e, coefs in group:
        if e.method == "add":
            run.append((e, coefs))
        else:
            flush()
            out.append((e, coefs))
    flush()
    return out


class CommonNoiseSampler(LogitsProcessor):
    """Turns greedy search into sampling with per-(seed, stream, step) noise, each row at
    its own temperature and seed (a row at temperature 0 stays greedy): a row draws the
    same tokens whatever else is in the batch."""

    def __init__(
        self,
        temperature: float | list[float],
        seed: int | list[int],
        streams: list[int],
        prompt_len: int,
    ):
        n = len(streams)
        self.temperatures = temperature if isinstance(temperature, list) else [temperature] * n
        self.seeds = seed if isinstance(seed, list) else [seed] * n
        self.streams = streams
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_len
        vocab = scores.shape[-1]
        out = scores.float()
        for row, stream in enumerate(self.streams):
            temperature = self.temperatures[row]
            if temperature <= 0:
                continue
            gen = torch.Generator().manual_seed(
                (self.seeds[row] * 1_000_003 + stream * 10_007 + step) % (2**63)
            )
            noise = -torch.log(-torch.log(torch.rand(vocab, generator=gen).clamp_min(1e-20)))
            out[row] = out[row] / temperature + noise.to(scores.device)
        return out


class Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        stop = self.event.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class RowStreamer(BaseStreamer):
    """Hands each generated step (a (batch,) list of token ids) to a callback. A row that
    has reached any of `stops` reports `eos` from then on (instead of its stop token and the
    padding after it), so a consumer that watches for the tokenizer's EOS ends the row at
    the model's own end of turn."""

    def __init__(
        self,
        on_step: Callable[[list[int]], None],
        stops: list[int] | None = None,
        eos: int | None = None,
    ):
        self.on_step = on_step
        self.seen_prompt = False
        self.stops = set(stops or [])
        self.eos = eos
        self.finished: list[bool] = []

    def put(self, value: torch.Tensor) -> None:
        if not self.seen_prompt and value.dim() == 2:
            self.seen_prompt = True
            return
        tokens = value.reshape(-1).tolist()
        if self.stops and self.eos is not None:
            if not self.finished:
                self.finished = [False] * len(tokens)
            for i, token in enumerate(tokens):
                if self.finished[i] or token in self.stops:
                    self.finished[i] = True
                    tokens[i] = self.eos
        self.on_step(tokens)

    def end(self) -> None:
        pass


@torch.no_grad()
def generate(
    model: HostedModel,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float | list[float] = 0.0,
    seed: int | list[int] = 0,
    streams: list[int] | None = None,
    steering: "Steering | Interventions | None" = None,
    on_step: Callable[[list[int]], None] | None = None,
    cancel: threading.Event | None = None,
    stop_at_eos: bool = True,
    adapter_names: list[str] | None = None,
) -> list[list[int]]:
    """Generate for a batch of token-id prompts; returns the new token ids of each row, cut
    at the row's first stop token (`model.stop_token_ids`: the generation config's
    end-of-turn list and the tokenizer's EOS), which is dropped. Nothing else is taken from
    the model's generation config (its sampling settings or repetition penalty would break
    greedy decoding and common random numbers)."""
    tok = model.tokenizer
    ids, mask = model.pad(prompts, "left")
    streams = streams if streams is not None else [0] * len(prompts)
    processors = LogitsProcessorList()
    temperatures = temperature if isinstance(temperature, list) else [temperature]
    if max(temperatures) > 0:  # per row: a list gives each row its own
        processors.append(CommonNoiseSampler(temperature, seed, streams, ids.shape[1]))
    criteria = [Cancelled(cancel)] if cancel is not None else []
    stops = model.stop_token_ids if stop_at_eos else []
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        min_new_tokens=0 if stop_at_eos else max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=tok.pad_token_id,
        eos_token_id=stops or None,
        bos_token_id=tok.bos_token_id,
    )
    if steering is not None:
        steering.generated_from = boundaries(
            steering, [len(p) for p in prompts], ids.shape[1], [0] * len(prompts)
        )
    # `adapter_names`: one LoRA adapter per row (PEFT's mixed batch; `model` is the base).
    run = model.hf.generate if adapter_names is None else model.peft.generate
    extra = {} if adapter_names is None else {"adapter_names": adapter_names}
    with steering_hooks(model, steering):
        out = run(
            input_ids=ids.to(model.device),
            attention_mask=mask.to(model.device),
            generation_config=config,
            logits_processor=processors,
            stopping_criteria=criteria,
            streamer=RowStreamer(on_step, stops, tok.eos_token_id) if on_step else None,
            **extra,
        )
    return [cut_at_stop(row, stops) for row in out[:, ids.shape[1] :].tolist()]


def cut_at_stop(row: list[int], stops: list[int]) -> list[int]:
    """The row up to (not including) its first stop token."""
    for i, token in enumerate(row):
        if token in stops:
            return row[:i]
    return row


@torch.no_grad()
def latent_trace(
    model: HostedModel,
    sae: HostedSAE,
    latent: int,
    prompt: list[int],
    completions: list[list[int]],
    steering: "Steering | Interventions | None",
) -> list[list[float]]:
    """Latent `latent`'s activation on each row's generated tokens, read at the SAE's hook
    point after the row's own steering edit (one forward pass for the whole batch)."""
    rows = [prompt + c for c in completions]
    ids, mask = model.pad(rows, "left")
    captured: dict[str, torch.Tensor] = {}

    def read(value: torch.Tensor):
        captured["value"] = value

    point = sae.hooks[model.id]
    if steering is not None:
        steering.generated_from = boundaries(
            steering, [len(prompt)] * len(rows), ids.shape[1], [len(c) for c in completions]
        )
    with steering_hooks(model, steering), hook(model.hf, point, read):
        model.hf(
            input_ids=ids.to(model.device), attention_mask=mask.to(model.device), use_cache=False
        )
    acts = encode(sae, captured["value"])[..., latent].float()  # (batch, seq)
    if sae.is_transcoder and isinstance(steering, Steering):
        acts = transcoder_effective(acts, steering, ids.shape[1])
    acts = acts.cpu()
    width = ids.shape[1]
    return [acts[i, width - len(c) :].tolist() if c else [] for i, c in enumerate(completions)]


def transcoder_effective(acts: torch.Tensor, steering: Steering, width: int) -> torch.Tensor:
    """A transcoder's steering edits its output, not the input its latents are read from:
    the latent it effectively writes, in its own units, is a + alpha (add), alpha (clamp,
    unless off and asked to be off) or alpha / |d_i| (ablate)."""
    alphas = steering.alphas.to(acts.device, torch.float32)[:, None]  # (b, 1)
    if steering.method == "add":
        new = acts + alphas
    elif steering.method == "clamp":
        new = torch.where((alphas > 0) | (acts != 0), alphas.expand_as(acts), acts)
    else:
        norm = decoder_direction(steering.sae, steering.latent).norm().item()
        new = (alphas / norm).expand_as(acts)
    new = torch.where(torch.isnan(alphas), acts, new)
    keep = _position_mask(steering, 0, width, acts.device)
    return new if keep is None else torch.where(keep, new, acts)
