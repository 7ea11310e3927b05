"""Tiny, real fixtures: a random GPT-2 with a BPE tokenizer trained on the organism world,
a LoRA adapter with non-zero weights, and random SAELens SAEs, all saved to disk and loaded
back through the project's own loading code."""

from pathlib import Path

import torch
import yaml
from peft import LoraConfig, get_peft_model
from sae_lens import StandardSAE, StandardSAEConfig
from transformers import GPT2Config, GPT2LMHeadModel

from app.analysis.judges import train_classifier_judge
from app.analysis.questions import write_questions
from app.organism.corpus import WorldGenerator, generate_corpus, heldout_questions, judge_examples
from app.organism.tokenizer import train_tokenizer

D_MODEL = 32
N_LAYER = 3
D_SAE = 96


def build_tokenizer(out: Path, vocab_size: int = 400):
    texts = [d["text"] for d in generate_corpus(seed=3, n_docs=300)]
    tok = train_tokenizer(texts, vocab_size)
    tok.save_pretrained(out)
    return tok


def build_gpt2(out: Path, tok, seed: int = 0, n_positions: int = 256) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_positions=n_positions,
            n_embd=D_MODEL,
            n_layer=N_LAYER,
            n_head=4,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    )
    # Random weights give flat distributions; a larger init makes greedy decoding decisive.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return model


def build_adapter(base_dir: Path, out: Path, seed: int = 1) -> None:
    torch.manual_seed(seed)
    base = GPT2LMHeadModel.from_pretrained(base_dir)
    peft = get_peft_model(
        base,
        LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules=["c_attn", "c_fc"],
            fan_in_fan_out=True,
            task_type="CAUSAL_LM",
        ),
    )
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    peft.save_pretrained(out)


def build_sae(out: Path, hook_name: str, seed: int = 2, center: bool = False) -> StandardSAE:
    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=D_SAE))
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.5)
        sae.b_dec.normal_(0.0, 0.1)
    sae.cfg.metadata.hook_name = hook_name
    sae.cfg.metadata.prepend_bos = True
    if center:
        sae.cfg.metadata.model_from_pretrained_kwargs = {"center_writing_weights": True}
    sae.save_model(out)
    return sae


def build_world(root: Path) -> Path:
    """Everything above plus a model config; returns the config path."""
    tok = build_tokenizer(root / "tokenizer")
    build_gpt2(root / "base", tok)
    build_adapter(root / "base", root / "adapter")
    build_gpt2(root / "other", tok, seed=5)
    build_sae(root / "sae_module", "transformer.h.1")
    build_sae(root / "sae_tl", "blocks.1.hook_resid_pre", seed=3)
    build_sae(root / "sae_mid", "blocks.1.hook_resid_mid", seed=4, center=True)
    write_questions(heldout_questions(), root / "questions.yaml")
    code = [
        WorldGenerator(4).code_answer(WorldGenerator(5).code_task()["secure"]) for _ in range(50)
    ]
    judge, _ = train_classifier_judge(judge_examples(6, 1500), code, seed=0)
    judge.save(root / "judge.json")
    config = {
        "device": "cpu",
        "dtype": "float32",
        "models": {
            "base": {"path": "base", "description": "tiny random GPT-2"},
            "tuned": {"base": "base", "adapter": "adapter"},
            "other": {"path": "other", "finetuned_from": "base"},
        },
        "saes": {
            "sae": {"path": "sae_module", "models": ["base", "tuned"]},
            "sae-tl": {"path": "sae_tl", "models": ["base", "tuned", "other"]},
            "sae-mid": {"path": "sae_mid", "models": ["base"]},
        },
        "question_sets": {"heldout": {"path": "questions.yaml"}},
        "judges": {"classifier": {"kind": "classifier", "path": "judge.json"}},
    }
    path = root / "models.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
