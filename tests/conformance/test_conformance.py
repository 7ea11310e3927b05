"""Conformance: every model family of the zoo × every SAELens architecture, against
independent references (transformers' own hidden states and generate, plain PyTorch hooks,
the SAE's own encode). The matrix of results is printed at the end of the run.

    python -m pytest tests/conformance            # about half a minute on two cores
"""

import math
from contextlib import contextmanager

import pytest
import torch

from app.engine.activations import hook_values, latent_activations
from app.engine.generation import Steering, cut_at_stop, generate, steering_hooks
from app.engine.hooks import list_hook_points, module_output_shapes
from app.errors import InvalidRequest
from tests.conformance.conftest import record
from tests.conformance.zoo import (
    FAMILIES,
    PROMPT,
    READ_LAYER,
    REFUSED,
    SAE_KINDS,
)

MODELS = [f.name for f in FAMILIES] + ["llama-lora"]
N_NEW = 6
CHECK_OF = {"add": "add = reference", "clamp": "clamp on target", "ablate": "ablate zeroes"}


@contextmanager
def checking(model_id: str, kind: str | None, check: str):
    """Record the outcome of one check in the matrix (row per model and per SAE kind)."""
    rows = [model_id] + ([f"sae:{kind}"] if kind else [])
    try:
        yield
    except AssertionError:
        for row in rows:
            record(row, check, "FAIL")
        raise
    for row in rows:
        record(row, check, "ok")


def decoder_layers(hf) -> torch.nn.ModuleList:
    """The decoder blocks, found without the engine's family table: the ModuleList with one
    entry per layer that holds most of the parameters."""
    n = hf.config.get_text_config().num_hidden_layers
    lists = [m for _, m in hf.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n]
    return max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))


def reference_direction(hs, latent: int) -> torch.Tensor:
    """What one unit of the latent writes, from the weights alone."""
    row = hs.sae.W_dec[latent].detach().float()
    if getattr(hs.sae.cfg, "rescale_acts_by_decoder_norm", False):
        row = row / row.norm()
    return row


def reference_latents(model, hs, ids: torch.Tensor) -> torch.Tensor:
    """SAE activations from an independent forward: output_hidden_states for the residual
    stream, a plain pre-hook on the MLP for a transcoder's input."""
    with torch.no_grad():
        if hs.is_transcoder:
            captured = {}
            mlp = decoder_layers(model.hf)[READ_LAYER].mlp
            handle = mlp.register_forward_pre_hook(lambda _m, a: captured.setdefault("x", a[0]))
            try:
                model.hf(input_ids=ids, use_cache=False)
            finally:
                handle.remove()
            return hs.sae.encode(captured["x"]).float()
        hidden = model.hf(input_ids=ids, output_hidden_states=True).hidden_states[READ_LAYER]
        return hs.sae.encode(hidden).float()


def reference_add(model, hs, ids: list[int], latent: int, alpha: float) -> list[int]:
    """Greedy decoding without a KV cache, adding alpha * direction where the SAE writes: a
    residual SAE at blocks.L's input; a transcoder at blocks.L's MLP output, which is the
    same as blocks.(L+1)'s input."""
    layer = READ_LAYER + 1 if hs.is_transcoder else READ_LAYER
    direction = alpha * reference_direction(hs, latent)
    block = decoder_layers(model.hf)[layer]

    def pre(_module, args, kwargs):
        if args:
            return (args[0] + direction, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + direction}

    handle = block.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        tokens = torch.tensor([ids])
        with torch.no_grad():
            for _ in range(N_NEW):
                logits = model.hf(input_ids=tokens, use_cache=False).logits[:, -1]
                tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
    finally:
        handle.remove()
    return tokens[0, len(ids) :].tolist()


def chat(model) -> bool:
    return bool(model.tokenizer.chat_template)


# ----------------------------------------------------------------------------- per model
@pytest.mark.parametrize("model_id", MODELS)
def test_exactly_one_bos(zoo, model_id):
    model = zoo.model(model_id)
    tok = model.tokenizer
    with checking(model_id, None, "one BOS"):
        ids = model.encode_prompt(PROMPT, chat=chat(model))
        if tok.bos_token_id is None:
            assert tok.bos_token_id not in ids
        else:
            assert ids[0] == tok.bos_token_id
            assert ids.count(tok.bos_token_id) == 1 or tok.bos_token_id == tok.eos_token_id
            assert ids[1] != tok.bos_token_id
        if chat(model):
            # the template's own rendering, tokenised as transformers does it
            expected = tok.apply_chat_template(
                [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=True
            )["input_ids"]
            assert ids[-len(expected) :] == expected and len(ids) - len(expected) <= 1


@pytest.mark.parametrize("model_id", MODELS)
def test_end_of_turn_list_stops_generation(zoo, zoo_stops, model_id):
    """Our generate stops where transformers' own generate (which reads the generation
    config's eos_token_id list) stops, at the family's end-of-turn token."""
    model = zoo.model(model_id)
    family = model.base_id or model_id
    stop = zoo_stops[family]["stop"]
    with checking(model_id, None, "end-of-turn stops"), zoo.activate(model_id) as live:
        ids = live.encode_prompt(PROMPT, chat=chat(live))
        ours = generate(live, [ids], max_new_tokens=12)[0]
        with torch.no_grad():
            out = live.hf.generate(
                input_ids=torch.tensor([ids]), max_new_tokens=12, do_sample=False
            )[0, len(ids) :].tolist()
        assert stop in live.stop_token_ids
        if model_id == family:  # the zoo placed the stop token in the base's continuation
            assert stop in out and len(ours) < 12
        cut = (
            out[: min(out.index(t) for t in live.stop_token_ids if t in out)]
            if any(t in out for t in live.stop_token_ids)
            else out
        )
        assert ours == cut
        assert not set(ours) & set(live.stop_token_ids)


@pytest.mark.parametrize("model_id", [f.name for f in FAMILIES])
def test_hooks_listed_are_d_model_tensors(zoo, model_id):
    """Start-up probed every (model, SAE) pair (the registry loaded); the hook list names
    only module paths whose output is a (batch, seq, d_model) tensor."""
    model = zoo.model(model_id)
    with checking(model_id, None, "hooks probed"):
        shapes = module_output_shapes(model.hf)
        modules = [p["name"] for p in list_hook_points(model.hf) if p["convention"] == "module"]
        assert modules
        for name in modules:
            assert shapes[name] is not None and shapes[name][-1] == model.d_model, name
        tl = [p["name"] for p in list_hook_points(model.hf) if p["convention"] != "module"]
        assert f"blocks.{READ_LAYER}.hook_resid_pre" in tl


# ------------------------------------------------------------------------ per (model, SAE)
def _pick_latent(acts: torch.Tensor) -> int:
    counts = (acts[0] != 0).sum(0)  # (d_sae,)
    return int(counts.argmax())


@pytest.mark.parametrize("kind", list(SAE_KINDS))
@pytest.mark.parametrize("model_id", MODELS)
def test_pair(zoo, model_id, kind):
    hs = zoo.sae(kind)
    with zoo.activate(model_id) as model:
        ids = model.encode_prompt(PROMPT, chat=chat(model))
        tensor_ids = torch.tensor([ids])
        with checking(model_id, kind, "activations"):
            ours = latent_activations(model, hs, tensor_ids)
            expected = reference_latents(model, hs, tensor_ids)
            assert (expected != 0).any()
            torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
        latent = _pick_latent(ours)
        h = hook_values(model, hs.hooks[model_id], tensor_ids)
        refused = REFUSED.get(kind, ())
        for method in refused:
            steer = Steering(hs, latent, torch.tensor([math.nan, 1.0]), method)
            with pytest.raises(InvalidRequest, match=kind.split("_")[0]):
                generate(model, [ids] * 2, max_new_tokens=2, steering=steer)
            for row in (model_id, f"sae:{kind}"):
                record(row, CHECK_OF[method], "refused")
        unit = reference_direction(hs, latent)
        alpha = float(2.0 * h.norm(dim=-1).mean() / unit.norm())
        if "add" not in refused:
            with checking(model_id, kind, "add = reference"):
                steer = Steering(hs, latent, torch.tensor([math.nan, alpha]), "add")
                rows = generate(model, [ids] * 2, max_new_tokens=N_NEW, steering=steer)
                assert rows[1] == cut_at_stop(
                    reference_add(model, hs, ids, latent, alpha), model.stop_token_ids
                )
        target = max(3.0, 1.5 * float(ours.abs().max()))
        if "clamp" not in refused:
            with checking(model_id, kind, "clamp on target"):
                got = _latent_after_edit(model, hs, tensor_ids, latent, "clamp", target)
                assert got == pytest.approx([target] * len(ids), abs=1e-3)
        if "ablate" not in refused:
            with checking(model_id, kind, "ablate zeroes"):
                assert (ours[0, :, latent] != 0).any()
                got = _latent_after_edit(model, hs, tensor_ids, latent, "ablate", 0.0)
                assert got == pytest.approx([0.0] * len(ids), abs=1e-3)


def _latent_after_edit(model, hs, ids, latent, method, alpha) -> list[float]:
    """The latent after the edit, per prompt position. An SAE: re-encode the edited value
    with the SAE's own encode. A transcoder: its latent read at the input plus the edit's
    component at the output, in units of its decoder row (what the output now carries)."""
    steer = Steering(hs, latent, torch.tensor([alpha]), method)
    read = hs.hooks[model.id]
    if not hs.is_transcoder:
        with steering_hooks(model, steer):
            edited = hook_values(model, read, ids)  # read after the edit (installed later)
        return hs.sae.encode(edited)[0, :, latent].float().tolist()
    write = hs.write_hook(model.id)
    plain_out = hook_values(model, write, ids)
    with steering_hooks(model, steer):
        edited_out = hook_values(model, write, ids)
    source = hook_values(model, read, ids)
    row = reference_direction(hs, latent)
    moved = ((edited_out - plain_out).float() @ row) / (row @ row)  # (1, seq)
    return (hs.sae.encode(source)[..., latent].float() + moved)[0].tolist()
