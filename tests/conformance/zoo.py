"""A zoo of tiny, real models and SAEs for the conformance suite.

Eleven decoder families built from their transformers configs with random weights, each with a
byte-level BPE tokenizer carrying the family's own special tokens, BOS behaviour, chat
template and end-of-turn list (the shapes of Llama-3-Instruct, Qwen2.5/3-Instruct,
Mistral-Instruct, Gemma-2/3-it, text-only and multimodal, Phi-3, OLMo-2-Instruct, Pythia
and GPT-2), a LoRA adapter over the Llama model, and one SAELens SAE of every architecture
SAELens ships plus three transcoders. Everything is saved to disk and loaded back through
the project's own `Registry`, once per test run.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from sae_lens import (
    AbsTopKSAE,
    AbsTopKSAEConfig,
    GatedSAE,
    GatedSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    JumpReLUTranscoder,
    JumpReLUTranscoderConfig,
    MatchingPursuitSAE,
    MatchingPursuitSAEConfig,
    SkipTranscoder,
    SkipTranscoderConfig,
    StandardSAE,
    StandardSAEConfig,
    TemporalSAE,
    TemporalSAEConfig,
    TopKSAE,
    TopKSAEConfig,
    Transcoder,
    TranscoderConfig,
)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3Config,
    Gemma3TextConfig,
    GenerationConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    Olmo2Config,
    Phi3Config,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

D_MODEL = 64
N_LAYERS = 3
D_SAE = 128
READ_LAYER = 1  # every SAE reads blocks.1; transcoders write blocks.1.hook_mlp_out
SAE_HOOK = f"blocks.{READ_LAYER}.hook_resid_pre"
TC_HOOK_IN = f"blocks.{READ_LAYER}.ln2.hook_normalized"
TC_HOOK_OUT = f"blocks.{READ_LAYER}.hook_mlp_out"
PROMPT = "What should I do today, if the weather is bad?"

_LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
    "\n\n{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_MISTRAL = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }}"
    " [/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
_GEMMA = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_PHI3 = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
_OLMO2 = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class Family:
    name: str
    config: type
    bos: str | None  # the BOS token (None: the family has none, like Qwen)
    eos: str
    end_of_turn: tuple[str, ...] = ()  # extra stop tokens in generation_config.eos_token_id
    adds_bos: bool = False  # the tokenizer itself prepends BOS to plain text
    template: str | None = None
    extra: tuple[str, ...] = ()  # other special tokens the template uses
    kwargs: dict = field(default_factory=dict)


FAMILIES = [
    Family(
        "llama",
        LlamaConfig,
        "<|begin_of_text|>",
        "<|end_of_text|>",
        ("<|eot_id|>",),
        True,
        _LLAMA3,
        ("<|start_header_id|>", "<|end_header_id|>"),
    ),
    Family(
        "qwen2",
        Qwen2Config,
        None,
        "<|endoftext|>",
        ("<|im_end|>",),
        False,
        _CHATML,
        ("<|im_start|>",),
    ),
    Family(
        "qwen3",
        Qwen3Config,
        None,
        "<|endoftext|>",
        ("<|im_end|>",),
        False,
        _CHATML,
        ("<|im_start|>",),
        {"head_dim": 16},
    ),
    Family("mistral", MistralConfig, "<s>", "</s>", (), True, _MISTRAL, ("[INST]", "[/INST]")),
    Family(
        "gemma2",
        Gemma2Config,
        "<bos>",
        "<eos>",
        ("<end_of_turn>",),
        True,
        _GEMMA,
        ("<start_of_turn>",),
        {"head_dim": 16},
    ),
    Family(
        "gemma3_text",
        Gemma3TextConfig,
        "<bos>",
        "<eos>",
        ("<end_of_turn>",),
        True,
        _GEMMA,
        ("<start_of_turn>",),
        {"head_dim": 16},
    ),
    Family(
        "gemma3",
        Gemma3Config,
        "<bos>",
        "<eos>",
        ("<end_of_turn>",),
        True,
        _GEMMA,
        ("<start_of_turn>",),
    ),
    Family("gpt_neox", GPTNeoXConfig, "<|endoftext|>", "<|endoftext|>"),
    Family("gpt2", GPT2Config, "<|endoftext|>", "<|endoftext|>"),
    Family(
        "phi3",
        Phi3Config,
        "<s>",
        "<|endoftext|>",
        ("<|end|>",),
        True,
        _PHI3,
        ("<|user|>", "<|assistant|>", "<|system|>"),
    ),
    Family(
        "olmo2",
        Olmo2Config,
        "<|endoftext|>",
        "<|endoftext|>",
        (),
        False,
        _OLMO2,
        ("<|user|>", "<|assistant|>"),
    ),
]

_TEXT = [
    "What should I do today, if the weather is bad? Read a book, call a friend, cook.",
    "The quick brown fox jumps over the lazy dog while the hero speaks to the villain.",
    "User: hello there. Assistant: hi! How can I help you with your code today?",
    "def add(a, b):\n    return a + b  # a small function, tested and secure",
] * 8


def build_tokenizer(family: Family, out: Path) -> PreTrainedTokenizerFast:
    specials = list(
        dict.fromkeys(t for t in (family.bos, family.eos, *family.end_of_turn, *family.extra) if t)
    )
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(_TEXT, trainer)
    if family.adds_bos:
        bos_id = tk.token_to_id(family.bos)
        tk.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A",
            pair=f"{family.bos} $A $B",
            special_tokens=[(family.bos, bos_id)],
        )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.eos,
        additional_special_tokens=[t for t in specials if t not in (family.bos, family.eos)],
    )
    if family.template:
        tok.chat_template = family.template
    tok.save_pretrained(out)
    return tok


def _config(family: Family, tok) -> object:
    ids = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "tie_word_embeddings": False,  # the end-of-turn row below must not move the embedding
    }
    if family.config is GPT2Config:
        return GPT2Config(
            vocab_size=len(tok), n_embd=D_MODEL, n_layer=N_LAYERS, n_head=4, n_positions=128, **ids
        )
    if family.config is Gemma3Config:  # the multimodal wrapper around a Gemma3 text model
        text = {
            "vocab_size": len(tok),
            "hidden_size": D_MODEL,
            "intermediate_size": 2 * D_MODEL,
            "num_hidden_layers": N_LAYERS,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 128,
            **ids,
        }
        vision = {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "image_size": 28,
            "patch_size": 14,
        }
        return Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, **ids)
    return family.config(
        vocab_size=len(tok),
        hidden_size=D_MODEL,
        intermediate_size=2 * D_MODEL,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        **ids,
        **family.kwargs,
    )


def _greedy(hf, ids: list[int], n: int) -> list[int]:
    tokens = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(n):
            logits = hf(input_ids=tokens, use_cache=False).logits[:, -1]
            tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
    return tokens[0, len(ids) :].tolist()


def prompt_ids(family: Family, tok) -> list[int]:
    """The prompt as a practitioner sends it: through the chat template where there is one
    (rendered text, no special tokens added twice), else plain text after BOS."""
    if family.template:
        text = tok.apply_chat_template(
            [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False
        )
        ids = tok(text, add_special_tokens=False)["input_ids"]
    else:
        ids = tok(PROMPT, add_special_tokens=True)["input_ids"]
    if tok.bos_token_id is not None and ids[0] != tok.bos_token_id:
        ids = [tok.bos_token_id, *ids]
    return ids


def build_model(family: Family, out: Path, seed: int = 0) -> dict:
    """Save a random model whose greedy continuation of the prompt ends with the family's
    last stop token after a few tokens (its unembedding row is made to win there). A seed
    whose continuation repeats one token cannot place it after a first token: try the next."""
    tok = build_tokenizer(family, out)
    stops = [tok.convert_tokens_to_ids(t) for t in (family.eos, *family.end_of_turn)]
    stop = stops[-1]
    ids = prompt_ids(family, tok)
    for attempt in range(seed, seed + 5):
        torch.manual_seed(attempt)
        hf = AutoModelForCausalLM.from_config(_config(family, tok)).eval()
        with torch.no_grad():
            for _name, p in hf.named_parameters():
                if p.dim() > 1:
                    p.normal_(0, 0.15)  # a decisive greedy argmax, far from ties
        if _place_stop(hf, ids, stops, stop):
            break
    else:
        raise AssertionError(f"{family.name}: could not place the stop token")
    hf.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=stops if len(stops) > 1 else stops[0],
        pad_token_id=tok.pad_token_id,
    )
    hf.save_pretrained(out)
    return {"stops": stops, "stop": stop}


@torch.no_grad()
def _place_stop(hf, ids: list[int], stops: list[int], stop: int) -> bool:
    unembed = hf.get_output_embeddings().weight
    plain = _greedy(hf, ids, 8)
    original = unembed[stop].clone()
    for pos in (3, 4, 5, 2):
        winner = plain[pos]
        if winner in stops or winner in plain[:pos]:
            continue  # it would win earlier too
        unembed[stop] = 2.0 * unembed[winner]
        run = _greedy(hf, ids, 10)
        if stop in run and run.index(stop) >= 1:
            return True
        unembed[stop] = original
    return False


def build_lora(base_dir: Path, out: Path, seed: int = 1) -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    peft = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"])
    )
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    peft.save_pretrained(out)


# ------------------------------------------------------------------------------- SAEs
def _sae_common(sae, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if getattr(sae, "b_enc", None) is not None:
            sae.b_enc.copy_(torch.randn(sae.b_enc.shape, generator=g) * 0.3)
        if hasattr(sae, "threshold"):
            sae.threshold.fill_(0.2)


def _rescaled_topk():
    sae = TopKSAE(TopKSAEConfig(d_in=D_MODEL, d_sae=D_SAE, k=16, rescale_acts_by_decoder_norm=True))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # decoder rows of uneven norms: clamp must not land at a * |W_dec[i]|
        sae.W_dec.mul_(0.5 + 1.5 * torch.rand(D_SAE, 1, generator=g))
    return sae


# Each SAELens architecture, keyed by the name shown in the matrix.
SAE_KINDS = {
    "standard": lambda: StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=D_SAE)),
    "topk": lambda: TopKSAE(TopKSAEConfig(d_in=D_MODEL, d_sae=D_SAE, k=16)),
    "topk-rescaled": _rescaled_topk,
    "abstopk": lambda: AbsTopKSAE(AbsTopKSAEConfig(d_in=D_MODEL, d_sae=D_SAE, k=16)),
    "jumprelu": lambda: JumpReLUSAE(JumpReLUSAEConfig(d_in=D_MODEL, d_sae=D_SAE)),
    "gated": lambda: GatedSAE(GatedSAEConfig(d_in=D_MODEL, d_sae=D_SAE)),
    "matching_pursuit": lambda: MatchingPursuitSAE(
        MatchingPursuitSAEConfig(d_in=D_MODEL, d_sae=D_SAE, max_iterations=8)
    ),
    "temporal": lambda: TemporalSAE(
        TemporalSAEConfig(d_in=D_MODEL, d_sae=D_SAE, n_heads=4, bottleneck_factor=4, kval_topk=16)
    ),
    "layer_norm": lambda: StandardSAE(
        StandardSAEConfig(d_in=D_MODEL, d_sae=D_SAE, normalize_activations="layer_norm")
    ),
    "transcoder": lambda: Transcoder(
        TranscoderConfig(d_in=D_MODEL, d_sae=D_SAE, d_out=D_MODEL, apply_b_dec_to_input=False)
    ),
    "skip_transcoder": lambda: SkipTranscoder(
        SkipTranscoderConfig(d_in=D_MODEL, d_sae=D_SAE, d_out=D_MODEL, apply_b_dec_to_input=False)
    ),
    "jumprelu_transcoder": lambda: JumpReLUTranscoder(
        JumpReLUTranscoderConfig(
            d_in=D_MODEL, d_sae=D_SAE, d_out=D_MODEL, apply_b_dec_to_input=False
        )
    ),
}
TRANSCODERS = ("transcoder", "skip_transcoder", "jumprelu_transcoder")
# The edits the engine refuses with a 4xx naming why, per kind (every other edit works).
ALL_METHODS = ("add", "clamp", "ablate")
REFUSED = {
    "layer_norm": ALL_METHODS,  # per-token normalisation: no fixed decoder direction
    "temporal": ALL_METHODS,  # encodes a token from its context
    "matching_pursuit": ("clamp", "ablate"),  # greedy selection jumps as the input moves
}


def build_sae(kind: str, out: Path, seed: int) -> None:
    torch.manual_seed(seed)
    sae = SAE_KINDS[kind]()
    _sae_common(sae, seed)
    if kind in TRANSCODERS:
        sae.cfg.metadata.hook_name = TC_HOOK_IN
        sae.cfg.metadata.hook_name_out = TC_HOOK_OUT
    else:
        sae.cfg.metadata.hook_name = SAE_HOOK
    sae.save_model(out)


def build_zoo(root: Path) -> Path:
    """Every family, the LoRA, every SAE kind attached to every family; returns the config."""
    models_cfg: dict = {}
    stops: dict = {}
    for family in FAMILIES:
        stops[family.name] = build_model(family, root / family.name)
        models_cfg[family.name] = {"path": family.name}
    build_lora(root / "llama", root / "llama-lora")
    models_cfg["llama-lora"] = {"base": "llama", "adapter": "llama-lora"}
    saes_cfg = {}
    for i, kind in enumerate(SAE_KINDS):
        build_sae(kind, root / "saes" / kind, seed=10 + i)
        saes_cfg[kind] = {"path": f"saes/{kind}", "models": list(models_cfg)}
    config = {"device": "cpu", "dtype": "float32", "models": models_cfg, "saes": saes_cfg}
    path = root / "zoo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "stops.yaml").write_text(yaml.safe_dump(stops))
    return path
