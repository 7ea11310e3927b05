"""The model config: which models, adapters, SAEs, question sets and judges a server hosts.

A YAML file (default `models/default.yaml`) validated with pydantic. Relative paths are
resolved against the file's own directory. Errors name the file, the field and the valid
choices, and are raised at start-up as `ConfigError`.
"""

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.errors import ConfigError, choices

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """One hosted model: a local directory, a hub id, or a PEFT adapter over another model."""

    path: str | None = Field(None, description="Local directory saved with save_pretrained.")
    hub: str | None = Field(None, description="HuggingFace hub id, e.g. 'gpt2'.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    base: str | None = Field(None, description="Id of the model this adapter is applied to.")
    adapter: str | None = Field(None, description="PEFT adapter: local directory or hub id.")
    finetuned_from: str | None = Field(
        None, description="For a full fine-tune: the id of the model it was tuned from."
    )
    description: str = ""
    prepend_bos: bool = Field(
        True, description="Prepend the tokenizer's BOS token when the tokenizer does not."
    )
    dtype: str | None = Field(None, description="Overrides the config-wide dtype for this model.")
    device_map: str | dict | None = Field(
        None, description="Passed to from_pretrained (e.g. 'auto' to spread over GPUs)."
    )
    trust_remote_code: bool = Field(
        False, description="Run the model repository's own Python code (off unless set)."
    )
    quantization: Literal["8bit", "4bit"] | None = Field(
        None, description="Load the weights quantised through bitsandbytes (a CUDA build)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> "ModelSpec":
        sources = [s for s in ("path", "hub") if getattr(self, s)]
        if self.adapter or self.base:
            if not (self.adapter and self.base):
                raise ValueError("an adapter model needs both 'base' (a model id) and 'adapter'")
            if sources:
                raise ValueError("an adapter model takes 'base' + 'adapter', not 'path' or 'hub'")
        elif len(sources) != 1:
            raise ValueError("give exactly one of 'path', 'hub', or 'base' + 'adapter'")
        return self


class SAESpec(_Strict):
    """One SAE: a local SAELens directory, or a SAELens release + sae_id (its hook, d_in and
    model come from SAELens' own pretrained registry and the SAE's config)."""

    path: str | None = Field(None, description="Directory saved with SAE.save_model.")
    release: str | None = Field(None, description="SAELens release, e.g. 'gpt2-small-res-jb'.")
    sae_id: str | None = Field(None, description="SAE id inside the release.")
    models: list[str] = Field(
        [],
        description="Model ids this SAE applies to. For a release SAE it may be left out: "
        "then it applies to the hosted models whose hub id is the model SAELens' registry "
        "names for the release (and their adapters).",
    )
    hook_name: str | None = Field(
        None, description="Overrides the hook name in the SAE's own metadata."
    )
    hook_name_out: str | None = Field(
        None, description="Transcoders: where the decoder writes (overrides the metadata)."
    )
    dtype: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> "SAESpec":
        if bool(self.path) == bool(self.release):
            raise ValueError("give exactly one of 'path' or 'release' + 'sae_id'")
        if self.release and not self.sae_id:
            raise ValueError("'release' needs 'sae_id'")
        return self


class QuestionSetSpec(_Strict):
    path: str
    description: str = ""


class JudgeSpec(_Strict):
    kind: Literal["classifier", "llm"]
    path: str | None = Field(None, description="Classifier judge: its JSON file.")
    description: str = ""


class DatasetSpec(_Strict):
    """A text dataset for latent dashboards, read through `datasets.load_dataset`: a file,
    a glob or a folder (txt, json/jsonl, csv/tsv, parquet, arrow; compressed or not), a
    folder saved with `save_to_disk`, or a hub dataset id with its config and split."""

    path: str | None = Field(None, description="File, glob or folder (relative to the config).")
    hub: str | None = Field(None, description="Hub dataset id, e.g. 'wikitext' or 'allenai/c4'.")
    config: str | None = Field(None, description="Hub dataset config (subset), e.g. 'en'.")
    split: str = "train"
    text_field: str = "text"
    format: Literal["text", "json", "csv", "parquet", "arrow"] | None = Field(
        None, description="The `datasets` builder; inferred from the file names when unset."
    )
    sample_by: Literal["paragraph", "line", "document"] = Field(
        "paragraph", description="Text files: one document per paragraph, line or file."
    )
    streaming: bool = Field(
        True, description="Read lazily, stopping at the token budget (memory bounded by it)."
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Token budget: stop reading once this many tokens are cut."
    )
    description: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetSpec":
        if bool(self.path) == bool(self.hub):
            raise ValueError("give exactly one of 'path' or 'hub'")
        if self.config and not self.hub:
            raise ValueError("'config' names a subset of a hub dataset; it needs 'hub'")
        return self


class IndexSpec(_Strict):
    """A latent-dashboard index this server expects (`python -m app index ensure` builds
    the missing ones)."""

    model: str
    sae: str
    dataset: str


class PinSpec(_Strict):
    sae: str
    latent: int = Field(..., ge=0)
    label: str = ""


def _models_of_release(sid: str, sae: "SAESpec", models: dict[str, "ModelSpec"]) -> list[str]:
    """The hosted models a release SAE applies to when the config does not list them: those
    whose hub id is the model SAELens' registry names for the release (e.g. 'gpt2-small'
    or 'google/gemma-2-2b'; compared with and without the organisation), and their
    adapters."""
    if not sae.release:
        raise ValueError(f"saes.{sid}.models: list the model ids this SAE applies to")
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    entry = get_pretrained_saes_directory().get(sae.release)
    named = getattr(entry, "model", None) or ""
    short = named.rsplit("/", 1)[-1]
    bases = [
        mid
        for mid, spec in models.items()
        if spec.hub and (spec.hub == named or spec.hub.rsplit("/", 1)[-1] == short)
    ]
    if not bases:
        raise ValueError(
            f"saes.{sid}.models: SAELens' registry names model {named!r} for release "
            f"{sae.release!r}, and no hosted model has that hub id; list the model ids this "
            f"SAE applies to"
        )
    return [*bases, *(mid for mid, spec in models.items() if spec.base in bases)]


class ModelsConfig(_Strict):
    device: str = Field("auto", description=f"One of {', '.join(DEVICES)} or 'cuda:N'.")
    dtype: str = Field("auto", description=f"One of {', '.join(DTYPES)}.")
    default_model: str | None = None
    default_sae: str | None = None
    models: dict[str, ModelSpec]
    saes: dict[str, SAESpec] = {}
    question_sets: dict[str, QuestionSetSpec] = {}
    judges: dict[str, JudgeSpec] = {}
    datasets: dict[str, DatasetSpec] = {}
    pins: list[PinSpec] = []
    indexes: list[IndexSpec] = []
    report: str | None = Field(None, description="The organism's REPORT.json, if hosted.")

    @model_validator(mode="after")
    def _references(self) -> "ModelsConfig":
        model_ids = list(self.models)
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device {self.device!r} is not one of {choices(DEVICES)} or 'cuda:N'")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {choices(DTYPES)}")
        for mid, spec in self.models.items():
            for ref in (spec.base, spec.finetuned_from):
                if ref is not None and ref not in self.models:
                    raise ValueError(
                        f"models.{mid}: {ref!r} is not a model id; valid ids: {choices(model_ids)}"
                    )
            if spec.base and self.models[spec.base].base:
                raise ValueError(f"models.{mid}: base {spec.base!r} is itself an adapter")
            if spec.dtype is not None and spec.dtype not in DTYPES:
                raise ValueError(
                    f"models.{mid}.dtype: {spec.dtype!r} is not one of {choices(DTYPES)}"
                )
            if spec.adapter and (
                spec.dtype or spec.device_map or spec.quantization or spec.trust_remote_code
            ):
                raise ValueError(
                    f"models.{mid}: an adapter model shares its base's weights; set dtype, "
                    f"device_map, quantization and trust_remote_code on {spec.base!r}"
                )
        for sid, sae in self.saes.items():
            if not sae.models:
                sae.models = _models_of_release(sid, sae, self.models)
            for ref in sae.models:
                if ref not in self.models:
                    raise ValueError(
                        f"saes.{sid}.models: {ref!r} is not a model id; "
                        f"valid ids: {choices(model_ids)}"
                    )
        for pin in self.pins:
            if pin.sae not in self.saes:
                raise ValueError(f"pins: {pin.sae!r} is not an SAE id; valid: {choices(self.saes)}")
        for i, ix in enumerate(self.indexes):
            if ix.model not in self.models:
                raise ValueError(
                    f"indexes.{i}.model: {ix.model!r} is not a model id; "
                    f"valid ids: {choices(model_ids)}"
                )
            if ix.sae not in self.saes:
                raise ValueError(
                    f"indexes.{i}.sae: {ix.sae!r} is not an SAE id; valid ids: {choices(self.saes)}"
                )
            if ix.dataset not in self.datasets:
                raise ValueError(
                    f"indexes.{i}.dataset: {ix.dataset!r} is not a dataset id; "
                    f"valid ids: {choices(self.datasets)}"
                )
        if self.default_model and self.default_model not in self.models:
            raise ValueError(
                f"default_model {self.default_model!r}: valid ids {choices(model_ids)}"
            )
        if self.default_sae and self.default_sae not in self.saes:
            raise ValueError(f"default_sae {self.default_sae!r}: valid ids {choices(self.saes)}")
        return self


class LoadedConfig(BaseModel):
    """A validated config plus where it came from (relative paths resolve against `root`)."""

    file: Path
    root: Path
    spec: ModelsConfig

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()


def _format_errors(file: Path, err: ValidationError) -> str:
    lines = [f"invalid model config {file}:"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def load_config(file: str | Path) -> LoadedConfig:
    file = Path(file).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(f"model config {file} does not exist")
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"model config {file} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"model config {file} must be a mapping with a 'models' key")
    try:
        spec = ModelsConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(file, exc)) from exc
    return LoadedConfig(file=file, root=file.parent, spec=spec)
