"""SAE arithmetic on residual-stream values: encoding, decoder directions and the three
steering edits (add, clamp, ablate). Shapes: h is (..., d_model); activations (..., d_sae).
"""

from contextlib import contextmanager

import torch

from app.engine.registry import HostedSAE


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
def pre_activation(hs: HostedSAE, h: torch.Tensor, latent: int) -> torch.Tensor:
    store: dict = {}
    with _capture_pre(hs, store):
        hs.sae.encode(sae_input(hs, h))
    return store["pre"][..., latent]


@torch.no_grad()
def decoder_direction(hs: HostedSAE, latent: int) -> torch.Tensor:
    """d_i = decode(e_i) - decode(0): what the SAE writes for one unit of latent i, in the
    model's residual space (this includes any output normalisation the SAE applies)."""
    cached = hs._unit_cache.get(latent)
    if cached is not None:
        return cached
    sae = hs.sae
    if sae.cfg.normalize_activations in ("layer_norm", "constant_norm_rescale"):
        raise ValueError(
            "this SAE rescales per token, so it has no fixed decoder direction; "
            "steer an SAE with normalize_activations 'none' or 'expected_average_only_in'"
        )
    codes = torch.zeros(2, hs.d_sae, dtype=sae.W_dec.dtype, device=sae.W_dec.device)
    codes[0, latent] = 1.0
    out = sae.decode(codes)  # (2, d_in)
    direction = (out[0] - out[1]).float()
    hs._unit_cache[latent] = direction
    return direction


@torch.no_grad()
def steer_values(
    hs: HostedSAE,
    h: torch.Tensor,
    latent: int,
    alphas: torch.Tensor,
    method: str,
) -> torch.Tensor:
    """Return h edited along latent `latent` with a per-row coefficient.

    h: (batch, seq, d_model). alphas: (batch,) float, NaN = leave that row unchanged.
    - add:    h + alpha * d_i
    - clamp:  h + t * d_i with t chosen so that re-encoding gives latent i == alpha (the SAE's
              pre-activation is affine along d_i, so one Newton step lands on it; a second
              step absorbs non-affine encoders). t equals alpha - a_i(h) when the encoder and
              decoder of latent i are matched (w_enc_i . d_i == 1) and the latent is active.
    - ablate: remove the component of h along the unit direction u_i, then add alpha * u_i.
    """
    # No early exit for all-NaN alphas: reading a GPU tensor back would stall every step.
    alphas = alphas.to(h.device, torch.float32)  # a no-op when the caller moved them once
    rows = ~torch.isnan(alphas)  # (batch,)
    d = decoder_direction(hs, latent).to(h.device)  # (d_model,)
    a = torch.nan_to_num(alphas, nan=0.0)[:, None, None]  # (b,1,1)
    hf = h.float()
    if method == "add":
        new = hf + a * d
    elif method == "ablate":
        u = d / d.norm().clamp_min(1e-12)
        coef = (sae_input(hs, hf) * u).sum(-1, keepdim=True)  # (b, s, 1)
        new = hf - coef * u + a * u
    elif method == "clamp":
        new = hf
        active = encode(hs, hf)[..., latent]  # (b, s)
        for _ in range(2):
            pre0 = pre_activation(hs, new, latent)
            slope = pre_activation(hs, new + d, latent) - pre0
            target = torch.where(
                a[..., 0] > 0,
                a[..., 0].expand_as(pre0),
                torch.minimum(pre0, torch.zeros_like(pre0)),
            )
            safe = slope.abs() > 1e-6
            step = torch.where(safe, (target - pre0) / torch.where(safe, slope, 1.0), 0.0)
            new = new + step[..., None] * d
        # A latent already off and asked to be off is left exactly as it was.
        untouched = (a[..., 0] == 0) & (active == 0)
        new = torch.where(untouched[..., None], hf, new)
    else:
        raise ValueError(f"unknown steering method {method!r}")
    new = torch.where(rows[:, None, None], new, hf)
    return new.to(h.dtype)
