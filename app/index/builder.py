"""Streams a dataset through a model and an SAE and accumulates, for every latent, what its
dashboard shows. Memory is bounded by the number of latents, never by the corpus size:

- top-k contexts by their max activation, with the latent's value on every token;
- nonzero count, sum and max (density, mean, max);
- counts on a fixed log-spaced grid (the histogram and the interval fractions);
- one example per (latent, half-octave bucket) by priority sampling, with a window of the
  latent's values around it (the interval examples).

BOS and padding positions never count. State checkpoints atomically every few batches, so
an interrupted build resumes where it stopped.

The state is a partial state: a build over one shard of the contexts (a run of whole
batches, `Contexts.first` onwards) gives the same state as that shard's part of a full
build, and `IndexState.merge` folds shards together exactly, in any order. Every quantity
is order independent: top-k lists are ranked by (value descending, context ascending),
counts and the fixed-point sum are integers, the maximum is a maximum, and each interval
example is the entry with the smallest random key (unique: the key ends in the entry's
token position), drawn by a generator seeded per global batch. So one process (one shard)
and `app.index.distributed` (many shards on Ray) write the same index.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from app.engine.activations import latent_activations
from app.engine.registry import HostedModel, HostedSAE
from app.errors import InvalidRequest
from app.index.datasets import Contexts

# Histogram grid: 8 buckets per octave over [2^-10, 2^10); values outside are clipped.
HIST_PER_OCTAVE = 8
HIST_LOW = -10
HIST_BUCKETS = 20 * HIST_PER_OCTAVE
# Example grid: 2 buckets per octave over the same range.
EX_PER_OCTAVE = 2
EX_BUCKETS = 20 * EX_PER_OCTAVE
WINDOW = 16  # values kept each side of an interval example
# Sums of activations are fixed point (integers of 2^-24): exact and order independent, so
# merged shards give the same mean as one pass (float sums depend on the order).
TOTAL_SCALE = 2**24
# Interval-example keys: 31 random bits, then the entry's global token position (32 bits).
KEY_RANDOM_BITS = 31
MAX_TOKENS = 2**32
EMPTY_KEY = 2**63 - 1
STATE_VERSION = 2  # checkpoints of another version are not resumed


def bucket_of(values: torch.Tensor, per_octave: int, n: int) -> torch.Tensor:
    b = torch.floor((torch.log2(values) - HIST_LOW) * per_octave).long()
    return b.clamp_(0, n - 1)


def bucket_edges(per_octave: int, n: int) -> list[float]:
    return [2.0 ** (HIST_LOW + i / per_octave) for i in range(n + 1)]


@dataclass
class IndexParams:
    context: int = 128
    batch_size: int = 32
    top_k: int = 30
    n_bins: int = 5
    bin_examples: int = 5
    seed: int = 0
    checkpoint_every: int = 50  # batches


def top_order(values: torch.Tensor, ctx: torch.Tensor, k: int) -> torch.Tensor:
    """Per row, the column indices of the k best candidates, best first: by value
    descending, ties by context id ascending (a total order, so a top-k list is the same
    whatever order its candidates came in)."""
    by_ctx = ctx.argsort(dim=1, stable=True)
    by_value = values.gather(1, by_ctx).argsort(dim=1, descending=True, stable=True)
    return by_ctx.gather(1, by_value[:, :k])


class IndexState:
    """Everything accumulated so far over some batches; tensors live on the build device."""

    def __init__(self, d_sae: int, params: IndexParams, device: torch.device, first_batch: int = 0):
        k, t = params.top_k, params.context
        self.version = STATE_VERSION
        self.next_batch = first_batch  # global index of the next batch to fold in
        self.n_batches = 0  # batches folded in (over every merged shard)
        self.n_tokens = 0
        self.top_values = torch.full((d_sae, k), -1.0, device=device)  # (d_sae, k) max per ctx
        self.top_ctx = torch.full((d_sae, k), -1, dtype=torch.long, device=device)
        self.top_tokens = torch.zeros((d_sae, k, t), device=device)  # per-token values
        self.nonzero = torch.zeros(d_sae, dtype=torch.long, device=device)
        self.total = torch.zeros(d_sae, dtype=torch.long, device=device)  # x TOTAL_SCALE
        self.max = torch.zeros(d_sae, device=device)
        self.hist = torch.zeros((d_sae, HIST_BUCKETS), dtype=torch.long, device=device)
        self.ex_key = torch.full((d_sae * EX_BUCKETS,), EMPTY_KEY, dtype=torch.long, device=device)
        self.ex_ctx = torch.full((d_sae * EX_BUCKETS,), -1, dtype=torch.long, device=device)
        self.ex_pos = torch.zeros(d_sae * EX_BUCKETS, dtype=torch.long, device=device)
        self.ex_value = torch.zeros(d_sae * EX_BUCKETS, device=device)
        self.ex_window = torch.zeros((d_sae * EX_BUCKETS, 2 * WINDOW + 1), device=device)

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items()}

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str = "cpu") -> "IndexState | None":
        """The state back from `state_dict` (None for a checkpoint of another version)."""
        if state.get("version") != STATE_VERSION:
            return None
        obj = cls.__new__(cls)
        for k, v in state.items():
            setattr(obj, k, v.to(device) if isinstance(v, torch.Tensor) else v)
        return obj

    def to(self, device: torch.device | str) -> "IndexState":
        state = IndexState.from_state(self.state_dict(), device)
        assert state is not None
        return state

    def sums(self) -> torch.Tensor:
        """Each latent's sum of activations (float64)."""
        return self.total.double() / TOTAL_SCALE

    def merge(self, other: "IndexState") -> "IndexState":
        """Fold another shard's state into this one (in place; returns self). The result
        equals one pass over both shards' contexts, and does not depend on the order in
        which shards are merged. The top-k lists come out sorted (as `sort_top` leaves
        them)."""
        other = other.to(self.top_values.device)
        k = self.top_values.shape[1]
        values = torch.cat([self.top_values, other.top_values], dim=1)  # (d_sae, 2k)
        ctx = torch.cat([self.top_ctx, other.top_ctx], dim=1)
        order = top_order(values, ctx, k)
        tokens = torch.cat([self.top_tokens, other.top_tokens], dim=1)
        self.top_values = values.gather(1, order)
        self.top_ctx = ctx.gather(1, order)
        self.top_tokens = tokens.gather(1, order[..., None].expand(-1, -1, tokens.shape[-1]))
        self.n_tokens += other.n_tokens
        self.n_batches += other.n_batches
        self.next_batch = max(self.next_batch, other.next_batch)
        self.nonzero += other.nonzero
        self.total += other.total
        self.max = torch.maximum(self.max, other.max)
        self.hist += other.hist
        take = other.ex_key < self.ex_key  # keys are unique: no ties
        self.ex_key = torch.where(take, other.ex_key, self.ex_key)
        self.ex_ctx = torch.where(take, other.ex_ctx, self.ex_ctx)
        self.ex_pos = torch.where(take, other.ex_pos, self.ex_pos)
        self.ex_value = torch.where(take, other.ex_value, self.ex_value)
        self.ex_window = torch.where(take[:, None], other.ex_window, self.ex_window)
        return self


def merge_states(states: list[IndexState]) -> IndexState:
    """One state from the states of disjoint shards (the first is merged into)."""
    if not states:
        raise ValueError("no states to merge")
    merged = states[0]
    for state in states[1:]:
        merged.merge(state)
    sort_top(merged)
    return merged


def accumulate(
    state: IndexState,
    acts: torch.Tensor,
    valid: torch.Tensor,
    ctx0: int,
    params: IndexParams,
    gen: torch.Generator,
) -> None:
    """Fold one batch into the state. acts: (batch, seq, d_sae); valid: (batch, seq) bool."""
    b, t, d_sae = acts.shape
    acts = acts.mul_(valid[..., None])  # BOS and padding never count (in place: no copy)
    state.n_tokens += int(valid.sum())
    k = params.top_k

    # Top-k contexts per latent by their max value, each with its per-token values. Slots
    # are unordered while streaming: a context that enters takes the slot of one that left,
    # so only entering contexts move data (build_index sorts the slots once, at the end).
    ctx_max = acts.amax(dim=1)  # (b, d_sae)
    cand_vals = torch.cat([state.top_values, ctx_max.T], dim=1)  # (d_sae, k + b)
    rows = torch.arange(ctx0, ctx0 + b, device=acts.device).expand(d_sae, b)
    cand_ctx = torch.cat([state.top_ctx, rows], dim=1)
    pick = top_order(cand_vals, cand_ctx, k)  # (d_sae, k): old slots (< k) or batch rows
    entering = pick >= k
    if bool(entering.any()):
        kept = torch.zeros((d_sae, k + 1), dtype=torch.bool, device=acts.device)
        kept.scatter_(1, torch.where(entering, k, pick), True)  # column k: a dump
        # Per latent, as many slots are freed as contexts enter; both lists are row-major,
        # so their i-th entries belong to the same latent.
        free_row, free_slot = (~kept[:, :k]).nonzero(as_tuple=True)
        enter_row, enter_j = entering.nonzero(as_tuple=True)
        batch_idx = pick[enter_row, enter_j] - k
        state.top_values[free_row, free_slot] = ctx_max[batch_idx, free_row]
        state.top_ctx[free_row, free_slot] = batch_idx + ctx0
        state.top_tokens[free_row, free_slot] = acts[batch_idx, :, free_row]  # (n, t)
    state.max = torch.maximum(state.max, ctx_max.amax(dim=0))

    # Sparse entries: density and mean, histogram counts, interval-example sampling.
    flat = (acts.reshape(-1) > 0).nonzero()[:, 0]
    if len(flat) == 0:
        return
    vals = acts.reshape(-1)[flat]
    li, bt = flat % d_sae, flat // d_sae
    bi, ti = bt // t, bt % t
    state.nonzero += torch.bincount(li, minlength=d_sae)
    fixed = torch.round(vals.double() * TOTAL_SCALE)  # integers: their float64 sums are exact
    state.total += torch.bincount(li, weights=fixed, minlength=d_sae).long()
    hb = bucket_of(vals, HIST_PER_OCTAVE, HIST_BUCKETS)
    state.hist.view(-1).index_add_(0, li * HIST_BUCKETS + hb, torch.ones_like(hb))
    slot = li * EX_BUCKETS + bucket_of(vals, EX_PER_OCTAVE, EX_BUCKETS)
    # Priority sampling: the smallest key wins its slot. Random high bits, the global token
    # position below them: keys are unique, so the winner does not depend on the order.
    rand = torch.randint(0, 2**KEY_RANDOM_BITS, (len(vals),), generator=gen, device=gen.device)
    keys = (rand << 32) | ((bi + ctx0) * t + ti)
    state.ex_key.scatter_reduce_(0, slot, keys, reduce="amin")
    won = keys == state.ex_key[slot]
    if bool(won.any()):
        ws, wb, wt, wl = slot[won], bi[won], ti[won], li[won]
        state.ex_ctx[ws] = wb + ctx0
        state.ex_pos[ws] = wt
        state.ex_value[ws] = vals[won]
        offsets = torch.arange(-WINDOW, WINDOW + 1, device=acts.device)
        pos = (wt[:, None] + offsets).clamp(0, t - 1)  # (w, 2W+1)
        window = acts[wb[:, None], pos, wl[:, None]]
        inside = ((wt[:, None] + offsets) >= 0) & ((wt[:, None] + offsets) < t)
        state.ex_window[ws] = window * inside


def valid_positions(ids: torch.Tensor, special: list[int]) -> torch.Tensor:
    valid = torch.ones_like(ids, dtype=torch.bool)
    for s in special:
        valid &= ids != s
    return valid


@torch.no_grad()
def build_index(
    model: HostedModel,
    sae: HostedSAE,
    contexts: Contexts,
    params: IndexParams,
    checkpoint: Path | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> IndexState:
    """Stream `contexts` through the model and SAE into the index state (resumable from
    `checkpoint`); `on_progress(batches done, batches)` after each batch. `contexts` may be
    a shard (`Contexts.shard`) that starts on a batch boundary: the state is then that
    shard's partial state, to be merged with the others (`merge_states`)."""
    device = model.device
    if contexts.first % params.batch_size:
        raise ValueError(
            f"a shard must start on a batch boundary: context {contexts.first} is not a "
            f"multiple of the batch size {params.batch_size}"
        )
    if (contexts.first + len(contexts)) * params.context > MAX_TOKENS:
        raise InvalidRequest(
            f"max_tokens: an index reads at most {MAX_TOKENS:,} tokens", field="max_tokens"
        )
    special = sorted(
        {
            i
            for i in (
                model.tokenizer.bos_token_id,
                model.tokenizer.eos_token_id,
                model.tokenizer.pad_token_id,
            )
            if i is not None
        }
    )
    first_batch = contexts.first // params.batch_size
    state = None
    if checkpoint is not None and checkpoint.exists():
        state = IndexState.from_state(
            torch.load(checkpoint, map_location=device, weights_only=False), device
        )
    if state is None:
        state = IndexState(sae.d_sae, params, device, first_batch)
    gen = torch.Generator(device=device)  # sampling keys drawn where the activations are
    n_batches = math.ceil(len(contexts) / params.batch_size)
    bar = tqdm(
        total=n_batches,
        initial=state.next_batch - first_batch,
        desc=f"index {sae.id}",
        disable=not progress,
        unit="batch",
    )
    for start, tokens in contexts.batches(params.batch_size, state.next_batch * params.batch_size):
        # Per-batch seed: a resumed build samples exactly what an uninterrupted one would.
        gen.manual_seed(params.seed * 1_000_003 + state.next_batch)
        ids = torch.from_numpy(tokens.astype("int64")).to(device)
        acts = latent_activations(model, sae, ids)  # (b, t, d_sae)
        accumulate(state, acts, valid_positions(ids, special), start, params, gen)
        state.next_batch += 1
        state.n_batches += 1
        bar.update(1)
        if on_progress is not None:
            on_progress(state.next_batch - first_batch, n_batches)
        if checkpoint is not None and state.next_batch % params.checkpoint_every == 0:
            tmp = checkpoint.with_suffix(".tmp")
            torch.save(state.state_dict(), tmp)
            tmp.replace(checkpoint)
    bar.close()
    sort_top(state)
    return state


def sort_top(state: IndexState) -> None:
    """Order each latent's top-k slots by value descending, then context ascending (the
    order of `top_order`; idempotent)."""
    order = top_order(state.top_values, state.top_ctx, state.top_values.shape[1])
    state.top_values = state.top_values.gather(1, order)
    state.top_ctx = state.top_ctx.gather(1, order)
    t = state.top_tokens.shape[-1]
    state.top_tokens = state.top_tokens.gather(1, order[..., None].expand(-1, -1, t))
