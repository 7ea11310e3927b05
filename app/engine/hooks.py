"""Hook points: where an SAE reads the model, resolved once per (model, hook name).

An SAE's `hook_name` is either a HuggingFace module path (the SAELens convention for SAEs
trained on `AutoModelForCausalLM`: the module's output) or a TransformerLens name
(`blocks.L.hook_resid_pre` and friends), translated here onto HF modules per model family.

Every hook point can be read (capture the value, optionally stop the forward pass there)
and written (replace the value by `fn(value)`): writes go to the module whose output is
added to the residual stream, so they propagate exactly like an edit of the TL hook.
"""

import re
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from app.errors import InvalidRequest, choices


@dataclass(frozen=True)
class Family:
    """Where a decoder-only family keeps its blocks and the modules inside a block."""

    layers: str  # ModuleList of decoder blocks
    attn_writer: str  # block submodule whose output is added to the residual after attention
    mlp_writer: str  # block submodule whose output is added to the residual after the MLP
    mid_reader: str | None  # block submodule whose *input* is resid_mid; None = parallel blocks
    final_norm: str
    unembed: str = "lm_head"
    mlp: str = "mlp"  # block submodule whose *input* is the MLP's input (hook_mlp_in)


_LLAMA_LIKE = Family(
    layers="model.layers",
    attn_writer="self_attn",
    mlp_writer="mlp",
    mid_reader="post_attention_layernorm",
    final_norm="model.norm",
)
_GEMMA2_LIKE = Family(
    layers="model.layers",
    attn_writer="post_attention_layernorm",
    mlp_writer="post_feedforward_layernorm",
    mid_reader="pre_feedforward_layernorm",
    final_norm="model.norm",
)

_OLMO2_LIKE = Family(  # norms after each sublayer, none before: the MLP reads resid_mid itself
    layers="model.layers",
    attn_writer="post_attention_layernorm",
    mlp_writer="post_feedforward_layernorm",
    mid_reader="mlp",
    final_norm="model.norm",
)

# Keyed by `config.model_type`. Constants are data: add a family here, not in the code below.
FAMILIES: dict[str, Family] = {
    "gpt2": Family(
        layers="transformer.h",
        attn_writer="attn",
        mlp_writer="mlp",
        mid_reader="ln_2",
        final_norm="transformer.ln_f",
    ),
    "gpt_neox": Family(
        layers="gpt_neox.layers",
        attn_writer="attention",
        mlp_writer="mlp",
        mid_reader="post_attention_layernorm",  # only when use_parallel_residual is False
        final_norm="gpt_neox.final_layer_norm",
        unembed="embed_out",
    ),
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _GEMMA2_LIKE,
    "gemma3_text": _GEMMA2_LIKE,
    # Gemma 3 with vision: the language model sits inside the multimodal wrapper.
    "gemma3": Family(
        layers="model.language_model.layers",
        attn_writer="post_attention_layernorm",
        mlp_writer="post_feedforward_layernorm",
        mid_reader="pre_feedforward_layernorm",
        final_norm="model.language_model.norm",
    ),
    "phi3": _LLAMA_LIKE,  # its resid dropouts are identities in eval
    "olmo": _LLAMA_LIKE,
    "olmo2": _OLMO2_LIKE,
    "olmo3": _OLMO2_LIKE,
    "phi": Family(  # attention and MLP in parallel on one layer norm
        layers="model.layers",
        attn_writer="self_attn",
        mlp_writer="mlp",
        mid_reader=None,
        final_norm="model.final_layernorm",
    ),
}

TL_HOOKS = (
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
    "hook_mlp_in",
)
# Transcoders name their input by TransformerLens' normalised MLP input.
TL_ALIASES = {"ln2.hook_normalized": "hook_mlp_in"}
_TL_PATTERN = re.compile(r"^blocks\.(\d+)\.((?:ln2\.)?hook_\w+)$")


@dataclass(frozen=True)
class HookPoint:
    """A resolved hook: read `module`'s input or output; for resid_mid, the value is
    `residual_from`'s input plus `module`'s output (what the residual holds after attention)."""

    name: str
    module: str
    side: Literal["input", "output"]
    layer: int | None  # decoder block index, used to describe the hook
    residual_from: str | None = None

    def describe(self) -> str:
        if self.residual_from:
            return f"input of {self.residual_from} + output of {self.module}"
        return f"{self.side} of {self.module}"


class StopForward(Exception):
    """Raised by a read hook to stop the forward pass once the hooked value is captured."""


def family_of(model: nn.Module) -> Family | None:
    return FAMILIES.get(getattr(model.config, "model_type", ""))


def n_layers(model: nn.Module) -> int:
    cfg = model.config
    if hasattr(cfg, "get_text_config"):
        cfg = cfg.get_text_config()
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        if getattr(cfg, attr, None) is not None:
            return int(getattr(cfg, attr))
    raise ValueError(f"cannot tell the number of layers of {type(model).__name__}")


def _parallel_residual(model: nn.Module) -> bool:
    return bool(getattr(model.config, "use_parallel_residual", False))


def resolve_hook(model: nn.Module, hook_name: str) -> HookPoint:
    """Translate an SAE hook name into a HookPoint on this HF model, or raise InvalidRequest."""
    modules = dict(model.named_modules())
    if hook_name in modules and hook_name != "":
        if isinstance(modules[hook_name], nn.ModuleList | nn.ModuleDict):
            raise InvalidRequest(
                f"hook {hook_name!r} is a container of modules that never runs itself; "
                f"name one of its modules, e.g. {choices(list_module_hooks(model)[:3])}",
                field="hook_name",
            )
        layer = _layer_of(model, hook_name)
        return HookPoint(name=hook_name, module=hook_name, side="output", layer=layer)
    match = _TL_PATTERN.match(hook_name)
    family = family_of(model)
    if not match:
        raise InvalidRequest(
            f"hook {hook_name!r} is neither a module of this model nor a TransformerLens name; "
            f"supported TransformerLens names: blocks.L.{{{','.join(TL_HOOKS)}}} with "
            f"0 <= L < {n_layers(model)}, or any module path, e.g. "
            f"{choices(list_module_hooks(model)[:3])}",
            field="hook_name",
        )
    if family is None:
        raise InvalidRequest(
            f"TransformerLens hook names are not mapped for model type "
            f"{model.config.model_type!r}; supported types: {choices(FAMILIES)}. "
            f"Use a module path instead.",
            field="hook_name",
        )
    layer, kind = int(match.group(1)), match.group(2)
    kind = TL_ALIASES.get(kind, kind)
    n = n_layers(model)
    if not 0 <= layer < n:
        raise InvalidRequest(f"hook {hook_name!r}: layer must be in [0, {n})", field="hook_name")
    block = f"{family.layers}.{layer}"
    if kind == "hook_resid_pre":
        return HookPoint(hook_name, block, "input", layer)
    if kind == "hook_resid_post":
        return HookPoint(hook_name, block, "output", layer)
    if kind == "hook_attn_out":
        return HookPoint(hook_name, f"{block}.{family.attn_writer}", "output", layer)
    if kind == "hook_mlp_out":
        return HookPoint(hook_name, f"{block}.{family.mlp_writer}", "output", layer)
    if kind == "hook_mlp_in":
        return HookPoint(hook_name, f"{block}.{family.mlp}", "input", layer)
    if kind == "hook_resid_mid":
        if family.mid_reader is None or _parallel_residual(model):
            raise InvalidRequest(
                f"hook {hook_name!r}: this model runs attention and MLP in parallel, so there "
                f"is no resid_mid; use hook_resid_pre or hook_resid_post",
                field="hook_name",
            )
        return HookPoint(
            hook_name, f"{block}.{family.attn_writer}", "output", layer, residual_from=block
        )
    raise InvalidRequest(
        f"hook {hook_name!r}: {kind!r} is not supported; supported: {choices(TL_HOOKS)}",
        field="hook_name",
    )


def _layer_of(model: nn.Module, module_name: str) -> int | None:
    family = family_of(model)
    if family and module_name.startswith(family.layers + "."):
        head = module_name[len(family.layers) + 1 :].split(".")[0]
        if head.isdigit():
            return int(head)
    return None


_WIDTHS: "weakref.WeakKeyDictionary[nn.Module, dict[str, tuple | None]]" = (
    weakref.WeakKeyDictionary()
)


@torch.no_grad()
def module_output_shapes(model: nn.Module) -> dict[str, tuple | None]:
    """Each module's output shape in one tiny forward pass (None: not a tensor, or never
    run). Computed once per model."""
    cached = _WIDTHS.get(model)
    if cached is not None:
        return cached
    shapes: dict[str, tuple | None] = {n: None for n, _ in model.named_modules() if n}
    handles = []

    def record(name):
        def fn(_module, _args, output):
            out = _first_tensor(output)
            shapes[name] = tuple(out.shape) if isinstance(out, torch.Tensor) else None

        return fn

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(record(name)))
        device = next(model.parameters()).device
        ids = torch.tensor([[0, 1, 2]], device=device)
        try:
            model(input_ids=ids, use_cache=False)
        except Exception:  # noqa: BLE001 - a model that needs more inputs lists nothing
            shapes = {n: None for n in shapes}
    finally:
        for handle in handles:
            handle.remove()
    _WIDTHS[model] = shapes
    return shapes


def _d_model(model: nn.Module) -> int:
    return int(model.get_input_embeddings().weight.shape[1])


def list_module_hooks(model: nn.Module) -> list[str]:
    """Module paths whose output is a (batch, seq, d_model) tensor: what a residual-width
    SAE can read there."""
    width = _d_model(model)
    names = [
        name
        for name, shape in module_output_shapes(model).items()
        if shape is not None and len(shape) == 3 and shape[-1] == width
    ]
    family = family_of(model)
    if family is None:
        return names
    blocks = [f"{family.layers}.{i}" for i in range(n_layers(model))]  # the usual choice first
    return [b for b in blocks if b in names] + [n for n in names if n not in blocks]


def list_hook_points(model: nn.Module) -> list[dict]:
    """Every supported TransformerLens name and module path, with what it reads."""
    points = []
    family = family_of(model)
    if family is not None:
        for layer in range(n_layers(model)):
            for kind in TL_HOOKS:
                name = f"blocks.{layer}.{kind}"
                try:
                    hp = resolve_hook(model, name)
                except InvalidRequest:
                    continue
                points.append(
                    {
                        "name": name,
                        "convention": "transformer_lens",
                        "layer": layer,
                        "reads": hp.describe(),
                    }
                )
    for name in list_module_hooks(model):
        points.append(
            {
                "name": name,
                "convention": "module",
                "layer": _layer_of(model, name),
                "reads": f"output of {name}",
            }
        )
    return points


def _first_tensor(value):
    return value[0] if isinstance(value, tuple) else value


def _replace_first(value, tensor):
    if isinstance(value, tuple):
        return (tensor, *value[1:])
    return tensor


@contextmanager
def hook(
    model: nn.Module,
    point: HookPoint,
    fn: Callable[[torch.Tensor], torch.Tensor | None],
) -> Iterator[None]:
    """Call `fn(value)` each time the hook point is computed; if it returns a tensor, that
    replaces the value for the rest of the forward pass. Hooks are removed in `finally`."""
    modules = dict(model.named_modules())
    handles = []
    try:
        if point.residual_from is not None:
            captured: dict[str, torch.Tensor] = {}

            def capture(_module, args, kwargs):
                captured["x"] = args[0] if args else kwargs["hidden_states"]

            def on_writer(_module, _args, output):
                out = _first_tensor(output)
                value = captured.pop("x") + out  # (batch, seq, d_model): resid_mid
                new = fn(value)
                if new is None:
                    return None
                return _replace_first(output, out + (new - value))

            handles.append(
                modules[point.residual_from].register_forward_pre_hook(capture, with_kwargs=True)
            )
            handles.append(modules[point.module].register_forward_hook(on_writer))
        elif point.side == "input":

            def on_input(_module, args, kwargs):
                value = args[0] if args else kwargs["hidden_states"]
                new = fn(value)
                if new is None:
                    return None
                if args:
                    return (new, *args[1:]), kwargs
                return args, {**kwargs, "hidden_states": new}

            handles.append(
                modules[point.module].register_forward_pre_hook(on_input, with_kwargs=True)
            )
        else:

            def on_output(_module, _args, output):
                new = fn(_first_tensor(output))
                return None if new is None else _replace_first(output, new)

            handles.append(modules[point.module].register_forward_hook(on_output))
        yield
    finally:
        for handle in handles:
            handle.remove()
