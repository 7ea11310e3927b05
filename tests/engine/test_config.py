"""Model config validation and start-up errors: they name the file, the field and the choices."""

from pathlib import Path

import pytest
import yaml

from app.engine.config import load_config
from app.engine.registry import Registry
from app.errors import ConfigError


def write(tmp_path, data) -> str:
    path = tmp_path / "models.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "data,message",
    [
        ("models: [unclosed", "not valid YAML"),
        ("- just a list", "must be a mapping"),
        (
            {"models": {"a": {}}},
            "models.a: give exactly one of 'path', 'hub', or 'base' + 'adapter'",
        ),
        ({"models": {"a": {"path": "x", "hub": "gpt2"}}}, "give exactly one"),
        ({"models": {"a": {"adapter": "x"}}}, "needs both 'base'"),
        (
            {"models": {"a": {"base": "zz", "adapter": "x"}}},
            "'zz' is not a model id; valid ids: 'a'",
        ),
        (
            {"models": {"a": {"hub": "gpt2"}}, "saes": {"s": {"path": "x", "models": ["b"]}}},
            "saes.s.models: 'b' is not a model id; valid ids: 'a'",
        ),
        ({"models": {"a": {"hub": "gpt2"}}, "device": "tpu"}, "'auto', 'cpu', 'cuda', 'mps'"),
        ({"models": {"a": {"hub": "gpt2"}}, "dtype": "int3"}, "'float32', 'float16', 'bfloat16'"),
        ({"models": {"a": {"hub": "gpt2", "colour": "red"}}}, "models.a.colour: Extra inputs"),
        (
            {"models": {"a": {"hub": "gpt2"}}, "saes": {"s": {"release": "r", "models": ["a"]}}},
            "'release' needs 'sae_id'",
        ),
    ],
)
def test_invalid_configs(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_relative_paths_resolve_against_the_file(world_config):
    cfg = load_config(world_config)
    assert cfg.resolve("base") == world_config.parent / "base"


def test_unloadable_model_is_a_startup_error(tmp_path):
    path = write(tmp_path, {"models": {"a": {"path": str(tmp_path)}}})
    with pytest.raises(ConfigError, match="model 'a' could not be loaded"):
        Registry.from_file(path)


def test_missing_model_dir(tmp_path):
    path = write(tmp_path, {"models": {"a": {"path": "missing"}}})
    with pytest.raises(ConfigError, match="is not a directory"):
        Registry.from_file(path)


def test_sae_hook_errors_at_startup(world_config, tmp_path):
    root = world_config.parent
    base = {"models": {"base": {"path": str(root / "base")}}}
    bad_hook = {
        **base,
        "saes": {
            "s": {
                "path": str(root / "sae_module"),
                "models": ["base"],
                "hook_name": "blocks.0.attn.hook_q",
            }
        },
    }
    with pytest.raises(ConfigError, match="SAE 's'.*supported TransformerLens names"):
        Registry.from_file(write(tmp_path, bad_hook))
    missing = {**base, "saes": {"s": {"path": str(tmp_path / "no-sae"), "models": ["base"]}}}
    with pytest.raises(ConfigError, match="SAE 's' could not be loaded"):
        Registry.from_file(write(tmp_path, missing))


def test_sae_release_and_id_are_checked_against_saelens_registry(world_config, tmp_path):
    """release + sae_id is enough to declare an SAE; unknown ones list the close matches
    (before any download)."""
    base = {"models": {"base": {"path": str(world_config.parent / "base")}}}
    cases = [
        ({"release": "gpt2-small-res-jbb", "sae_id": "x"}, "close matches: 'gpt2-small-res-jb'"),
        (
            {"release": "gpt2-small-res-jb", "sae_id": "blocks.8.hook_resid_pr"},
            "no sae_id 'blocks.8.hook_resid_pr'; close matches: 'blocks.8.hook_resid_pre'",
        ),
    ]
    for sae, message in cases:
        config = {**base, "saes": {"s": {**sae, "models": ["base"]}}}
        with pytest.raises(ConfigError, match=message) as err:
            Registry.from_file(write(tmp_path, config))
        assert "\n" not in str(err.value)


def test_neuronpedia_ids_come_from_the_registry():
    from app.engine.registry import pretrained_lookup

    lookup = pretrained_lookup("gpt2-small-res-jb", "blocks.8.hook_resid_pre", "here")
    assert lookup.neuronpedia_id["blocks.8.hook_resid_pre"] == "gpt2-small/8-res-jb"


def test_model_loading_options(world_config, tmp_path):
    import torch

    root = world_config.parent
    config = {
        "device": "cpu",
        "models": {
            "bf": {"path": str(root / "base"), "dtype": "bfloat16", "device_map": "cpu"},
            "tuned": {"base": "bf", "adapter": str(root / "adapter")},
        },
    }
    registry = Registry.from_file(write(tmp_path, config))
    assert registry.models["bf"].hf.dtype == torch.bfloat16
    assert registry.models["tuned"].dtype == torch.bfloat16
    assert registry.models["bf"].spec.trust_remote_code is False


@pytest.mark.parametrize(
    "model,message",
    [
        ({"dtype": "int3"}, "models.a.dtype: 'int3' is not one of"),
        ({"quantization": "3bit"}, "models.a.quantization: Input should be '8bit' or '4bit'"),
    ],
)
def test_invalid_model_options(tmp_path, model, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, {"models": {"a": {"hub": "gpt2", **model}}}))


def test_quantization_without_bitsandbytes_is_a_clear_error(world_config, tmp_path):
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    config = {"models": {"a": {"path": str(world_config.parent / "base"), "quantization": "4bit"}}}
    with pytest.raises(ConfigError, match="'4bit' needs bitsandbytes, which is not installed"):
        Registry.from_file(write(tmp_path, config))


@pytest.mark.parametrize(
    "example", sorted((Path(__file__).parents[2] / "models" / "examples").glob("*.yaml"))
)
def test_example_configs_validate_and_name_registered_saes(example):
    from app.engine.registry import pretrained_lookup

    config = load_config(example)
    for sid, sae in config.spec.saes.items():
        if sae.release:
            pretrained_lookup(sae.release, sae.sae_id, f"{example.name}: {sid}")


def test_a_release_sae_applies_to_the_models_saelens_names(tmp_path):
    """`release` + `sae_id` is enough: the SAE attaches to the hosted models whose hub id is
    the model SAELens' registry names for the release, and to their adapters."""
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  gemma: {hub: google/gemma-2-2b}\n"
        "  gemma-em: {base: gemma, adapter: some/em-lora}\n"
        "  other: {hub: gpt2}\n"
        "saes:\n"
        "  res-12:\n"
        "    release: gemma-scope-2b-pt-res-canonical\n"
        "    sae_id: layer_12/width_16k/canonical\n"
    )
    assert load_config(path).spec.saes["res-12"].models == ["gemma", "gemma-em"]
    path.write_text(
        "models:\n  gpt2: {hub: gpt2}\n"
        "saes:\n  res-8: {release: gpt2-small-res-jb, sae_id: blocks.8.hook_resid_pre}\n"
    )
    with pytest.raises(ConfigError, match="names model 'gpt2-small'.*list the model ids"):
        load_config(path)
