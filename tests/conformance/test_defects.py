"""Issue 12's defects, one test each, on the zoo's instruct-shaped models (each failed
before its fix)."""

import math

import pytest
import torch
import yaml

from app.engine.activations import hook_values
from app.engine.generation import Steering, generate, steering_hooks
from app.engine.registry import Registry
from app.errors import ConfigError, InvalidRequest
from tests.conformance.zoo import PROMPT


def chat_ids(model) -> list[int]:
    """The prompt through the chat template, as transformers tokenises it (no engine code)."""
    return model.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=True
    )["input_ids"]


def test_generation_stops_at_the_generation_configs_end_of_turn(zoo, zoo_stops):
    """Defect 1: Gemma-2-it lists [<eos>, <end_of_turn>]; stopping only at the tokenizer's
    EOS ran past the end of the turn."""
    model = zoo.model("gemma2")
    eot = model.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert eot != model.tokenizer.eos_token_id and zoo_stops["gemma2"]["stop"] == eot
    ids = chat_ids(model)
    rows = generate(model, [ids, ids], max_new_tokens=12)
    with torch.no_grad():
        plain = model.hf.generate(input_ids=torch.tensor([ids]), max_new_tokens=12)
    plain = plain[0, len(ids) :].tolist()
    assert eot in plain
    assert rows[0] == rows[1] == plain[: plain.index(eot)]
    assert model.stop_token_ids == [model.tokenizer.eos_token_id, eot]


def test_chat_prompt_has_exactly_one_bos(zoo):
    """Defect 2: the Llama-3 template writes {{ bos_token }} and the tokenizer adds BOS;
    re-tokenising the rendered text with special tokens gave two."""
    model = zoo.model("llama")
    bos = model.tokenizer.bos_token_id
    text = model.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False
    )
    assert model.tokenizer(text)["input_ids"][:2] == [bos, bos]  # the trap
    ids = model.encode_prompt(PROMPT, chat=True)
    assert ids.count(bos) == 1 and ids[0] == bos
    messages = [{"role": "user", "content": PROMPT}]
    assert model.encode_prompt(messages, chat=True) == ids
    assert model.encode(text) == ids  # rendered text through the plain path: one BOS too


def test_chat_errors_are_4xx(zoo):
    with pytest.raises(InvalidRequest, match="no chat template") as err:
        zoo.model("gpt2").encode_prompt(PROMPT, chat=True)
    assert err.value.field == "chat"
    with pytest.raises(InvalidRequest, match="chat=true"):
        zoo.model("llama").encode_prompt([{"role": "user", "content": "x"}], chat=False)


@pytest.mark.parametrize("kind", ["topk-rescaled", "gated", "jumprelu", "abstopk"])
def test_clamp_lands_on_the_target_of_the_sae_own_encode(zoo, kind):
    """Defect 4: TopK with rescale_acts_by_decoder_norm clamped to 5 gave 5 * |W_dec[i]|."""
    hs = zoo.sae(kind)
    model = zoo.model("llama")
    ids = torch.tensor([chat_ids(model)])
    point = hs.hooks["llama"]
    latent = 3
    # Above every latent's value, so a TopK SAE keeps it among its top k.
    target = max(5.0, 1.5 * float(hs.sae.encode(hook_values(model, point, ids)).abs().max()))
    steer = Steering(hs, latent, torch.tensor([target]), "clamp")
    with steering_hooks(model, steer):
        edited = hook_values(model, point, ids)
    got = hs.sae.encode(edited)[0, :, latent]
    torch.testing.assert_close(got, torch.full_like(got, target), atol=1e-3, rtol=0)


def test_transcoder_reads_at_its_input_and_writes_at_its_output(zoo):
    """Defect 5: a transcoder's decoder lives at hook_name_out; steering wrote at the
    input hook. An add edit must change the MLP output by alpha * W_dec[i] and nothing else
    at that layer's input."""
    hs = zoo.sae("transcoder")
    model = zoo.model("qwen2")
    ids = torch.tensor([chat_ids(model)])
    read = hs.hooks["qwen2"]
    write = hs.write_hooks["qwen2"]  # KeyError before: nothing knew where it writes
    assert read.module.endswith("layers.1.mlp") and read.side == "input"
    assert write.module.endswith("layers.1.mlp") and write.side == "output"
    before_in, before_out = hook_values(model, read, ids), hook_values(model, write, ids)
    steer = Steering(hs, 7, torch.tensor([2.5]), "add")
    with steering_hooks(model, steer):
        after_in, after_out = hook_values(model, read, ids), hook_values(model, write, ids)
    torch.testing.assert_close(after_in, before_in)
    torch.testing.assert_close(after_out - before_out, (2.5 * hs.sae.W_dec[7]).expand_as(after_out))
    assert hs.is_transcoder and hs.public()["hook_name_out"] == "blocks.1.hook_mlp_out"


@pytest.mark.parametrize(
    "kind,method", [("layer_norm", "add"), ("temporal", "clamp"), ("matching_pursuit", "clamp")]
)
def test_unsteerable_saes_are_a_4xx_naming_why(zoo, kind, method):
    """Defect 6: steering a layer-norm SAE raised a bare ValueError (a 500)."""
    hs = zoo.sae(kind)
    model = zoo.model("llama")
    ids = chat_ids(model)
    steer = Steering(hs, 0, torch.tensor([math.nan, 2.0]), method)
    with pytest.raises(InvalidRequest) as err:
        generate(model, [ids, ids], max_new_tokens=2, steering=steer)
    assert err.value.status_code < 500 and kind in err.value.message
    with pytest.raises(InvalidRequest):
        hs.check_steerable(method)


@pytest.mark.parametrize(
    "hook_name,message",
    [
        ("model.layers", "container of modules"),
        (
            "model.layers.1.mlp.gate_up_proj",
            r"gives shape \(1, \d+, 256\), expected \(1, \d+, 64\)",
        ),
        ("model", "gives a BaseModelOutputWithPast, not a tensor"),
    ],
)
def test_unusable_hooks_stop_start_up_in_one_line(zoo_config, hook_name, message):
    """Defect 7: on Phi3 these passed start-up and failed on every request."""
    config = yaml.safe_load(zoo_config.read_text())
    config["models"] = {"phi3": config["models"]["phi3"]}
    config["saes"] = {"bad": {**config["saes"]["standard"], "models": ["phi3"]}}
    config["saes"]["bad"]["hook_name"] = hook_name
    path = zoo_config.parent / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=message) as err:
        Registry.from_file(path)
    text = str(err.value)
    assert "\n" not in text and "'bad'" in text and hook_name in text


def test_only_the_needed_model_is_loaded(zoo_config):
    """Defect 9: an index build loaded every model of the config."""
    registry = Registry.from_file(zoo_config, only_models=["llama-lora"])
    assert list(registry.models) == ["llama", "llama-lora"]
    assert all(set(s.hooks) == {"llama", "llama-lora"} for s in registry.saes.values())


def test_neuronpedia_style_feature_ids_resolve(zoo):
    hs = zoo.sae("standard")
    hs.neuronpedia_id = "tiny-llama/1-res-test"  # as SAELens' registry would give it
    try:
        assert zoo.resolve_feature("tiny-llama/1-res-test/17") == (hs, 17)
        assert zoo.resolve_feature("standard/3") == (hs, 3)
        with pytest.raises(InvalidRequest, match=r"outside \[0, 128\)"):
            zoo.resolve_feature("tiny-llama/1-res-test/999")
        with pytest.raises(InvalidRequest, match="no hosted SAE is 'gpt2-small/8-res-jb'"):
            zoo.resolve_feature("gpt2-small/8-res-jb/1234")
        with pytest.raises(InvalidRequest, match="is not '<neuronpedia id>/<latent>'"):
            zoo.resolve_feature("1234")
    finally:
        hs.neuronpedia_id = None


def test_streamed_rows_end_at_the_end_of_turn_for_an_eos_watcher(zoo):
    """Defect 1 in streaming: a consumer that ends a row at the tokenizer's EOS (the SSE
    `done` logic) sees it where the row reached <end_of_turn>, never the padding after."""
    model = zoo.model("gemma2")
    eos = model.tokenizer.eos_token_id
    ids = chat_ids(model)
    steps: list[list[int]] = []
    rows = generate(model, [ids, ids], max_new_tokens=12, on_step=steps.append)
    done, streamed = [False, False], [[], []]
    for step in steps:  # the SSE consumer's logic (app/engine/steering.py, stream)
        for r, token in enumerate(step):
            if done[r] or token == eos:
                done[r] = True
                continue
            streamed[r].append(token)
    assert streamed == rows and len(rows[0]) < 12 and all(done)


def test_an_sae_attached_only_to_an_adapter_is_probed_too(zoo_config):
    config = yaml.safe_load(zoo_config.read_text())
    config["models"] = {k: config["models"][k] for k in ("llama", "llama-lora")}
    config["saes"] = {"bad": {**config["saes"]["standard"], "models": ["llama-lora"]}}
    config["saes"]["bad"]["hook_name"] = "model.layers.1.mlp.up_proj"
    path = zoo_config.parent / "adapter-only.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="'bad' on model 'llama-lora'.*gives shape"):
        Registry.from_file(path)
