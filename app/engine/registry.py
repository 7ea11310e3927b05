"""Loads the models, PEFT adapters and SAEs of a model config once, at start-up.

Adapters over the same base share one `PeftModel`: the base weights exist once in memory,
and `Registry.activate(model_id)` switches which adapter (or none) is live. Only the
device worker calls `activate`, so requests never race on adapter state.
"""

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from sae_lens import SAE
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from app.engine.config import LoadedConfig, ModelSpec, SAESpec, load_config
from app.engine.hooks import HookPoint, n_layers, resolve_hook
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
        cfg = self.hf.config
        for attr in ("n_positions", "max_position_embeddings"):
            if getattr(cfg, attr, None):
                return int(getattr(cfg, attr))
        return 2048

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        bos = self.tokenizer.bos_token_id
        if self.spec.prepend_bos and bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        return ids

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
            "description": self.spec.description,
        }


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
    _unit_cache: dict[int, torch.Tensor] = field(default_factory=dict)

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
            "center_writing_weights": self.center,
            "normalize_activations": self.sae.cfg.normalize_activations,
            "context_size": meta.get("context_size"),
            "prepend_bos": meta.get("prepend_bos"),
            "fingerprint": self.fingerprint,
            "description": self.spec.description,
        }


class Registry:
    def __init__(self, config: LoadedConfig, device: str | None = None, dtype: str | None = None):
        self.config = config
        spec = config.spec
        self.device = pick_device(device or spec.device)
        self.dtype = pick_dtype(dtype or spec.dtype, self.device)
        self.models: dict[str, HostedModel] = {}
        self.saes: dict[str, HostedSAE] = {}
        self._load_models()
        self._load_saes()

    @classmethod
    def from_file(cls, file: str | Path, **kwargs) -> "Registry":
        return cls(load_config(file), **kwargs)

    # ----------------------------------------------------------------- loading
    def _source(self, spec: ModelSpec) -> tuple[str, bool]:
        if spec.path:
            path = self.config.resolve(spec.path)
            if not path.is_dir():
                raise ConfigError(f"{self.config.file}: model path {path} is not a directory")
            return str(path), True
        return str(spec.hub), False

    def _load_models(self) -> None:
        specs = self.config.spec.models
        for mid, spec in specs.items():
            if spec.adapter:
                continue
            source, local = self._source(spec)
            try:
                hf = AutoModelForCausalLM.from_pretrained(
                    source, dtype=self.dtype, revision=spec.revision
                )
                tokenizer = AutoTokenizer.from_pretrained(source, revision=spec.revision)
            except Exception as exc:  # noqa: BLE001 - any load failure becomes a start-up error
                raise ConfigError(
                    f"{self.config.file}: model {mid!r} could not be loaded from {source!r}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            hf.to(self.device).eval()
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
                device=self.device,
                dtype=self.dtype,
            )
        for mid, spec in specs.items():
            if spec.adapter:
                self._load_adapter(mid, spec)
        for model in self.models.values():
            if model.peft is not None:
                model.peft.base_model.disable_adapter_layers()  # enabled only in activate()
        # Keep the config's order for listings.
        self.models = {mid: self.models[mid] for mid in specs}

    def _load_adapter(self, mid: str, spec: ModelSpec) -> None:
        base = self.models[spec.base]
        adapter_path = self.config.resolve(spec.adapter)
        source = str(adapter_path) if adapter_path.is_dir() else spec.adapter
        try:
            if base.peft is None:
                peft = PeftModel.from_pretrained(base.hf, source, adapter_name=mid)
                peft.eval()
                base.peft = peft
                for other in self.models.values():
                    if other.base_id == base.id:
                        other.peft = peft
            else:
                base.peft.load_adapter(source, adapter_name=mid)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"{self.config.file}: adapter model {mid!r} could not load adapter {source!r} "
                f"over {spec.base!r}: {type(exc).__name__}: {exc}"
            ) from exc
        base.peft.requires_grad_(False)
        fingerprint = (
            base.fingerprint
            + "+"
            + (file_fingerprint(adapter_path) if adapter_path.is_dir() else f"hub:{source}")
        )
        self.models[mid] = HostedModel(
            id=mid,
            spec=spec,
            source=base.source,
            hf=base.hf,
            tokenizer=base.tokenizer,
            fingerprint=fingerprint,
            device=self.device,
            dtype=self.dtype,
            base_id=base.id,
            adapter_source=source,
            peft=base.peft,
        )

    def _load_saes(self) -> None:
        for sid, spec in self.config.spec.saes.items():
            dtype = spec.dtype or "float32"
            try:
                if spec.path:
                    path = self.config.resolve(spec.path)
                    if not path.is_dir():
                        raise FileNotFoundError(f"{path} is not a directory")
                    sae = SAE.load_from_disk(path, device=str(self.device), dtype=dtype)
                    source = str(path)
                else:
                    sae = SAE.from_pretrained(
                        spec.release, spec.sae_id, device=str(self.device), dtype=dtype
                    )
                    source = f"{spec.release}/{spec.sae_id}"
            except Exception as exc:  # noqa: BLE001
                raise ConfigError(
                    f"{self.config.file}: SAE {sid!r} could not be loaded: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            sae.eval()
            sae.requires_grad_(False)
            hook_name = spec.hook_name or sae.cfg.metadata.hook_name
            if not hook_name:
                raise ConfigError(
                    f"{self.config.file}: SAE {sid!r} has no hook_name in its metadata; "
                    f"set saes.{sid}.hook_name"
                )
            if (
                sae.cfg.metadata.get("hook_head_index") is not None
                or sae.cfg.reshape_activations != "none"
            ):
                raise ConfigError(
                    f"{self.config.file}: SAE {sid!r} reads attention heads ({hook_name}); "
                    f"only residual-stream, attention-output and MLP-output SAEs are supported"
                )
            hooks = {}
            for mid in spec.models:
                model = self.models[mid]
                if model.d_model != sae.cfg.d_in:
                    raise ConfigError(
                        f"{self.config.file}: SAE {sid!r} has d_in={sae.cfg.d_in} but model "
                        f"{mid!r} has d_model={model.d_model}"
                    )
                try:
                    hooks[mid] = resolve_hook(model.hf, hook_name)
                except DomainError as exc:
                    raise ConfigError(f"{self.config.file}: SAE {sid!r}: {exc.message}") from exc
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

    def sae_for(self, sae_id: str, model_id: str) -> tuple[HostedSAE, HostedModel]:
        model = self.model(model_id)
        sae = self.sae(sae_id)
        if model_id not in sae.hooks:
            raise InvalidRequest(
                f"sae: SAE {sae_id!r} is not attached to model {model_id!r}; it applies to "
                f"{choices(sae.hooks)}",
                field="sae",
            )
        return sae, model

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

    def public(self) -> dict:
        return {
            "models": [m.public() for m in self.models.values()],
            "saes": [s.public() for s in self.saes.values()],
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "config": str(self.config.file),
        }


def fingerprints(registry: Registry) -> str:
    return json.dumps(
        {
            "models": {m.id: m.fingerprint for m in registry.models.values()},
            "saes": {s.id: s.fingerprint for s in registry.saes.values()},
        },
        sort_keys=True,
    )
