"""SAE arithmetic on residual-stream values: encoding, decoder directions and the three
steering edits (add, clamp, ablate). Shapes: h is (..., d_model); activations (..., d_sae).
"""

from contextlib import contextmanager

import torch

from app.engine.registry import HostedSAE
from app.errors import InvalidRequest


def sae_input(hs: HostedSAE, h: torch.Tensor) -> torch.Tensor:
    """What the SAE was trained on. `center_writing_weights` models (e.g. gpt2-small-res-jb,
    trained on TransformerLens with centred writing weights) see the residual minus its mean
    over d_model."""
    return h - h.mean(dim=-1, keepdim=True) if hs.center else h


@torch.no_grad()
def encode(hs: HostedSAE, h: torch.Tensor) -> torch.Tensor:
    return hs.sae.encode(sae_input(hs, h))


@contextmanager
def _capture_pre(hs: HostedSAE, store: dict):
    """Capture the SAE's pre-activations (before ReLU / JumpReLU / TopK) during encode."""

    def grab(_module, _inputs, output):
        store["pre"] = output

    handle = hs.sae.hook_sae_acts_pre.register_forward_hook(grab)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def pre_activation(hs: HostedSAE, h: torch.Tensor, latent: int) -> torch.Tensor | None:
    """Latent `latent`'s pre-activation (None for an SAE whose encode has no such hook)."""
    store: dict = {}
    with _capture_pre(hs, store):
        hs.sae.encode(sae_input(hs, h))
    pre = store.get("pre")
    return None if pre is None else pre[..., latent].float()


@torch.no_grad()
def latent_value(hs: HostedSAE, h: torch.Tensor, latent: int) -> torch.Tensor:
    """Latent `latent` as the SAE's own `encode` gives it, (...,) float32: this includes
    TopK selection, JumpReLU thresholds, gates and `rescale_acts_by_decoder_norm`."""
    return encode(hs, h)[..., latent].float()


@torch.no_grad()
def decoder_directions(hs: HostedSAE, chunk: int = 4096) -> torch.Tensor:
    """Every latent's d_i (as `decoder_direction`), (d_sae, d_out) float32 on the CPU."""
    sae = hs.sae
    zero = sae.decode(torch.zeros(1, hs.d_sae, dtype=sae.W_dec.dtype, device=sae.W_dec.device))
    out = []
    for start in range(0, hs.d_sae, chunk):
        n = min(chunk, hs.d_sae - start)
        codes = torch.zeros(n, hs.d_sae, dtype=sae.W_dec.dtype, device=sae.W_dec.device)
        codes[torch.arange(n), torch.arange(start, start + n)] = 1.0
        out.append((sae.decode(codes) - zero).float().cpu())
    return torch.cat(out)


def decoder_direction(hs: HostedSAE, latent: int) -> torch.Tensor:
    """d_i = decode(e_i) - decode(0): what the SAE writes for one unit of latent i, in the
    model's space at the hook it writes (this includes `rescale_acts_by_decoder_norm`)."""
    cached = hs._unit_cache.get(latent)
    if cached is not None:
        return cached
    hs.check_steerable("add")  # per-token normalisation has no fixed direction: a 4xx
    sae = hs.sae
    codes = torch.zeros(2, hs.d_sae, dtype=sae.W_dec.dtype, device=sae.W_dec.device)
    codes[0, latent] = 1.0
    out = sae.decode(codes)  # (2, d_out)
    direction = (out[0] - out[1]).float()
    hs._unit_cache[latent] = direction
    return direction


@torch.no_grad()
def move_to(
    hs: HostedSAE, h: torch.Tensor, latent: int, target: torch.Tensor, d: torch.Tensor
) -> torch.Tensor:
    """Move h along d so that the SAE's own encoding of latent `latent` equals `target`
    (broadcast over h's leading dims). The pre-activation is affine along d, so Newton steps
    on it land the latent in its active (or inactive, for 0) region; then Newton steps on the
    `encode` output itself absorb whatever the architecture does after the pre-activation
    (decoder-norm rescaling, gates). Positions where the target cannot be reached along d
    (a closed gate, a latent outside the top k) end as close as the steps get."""
    new = h
    for _ in range(2):
        pre0 = pre_activation(hs, new, latent)
        pre1 = pre_activation(hs, new + d, latent)
        if pre0 is None or pre1 is None:
            break
        slope = pre1 - pre0
        safe = slope.abs() > 1e-6
        step = torch.where(safe, (target - pre0) / torch.where(safe, slope, 1.0), 0.0)
        new = new + step[..., None] * d
    # Still off though asked to be on (an SAE without a pre-activation, e.g. matching
    # pursuit, or a gate still closed): push `target` units along d to switch it on.
    off = (latent_value(hs, new, latent) == 0) & (target > 0)
    new = new + torch.where(off, target, 0.0)[..., None] * d
    for _ in range(4):
        g0 = latent_value(hs, new, latent)
        slope = latent_value(hs, new + d, latent) - g0
        ok = (g0 != 0) & (slope.abs() > 1e-6)
        step = torch.where(ok, (target - g0) / torch.where(ok, slope, 1.0), 0.0)
        new = new + step[..., None] * d
    return new


@torch.no_grad()
def steer_values(
    hs: HostedSAE,
    h: torch.Tensor,
    latent: int,
    alphas: torch.Tensor,
    method: str,
    source: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return h edited along latent `latent` with a per-row coefficient.

    h: (batch, seq, d_model), the value at the hook the SAE writes. alphas: (batch,) float,
    NaN = leave that row unchanged. For a transcoder, `source` is the value at the hook it
    reads (where its latents are computed); h is then its output hook's value.
    - add:    h + alpha * d_i (d_i: what the decoder writes per unit of latent i)
    - clamp:  latent i, as the SAE's own `encode` gives it, set to alpha. An SAE: h moves
              along d_i until re-encoding gives alpha. A transcoder: h + (alpha - a_i) d_i,
              with a_i encoded from `source`. A latent already off and asked to be off is
              left exactly as it was.
    - ablate: clamp to 0, then add alpha * u_i (u_i = d_i / |d_i|, residual-norm units).
    """
    d = decoder_direction(hs, latent).to(h.device)  # (d_model,)
    if method == "add":  # the one code path a direction's `add` takes too (add_vector)
        return add_vector(h, d, alphas)
    # No early exit for all-NaN alphas: reading a GPU tensor back would stall every step.
    alphas = alphas.to(h.device, torch.float32)  # a no-op when the caller moved them once
    rows = ~torch.isnan(alphas)  # (batch,)
    u = d / d.norm().clamp_min(1e-12)
    a = torch.nan_to_num(alphas, nan=0.0)[:, None, None]  # (b,1,1)
    hf = h.float()
    if method in ("clamp", "ablate"):
        target = a[..., 0] if method == "clamp" else torch.zeros_like(a[..., 0])  # (b,1)
        if source is not None:  # transcoder: the latent comes from the input hook
            active = latent_value(hs, source.float(), latent)  # (b, s)
            edit = (target > 0) | (active != 0)
            new = hf + torch.where(edit, target - active, 0.0)[..., None] * d
        else:
            active = latent_value(hs, hf, latent)  # (b, s)
            edit = (target > 0) | (active != 0)
            moved = move_to(hs, hf, latent, target.expand_as(active), d)
            new = torch.where(edit[..., None], moved, hf)
        if method == "ablate":
            new = new + a * u
    else:
        raise InvalidRequest(
            f"method: unknown steering method {method!r}; valid: 'add', 'clamp', 'ablate'",
            field="method",
        )
    new = torch.where(rows[:, None, None], new, hf)
    return new.to(h.dtype)


@torch.no_grad()
def add_vector(h: torch.Tensor, d: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """h + alpha * d per row (NaN: row unchanged). A latent's `add` (d = d_i) and a
    direction's `add` share this code, so a direction made from a latent steers exactly
    like the latent."""
    alphas = alphas.to(h.device, torch.float32)
    rows = ~torch.isnan(alphas)
    a = torch.nan_to_num(alphas, nan=0.0)[:, None, None]
    hf = h.float()
    new = torch.where(rows[:, None, None], hf + a * d.to(h.device), hf)
    return new.to(h.dtype)


@torch.no_grad()
def project_out(h: torch.Tensor, d: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """h minus its component along d (directional ablation), on the rows whose alpha is
    not NaN; the alpha's value is not used."""
    alphas = alphas.to(h.device, torch.float32)
    rows = ~torch.isnan(alphas)
    hf = h.float()
    u = d.to(h.device, torch.float32)
    u = u / u.norm().clamp_min(1e-12)
    new = torch.where(rows[:, None, None], hf - (hf @ u)[..., None] * u, hf)
    return new.to(h.dtype)
