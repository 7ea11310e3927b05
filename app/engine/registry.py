"""Loads the models, PEFT adapters and SAEs of a model config once, at start-up.

Adapters over the same base share one `PeftModel`: the base weights exist once in memory,
and `Registry.activate(model_id)` switches which adapter (or none) is live. Only the
device worker calls `activate`, so requests never race on adapter state.
"""

import difflib
import hashlib
import importlib.util
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from sae_lens import SAE
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from app.engine.config import LoadedConfig, ModelSpec, SAESpec, load_config
from app.engine.hooks import HookPoint, hook, module_output_shapes, n_layers, resolve_hook
from app.errors import ConfigError, DomainError, InvalidRequest, NotFound, choices

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available")
    return torch.device(name)


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return DTYPES[name]


def file_fingerprint(directory: Path, patterns=("*.safetensors", "*.bin")) -> str:
    """sha256 over the weight files of a directory (names and bytes, sorted by name)."""
    digest = hashlib.sha256()
    files = sorted(p for pat in patterns for p in directory.glob(pat))
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return "sha256:" + digest.hexdigest()[:32]


def tensor_fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()[:32]


@dataclass
class HostedModel:
    id: str
    spec: ModelSpec
    source: str  # local path or hub id the weights came from
    hf: PreTrainedModel  # the HF model (LoRA layers injected in place when adapters exist)
    tokenizer: Any
    fingerprint: str
    device: torch.device
    dtype: torch.dtype
    base_id: str | None = None  # for adapters: the base model id
    adapter_source: str | None = None
    peft: PeftModel | None = None  # shared wrapper when this model or its base has adapters

    @property
    def n_layers(self) -> int:
        return n_layers(self.hf)

    @property
    def d_model(self) -> int:
        return int(self.hf.get_input_embeddings().weight.shape[1])

    @property
    def max_positions(self) -> int:
        cfg = self.hf.config.get_text_config()  # the language model's, inside multimodal ones
        for attr in ("n_positions", "max_position_embeddings"):
            if getattr(cfg, attr, None):
                return int(getattr(cfg, attr))
        return 2048

    @property
    def stop_token_ids(self) -> list[int]:
        """Every token that ends a turn: the generation config's `eos_token_id` (an int or a
        list, e.g. Gemma-2-it's [1, 107], Llama-3-Instruct's <|eot_id|>) and the
        tokenizer's EOS, deduplicated, in that order."""
        eos = getattr(getattr(self.hf, "generation_config", None), "eos_token_id", None)
        listed = [eos] if isinstance(eos, int) else list(eos or [])
        out: list[int] = []
        for token in [*listed, self.tokenizer.eos_token_id]:
            if token is not None and int(token) not in out:
                out.append(int(token))
        return out

    @property
    def end_of_turn_texts(self) -> list[str]:
        """The stop tokens as text (for cutting answers decoded without them)."""
        texts = [self.tokenizer.decode([t]) for t in self.stop_token_ids]
        return [t for t in texts if t.strip()]

    def _one_bos(self, ids: list[int]) -> list[int]:
        bos = self.tokenizer.bos_token_id
        if self.spec.prepend_bos and bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        return ids

    def encode(self, text: str) -> list[int]:
        """Plain text: the tokenizer's own special tokens, and BOS when it adds none. Text
        that already starts with the BOS token (a rendered chat template) keeps one BOS."""
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        bos = self.tokenizer.bos_token_id
        if bos is not None and len(ids) > 1 and ids[0] == ids[1] == bos:
            ids = ids[1:]
        return self._one_bos(ids)

    def encode_prompt(
        self, prompt: str | list[dict], chat: bool, field: str = "prompt"
    ) -> list[int]:
        """Token ids of a prompt. With `chat`, the model's chat template renders a user turn
        (or the given messages) and the generation prompt; the rendered text already holds
        the template's special tokens, so it is tokenised without adding them again:
        exactly one BOS, whether the template writes it or not."""
        if not chat:
            if not isinstance(prompt, str):
                raise InvalidRequest(f"{field}: a list of messages needs chat=true", field=field)
            return self.encode(prompt)
        if not self.tokenizer.chat_template:
            raise InvalidRequest(
                f"chat: model {self.id!r} has no chat template; send chat=false", field="chat"
            )
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        try:
            text = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # noqa: BLE001 - the template rejected the messages
            raise InvalidRequest(
                f"{field}: the chat template of model {self.id!r} rejected the messages: "
                f"{_one_line(exc)}",
                field=field,
            ) from exc
        return self._one_bos(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_conversation(
        self, messages: list[dict], field: str = "messages"
    ) -> tuple[list[int], int]:
        """(token ids, where the newest assistant turn starts) of a conversation rendered
        with the chat template. A last user (or system) turn gets the generation prompt and
        its answer is the newest turn; a last assistant turn is left open, to be continued,
        and is itself the newest turn. The start is the length of the conversation before
        that turn, rendered and tokenised the same way."""
        if not self.tokenizer.chat_template:
            raise InvalidRequest(
                f"{field}: model {self.id!r} has no chat template, so it cannot render a "
                "conversation; send `prompt` with chat=false",
                field=field,
            )
        open_turn = messages[-1]["role"] == "assistant"

        def render(turns: list[dict], **kwargs) -> list[int]:
            try:
                text = self.tokenizer.apply_chat_template(turns, tokenize=False, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the template rejected the messages
                raise InvalidRequest(
                    f"{field}: the chat template of model {self.id!r} rejected the "
                    f"conversation: {_one_line(exc)}",
                    field=field,
                ) from exc
            return self._one_bos(self.tokenizer(text, add_special_tokens=False)["input_ids"])

        if open_turn:
            ids = render(messages, continue_final_message=True)
            before = render(messages[:-1]) if len(messages) > 1 else []
        else:
            ids = render(messages, add_generation_prompt=True)
            before = render(messages)
        start = len(before) if ids[: len(before)] == before else _common_prefix(ids, before)
        return ids, min(start, len(ids))

    def pad(self, rows: list[list[int]], side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
        """Token rows as one (batch, width) tensor and its attention mask, padded on `side`
        with the tokenizer's pad token. Right padding keeps every real token at its true
        position in a plain forward pass; generation pads on the left."""
        out = self.tokenizer.pad({"input_ids": rows}, padding_side=side, return_tensors="pt")
        return out["input_ids"], out["attention_mask"]

    def token_strings(self, ids: list[int]) -> list[str]:
        return [self.tokenizer.decode([i]) for i in ids]

    def public(self) -> dict:
        return {
            "id": self.id,
            "source": self.source,
            "base": self.base_id or self.spec.finetuned_from,
            "adapter": self.adapter_source,
            "kind": "adapter" if self.adapter_source else "model",
            "architecture": self.hf.config.model_type,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "vocab_size": int(self.hf.get_output_embeddings().weight.shape[0]),
            "max_positions": self.max_positions,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "fingerprint": self.fingerprint,
            "stop_token_ids": self.stop_token_ids,
            "chat_template": bool(self.tokenizer.chat_template),
            "description": self.spec.description,
        }


# normalize_activations modes that rescale each token: no fixed decoder direction to steer.
PER_TOKEN_NORMS = ("layer_norm", "constant_norm_rescale")
# Architectures whose encoding of a token depends on other tokens: steering during cached
# generation would encode each new token without its context.
CONTEXTUAL = ("temporal",)
# Architectures whose encoding is a greedy search that jumps as the input moves: no edit
# along one decoder direction sets one latent to a value, so only `add` is offered.
ADD_ONLY = ("matching_pursuit",)


@dataclass
class HostedSAE:
    id: str
    spec: SAESpec
    source: str
    sae: SAE
    hook_name: str
    hooks: dict[str, HookPoint]  # model id -> resolved hook point
    center: bool  # subtract the residual's mean over d_model before encoding
    fingerprint: str
    # Transcoders read at `hook_name` and write at `hook_name_out`; SAEs write where they read.
    hook_name_out: str | None = None
    write_hooks: dict[str, HookPoint] = field(default_factory=dict)
    release: str | None = None
    sae_id: str | None = None
    neuronpedia_id: str | None = None  # e.g. "gpt2-small/8-res-jb", when SAELens lists one
    _unit_cache: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def is_transcoder(self) -> bool:
        return self.hook_name_out is not None

    @property
    def d_out(self) -> int:
        return int(getattr(self.sae.cfg, "d_out", self.d_in))

    def write_hook(self, model_id: str) -> HookPoint:
        return self.write_hooks.get(model_id) or self.hooks[model_id]

    def check_steerable(self, method: str, field_name: str = "sae") -> None:
        """Raise InvalidRequest (a 4xx) when this SAE cannot be steered with `method`."""
        norm = self.sae.cfg.normalize_activations
        if norm in PER_TOKEN_NORMS:
            raise InvalidRequest(
                f"{field_name}: SAE {self.id!r} normalises each token ({norm!r}), so a latent "
                f"has no fixed decoder direction to steer along; steer an SAE whose "
                f"normalize_activations is 'none' or 'expected_average_only_in'",
                field=field_name,
            )
        if self.architecture in ADD_ONLY and method != "add":
            raise InvalidRequest(
                f"method: SAE {self.id!r} ({self.architecture}) selects latents by a greedy "
                f"search, so {method!r} cannot set one latent to a value; valid: 'add'",
                field="method",
            )
        if self.architecture in CONTEXTUAL:
            raise InvalidRequest(
                f"{field_name}: SAE {self.id!r} ({self.architecture}) encodes a token from its "
                f"context, so it cannot be steered token by token during generation",
                field=field_name,
            )

    @property
    def d_in(self) -> int:
        return int(self.sae.cfg.d_in)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def architecture(self) -> str:
        return self.sae.cfg.architecture()

    def check_latent(self, latent: int, field_name: str = "latent") -> None:
        if not 0 <= latent < self.d_sae:
            raise InvalidRequest(
                f"{field_name}: {latent} is outside [0, {self.d_sae}) for SAE {self.id!r}",
                field=field_name,
            )

    def public(self) -> dict:
        meta = self.sae.cfg.metadata
        return {
            "id": self.id,
            "source": self.source,
            "hook_name": self.hook_name,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "architecture": self.architecture,
            "models": list(self.spec.models),
            "hook_name_out": self.hook_name_out,
            "d_out": self.d_out,
            "center_writing_weights": self.center,
            "normalize_activations": self.sae.cfg.normalize_activations,
            "release": self.release,
            "sae_id": self.sae_id,
            "neuronpedia_id": self.neuronpedia_id,
            "context_size": meta.get("context_size"),
            "prepend_bos": meta.get("prepend_bos"),
            "fingerprint": self.fingerprint,
            "description": self.spec.description,
        }


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, for start-up errors that fit on one line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def close_matches(word: str, options: Iterable[str], n: int = 5) -> str:
    options = list(options)
    near = difflib.get_close_matches(word, options, n=n, cutoff=0.5)
    if not near:
        near = [o for o in options if word.lower() in o.lower()][:n]
    return choices(near) if near else "(none close)"


def pretrained_lookup(release: str, sae_id: str, where: str):
    """SAELens' own registry entry for a release + sae_id, or ConfigError with close matches."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise ConfigError(
            f"{where}: unknown SAELens release {release!r}; close matches: "
            f"{close_matches(release, directory)} ({len(directory)} releases in sae_lens "
            f"{_sae_lens_version()})"
        )
    lookup = directory[release]
    if sae_id not in lookup.saes_map:
        raise ConfigError(
            f"{where}: release {release!r} has no sae_id {sae_id!r}; close matches: "
            f"{close_matches(sae_id, lookup.saes_map)} ({len(lookup.saes_map)} ids)"
        )
    return lookup


def _sae_lens_version() -> str:
    import sae_lens

    return getattr(sae_lens, "__version__", "?")


class Registry:
    def __init__(
        self,
        config: LoadedConfig,
        device: str | None = None,
        dtype: str | None = None,
        only_models: Iterable[str] | None = None,
        probe: bool = True,
    ):
        """Load the config's models, adapters and SAEs. `only_models` loads just those
        models (plus the bases their adapters need) and the SAEs attached to them, e.g. for
        an index build. `probe` runs one tiny forward per (model, SAE) pair to check that
        each hook gives a (batch, seq, d_in) tensor."""
        self.config = config
        spec = config.spec
        self.device = pick_device(device or spec.device)
        self.dtype = pick_dtype(dtype or spec.dtype, self.device)
        self.models: dict[str, HostedModel] = {}
        self.saes: dict[str, HostedSAE] = {}
        self._wanted = self._closure(only_models)
        self._load_models()
        self._load_saes()
        if probe:
            self._probe()

    @classmethod
    def from_file(cls, file: str | Path, **kwargs) -> "Registry":
        return cls(load_config(file), **kwargs)

    def _closure(self, only: Iterable[str] | None) -> list[str]:
        specs = self.config.spec.models
        if only is None:
            return list(specs)
        wanted: list[str] = []
        for mid in only:
            if mid not in specs:
                raise NotFound(
                    f"model: unknown model {mid!r}; valid ids: {choices(specs)}", field="model"
                )
            for m in (specs[mid].base, mid):
                if m is not None and m not in wanted:
                    wanted.append(m)
        return [m for m in specs if m in wanted]

    # ----------------------------------------------------------------- loading
    def _source(self, mid: str, spec: ModelSpec) -> tuple[str, bool]:
        if spec.path:
            path = self.config.resolve(spec.path)
            if not path.is_dir():
                raise ConfigError(
                    f"{self.config.file}: model {mid!r}: path {path} is not a directory"
                )
            return str(path), True
        return str(spec.hub), False

    def _load_kwargs(self, mid: str, spec: ModelSpec) -> dict[str, Any]:
        dtype = pick_dtype(spec.dtype, self.device) if spec.dtype else self.dtype
        kwargs: dict[str, Any] = {
            "dtype": dtype,
            "revision": spec.revision,
            "trust_remote_code": spec.trust_remote_code,
        }
        if spec.device_map is not None:
            kwargs["device_map"] = spec.device_map
        if spec.quantization:
            if importlib.util.find_spec("bitsandbytes") is None:
                raise ConfigError(
                    f"{self.config.file}: model {mid!r}: quantization {spec.quantization!r} "
                    f"needs bitsandbytes, which is not installed (pip install bitsandbytes, "
                    f"on a CUDA machine), or remove models.{mid}.quantization"
                )
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_8bit=spec.quantization == "8bit",
                load_in_4bit=spec.quantization == "4bit",
                bnb_4bit_compute_dtype=dtype,
            )
            kwargs.setdefault("device_map", {"": str(self.device)})
        return kwargs

    def _load_models(self) -> None:
        specs = self.config.spec.models
        for mid in self._wanted:
            spec = specs[mid]
            if spec.adapter:
                continue
            source, local = self._source(mid, spec)
            kwargs = self._load_kwargs(mid, spec)
            try:
                hf = AutoModelForCausalLM.from_pretrained(source, **kwargs)
                tokenizer = AutoTokenizer.from_pretrained(
                    source, revision=spec.revision, trust_remote_code=spec.trust_remote_code
                )
            except Exception as exc:  # noqa: BLE001 - any load failure becomes a start-up error
                raise ConfigError(
                    f"{self.config.file}: model {mid!r} could not be loaded from {source!r}: "
                    f"{_one_line(exc)}"
                ) from exc
            if "device_map" not in kwargs:
                hf.to(self.device)
            hf.eval()
            hf.requires_grad_(False)
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            if local:
                fingerprint = file_fingerprint(Path(source))
            else:
                fingerprint = (
                    f"hub:{source}@{getattr(hf.config, '_commit_hash', None) or 'unknown'}"
                )
            self.models[mid] = HostedModel(
                id=mid,
                spec=spec,
                source=source,
                hf=hf,
                tokenizer=tokenizer,
                fingerprint=fingerprint,
                device=hf.device if "device_map" in kwargs else self.device,
                dtype=kwargs["dtype"],
            )
        for mid in self._wanted:
            if specs[mid].adapter:
                self._load_adapter(mid, specs[mid])
        for model in self.models.values():
            if model.peft is not None:
                model.peft.base_model.disable_adapter_layers()  # enabled only in activate()
        # Keep the config's order for listings.
        self.models = {mid: self.models[mid] for mid in self._wanted}

    def _load_adapter(self, mid: str, spec: ModelSpec) -> None:
        assert spec.base is not None and spec.adapter is not None  # the config checked both
        base = self.models[spec.base]
        adapter_path = self.config.resolve(spec.adapter)
        local = adapter_path.is_dir()
        source = str(adapter_path) if local else spec.adapter
        revision: dict[str, Any] = (
            {"revision": spec.revision} if spec.revision and not local else {}
        )
        try:
            if base.peft is None:
                peft = PeftModel.from_pretrained(base.hf, source, adapter_name=mid, **revision)
                peft.eval()
                base.peft = peft
                for other in self.models.values():
                    if other.base_id == base.id:
                        other.peft = peft
            else:
                base.peft.load_adapter(source, adapter_name=mid, **revision)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"{self.config.file}: adapter model {mid!r} could not load adapter {source!r} "
                f"over {spec.base!r}: {_one_line(exc)}"
            ) from exc
        base.peft.requires_grad_(False)
        fingerprint = (
            base.fingerprint
            + "+"
            + (
                file_fingerprint(adapter_path)
                if local
                else f"hub:{source}@{spec.revision or 'unpinned'}"
            )
        )
        self.models[mid] = HostedModel(
            id=mid,
            spec=spec,
            source=base.source,
            hf=base.hf,
            tokenizer=base.tokenizer,
            fingerprint=fingerprint,
            device=base.device,
            dtype=base.dtype,
            base_id=base.id,
            adapter_source=source if local else f"{source}@{spec.revision or 'unpinned'}",
            peft=base.peft,
        )

    def _load_sae(self, sid: str, spec: SAESpec) -> tuple[SAE, str, Any]:
        dtype = spec.dtype or "float32"
        where = f"{self.config.file}: SAE {sid!r}"
        lookup = None
        try:
            if spec.path:
                path = self.config.resolve(spec.path)
                if not path.is_dir():
                    raise FileNotFoundError(f"{path} is not a directory")
                sae = SAE.load_from_disk(path, device=str(self.device), dtype=dtype)
                return sae, str(path), None
            assert spec.release is not None and spec.sae_id is not None  # the config checked
            lookup = pretrained_lookup(spec.release, spec.sae_id, where)
            sae = SAE.from_pretrained(
                spec.release, spec.sae_id, device=str(self.device), dtype=dtype
            )
            return sae, f"{spec.release}/{spec.sae_id}", lookup
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"{where} could not be loaded: {_one_line(exc)}") from exc

    def _load_saes(self) -> None:
        for sid, spec in self.config.spec.saes.items():
            attached = [m for m in spec.models if m in self.models]
            if not attached:
                continue  # none of its models is loaded (an index build of another model)
            sae, source, lookup = self._load_sae(sid, spec)
            sae.eval()
            sae.requires_grad_(False)
            where = f"{self.config.file}: SAE {sid!r}"
            hook_name = spec.hook_name or sae.cfg.metadata.hook_name
            if not hook_name:
                raise ConfigError(
                    f"{where} has no hook_name in its metadata; set saes.{sid}.hook_name"
                )
            if (
                sae.cfg.metadata.get("hook_head_index") is not None
                or sae.cfg.reshape_activations != "none"
            ):
                raise ConfigError(
                    f"{where} reads attention heads ({hook_name}); only residual-stream, "
                    f"attention-output, MLP and transcoder SAEs are supported"
                )
            transcoder = hasattr(sae.cfg, "d_out") or "transcoder" in sae.cfg.architecture()
            hook_name_out = None
            if transcoder:
                hook_name_out = spec.hook_name_out or sae.cfg.metadata.get("hook_name_out")
                if not hook_name_out:
                    raise ConfigError(
                        f"{where} is a transcoder ({sae.cfg.architecture()}) with no "
                        f"hook_name_out in its metadata; set saes.{sid}.hook_name_out to the "
                        f"hook its decoder writes (e.g. blocks.L.hook_mlp_out)"
                    )
            elif spec.hook_name_out:
                raise ConfigError(
                    f"{where}: hook_name_out is for transcoders; this SAE is "
                    f"{sae.cfg.architecture()!r} and writes where it reads"
                )
            hooks, write_hooks = {}, {}
            for mid in attached:
                model = self.models[mid]
                try:
                    hooks[mid] = resolve_hook(model.hf, hook_name)
                    if hook_name_out:
                        write_hooks[mid] = resolve_hook(model.hf, hook_name_out)
                except DomainError as exc:
                    raise ConfigError(f"{where} on model {mid!r}: {exc.message}") from exc
            kwargs = sae.cfg.metadata.get("model_from_pretrained_kwargs") or {}
            self.saes[sid] = HostedSAE(
                id=sid,
                spec=spec,
                source=source,
                sae=sae,
                hook_name=hook_name,
                hooks=hooks,
                center=bool(kwargs.get("center_writing_weights", False)),
                fingerprint=tensor_fingerprint(sae.state_dict()),
                hook_name_out=hook_name_out,
                write_hooks=write_hooks,
                release=spec.release,
                sae_id=spec.sae_id,
                neuronpedia_id=(lookup.neuronpedia_id.get(spec.sae_id) if lookup else None)
                or sae.cfg.metadata.get("neuronpedia_id"),
            )

    # ------------------------------------------------------------------ probe
    @torch.no_grad()
    def _probe(self) -> None:
        """One tiny forward per (model, SAE) pair: each hook must give a tensor of
        (batch, seq, d_in) (and a transcoder's output hook (batch, seq, d_out)), or the
        server refuses to start with one line naming the SAE, the hook and both shapes."""
        for model in self.models.values():
            module_output_shapes(model.hf)  # cached for the hook listing: no forward later
            ids = torch.tensor([model.encode("Hello, world.")[:4] or [0]], device=model.device)
            for hs in self.saes.values():
                if model.id not in hs.hooks or (model.base_id and model.base_id in hs.hooks):
                    continue  # an adapter has its base's modules and shapes: probed once
                checks = [(hs.hook_name, hs.hooks[model.id], hs.d_in)]
                if hs.is_transcoder:
                    checks.append((hs.hook_name_out or "", hs.write_hooks[model.id], hs.d_out))
                for name, point, width in checks:
                    problem = probe_hook(model.hf, point, ids, width)
                    if problem:
                        raise ConfigError(
                            f"{self.config.file}: SAE {hs.id!r} on model {model.id!r}: hook "
                            f"{name!r} ({point.describe()}) {problem}"
                        )

    # ----------------------------------------------------------------- lookups
    def model(self, model_id: str, field_name: str = "model") -> HostedModel:
        try:
            return self.models[model_id]
        except KeyError:
            raise NotFound(
                f"{field_name}: unknown model {model_id!r}; valid ids: {choices(self.models)}",
                field=field_name,
            ) from None

    def sae(self, sae_id: str, field_name: str = "sae") -> HostedSAE:
        try:
            return self.saes[sae_id]
        except KeyError:
            raise NotFound(
                f"{field_name}: unknown SAE {sae_id!r}; valid ids: {choices(self.saes)}",
                field=field_name,
            ) from None

    def sae_for(
        self, sae_id: str, model_id: str, field_name: str = "sae"
    ) -> tuple[HostedSAE, HostedModel]:
        model = self.model(model_id)
        sae = self.sae(sae_id, field_name)
        if model_id not in sae.hooks:
            raise InvalidRequest(
                f"{field_name}: SAE {sae_id!r} is not attached to model {model_id!r}; it "
                f"applies to {choices(sae.hooks)}",
                field=field_name,
            )
        return sae, model

    def resolve_feature(self, ref: str, field_name: str = "latent") -> tuple[HostedSAE, int]:
        """A Neuronpedia-style feature id (`gpt2-small/8-res-jb/1234`) or `<sae id>/<latent>`
        -> (hosted SAE, latent index), or InvalidRequest naming the ids this server knows."""
        head, _, tail = ref.strip().rpartition("/")
        if not tail.isdigit() or not head:
            raise InvalidRequest(
                f"{field_name}: {ref!r} is not '<neuronpedia id>/<latent>' or "
                f"'<sae id>/<latent>' (e.g. 'gpt2-small/8-res-jb/1234')",
                field=field_name,
            )
        for hs in self.saes.values():
            if head in (hs.neuronpedia_id, hs.id):
                hs.check_latent(int(tail), field_name)
                return hs, int(tail)
        known = [x for hs in self.saes.values() for x in (hs.neuronpedia_id, hs.id) if x]
        raise InvalidRequest(
            f"{field_name}: no hosted SAE is {head!r}; known: {choices(known)}",
            field=field_name,
        )

    @contextmanager
    def activate(self, model_id: str) -> Iterator[HostedModel]:
        """Make `model_id` live on its (possibly shared) module: its adapter for an adapter
        model. Outside this block every adapter is disabled, so a base model is always
        the plain base."""
        model = self.model(model_id)
        if model.peft is None or model.adapter_source is None:
            yield model
            return
        model.peft.base_model.enable_adapter_layers()
        model.peft.set_adapter(model_id)
        try:
            yield model
        finally:
            model.peft.base_model.disable_adapter_layers()

    def root(self, model_id: str) -> HostedModel:
        """The model whose weights `model_id` runs on: its base for an adapter, else itself."""
        model = self.model(model_id)
        return self.model(model.base_id) if model.adapter_source and model.base_id else model

    @contextmanager
    def activate_mixed(self, model_ids: list[str]) -> Iterator[tuple[HostedModel, list[str]]]:
        """Several models of one base live at once, one per batch row: yields the base and
        each row's PEFT adapter name (`__base__` for the base itself), for a generation
        with `adapter_names` (PEFT's mixed-adapter batch)."""
        roots = {self.root(m).id for m in model_ids}
        assert len(roots) == 1, roots
        base = self.model(roots.pop())
        peft = base.peft
        assert peft is not None
        names = [m if self.model(m).adapter_source else "__base__" for m in model_ids]
        peft.base_model.enable_adapter_layers()
        try:
            yield base, names
        finally:
            peft.base_model.disable_adapter_layers()

    def public(self) -> dict:
        return {
            "models": [m.public() for m in self.models.values()],
            "saes": [s.public() for s in self.saes.values()],
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "config": str(self.config.file),
        }


def probe_hook(hf, point: HookPoint, ids: torch.Tensor, width: int) -> str | None:
    """Run `hf` on `ids` with a read hook at `point`; None when it gives (batch, seq, width),
    else what is wrong, as a phrase."""
    captured: list = []

    def grab(value):
        captured.append(value)

    try:
        with hook(hf, point, grab):
            hf(input_ids=ids, use_cache=False)
    except Exception as exc:  # noqa: BLE001 - reported as the start-up error
        return f"fails in a forward pass: {_one_line(exc)}"
    if not captured:
        return "is never computed in a forward pass (a container, not a module that runs)"
    value = captured[0]
    if not isinstance(value, torch.Tensor):
        return f"gives a {type(value).__name__}, not a tensor of shape (batch, seq, {width})"
    expected = (ids.shape[0], ids.shape[1], width)
    if tuple(value.shape) != expected:
        return f"gives shape {tuple(value.shape)}, expected {expected} (d_in {width})"
    return None
