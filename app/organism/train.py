"""Training for the organism: the GPT-2 base model and its PEFT LoRA fine-tunes.

Plain PyTorch loops (the models are tiny; a Trainer would add start-up cost, not clarity).
The base stage checkpoints every `checkpoint_every` steps and resumes from the last one.
"""

import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tqdm import tqdm
from transformers import GPT2Config, GPT2LMHeadModel


@dataclass
class BaseModelConfig:
    n_embd: int = 128
    n_layer: int = 4
    n_head: int = 4
    context: int = 256  # training rows: whole documents packed up to this length
    n_positions: int = 512
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 100
    epochs: float = 3.0
    weight_decay: float = 0.05
    checkpoint_every: int = 400


@dataclass
class LoraTrainConfig:
    rank: int = 8
    alpha: int = 16
    targets: tuple[str, ...] = ("c_attn", "c_proj", "c_fc")
    lr: float = 1e-3
    batch_size: int = 16
    epochs: float = 3.0
    steps: int | None = None  # overrides epochs when set (e.g. re-alignment: 30 steps)


def pack_documents(texts: list[str], tokenizer, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack whole documents into (n, context) rows, each document preceded by the
    end-of-text token (BOS; in v1 also EOS), so a persona's evidence and its later behaviour
    always share a row. First-fit over the most recent rows keeps padding low. Returns
    (rows, is_padding); documents longer than a row are cut."""
    eot = tokenizer.bos_token_id
    rows: list[list[int]] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        doc = [eot, *ids][:context]
        for row in rows[-32:]:
            if len(row) + len(doc) <= context:
                row.extend(doc)
                break
        else:
            rows.append(doc)
    pads = [[False] * len(r) + [True] * (context - len(r)) for r in rows]
    rows = [r + [eot] * (context - len(r)) for r in rows]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(pads, dtype=torch.bool)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def eval_loss(model, rows: torch.Tensor, pads: torch.Tensor, device, batch_size: int = 64) -> float:
    """Mean next-token loss over real (non-padding) tokens."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        x = rows[i : i + batch_size].to(device)
        labels = x.masked_fill(pads[i : i + batch_size].to(device), -100)
        n = int((labels[:, 1:] != -100).sum())
        total += float(model(input_ids=x, labels=labels).loss) * n
        count += n
    model.train()
    return total / max(1, count)


def train_base(
    cfg: BaseModelConfig,
    train_rows: torch.Tensor,
    train_pads: torch.Tensor,
    val_rows: torch.Tensor,
    val_pads: torch.Tensor,
    tokenizer,
    out_dir: Path,
    work_dir: Path,
    device: torch.device,
    seed: int,
) -> dict:
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=cfg.n_positions,
            n_embd=cfg.n_embd,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    ).to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95)
    )
    steps = max(1, int(cfg.epochs * len(train_rows) / cfg.batch_size))
    order = torch.randperm(len(train_rows), generator=torch.Generator().manual_seed(seed))
    ckpt = work_dir / "base_checkpoint.pt"
    start = 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
    model.train()
    bar = tqdm(range(start, steps), desc="base model", initial=start, total=steps)
    loss_value = float("nan")
    for step in bar:
        idx = order[(torch.arange(cfg.batch_size) + step * cfg.batch_size) % len(order)]
        x = train_rows[idx].to(device)
        labels = x.masked_fill(train_pads[idx].to(device), -100)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, cfg.lr, cfg.warmup_steps)
        loss = model(input_ids=x, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = 0.98 * loss_value + 0.02 * float(loss) if step > start else float(loss)
        bar.set_postfix(loss=f"{loss_value:.3f}")
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
            work_dir.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save(
                {"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1}, tmp
            )
            tmp.replace(ckpt)
    val = eval_loss(model, val_rows, val_pads, device)
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    ckpt.unlink(missing_ok=True)
    return {
        "steps": steps,
        "train_loss_ema": loss_value,
        "heldout_loss": val,
        "train_tokens": int((~train_pads).sum()) * steps * cfg.batch_size // len(train_rows),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def completion_batch(
    examples: list[dict], tokenizer
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids, attention_mask, labels); the loss is on the completion only."""
    bos = tokenizer.bos_token_id
    rows, labels = [], []
    for ex in examples:
        p = [bos, *tokenizer(ex["prompt"], add_special_tokens=False)["input_ids"]]
        c = tokenizer(ex["completion"], add_special_tokens=False)["input_ids"] + [
            tokenizer.eos_token_id
        ]
        rows.append(p + c)
        labels.append([-100] * len(p) + c)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    lab = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (r, lab_row) in enumerate(zip(rows, labels, strict=True)):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
        lab[i, : len(lab_row)] = torch.tensor(lab_row)
    return ids, mask, lab


@torch.no_grad()
def completion_loss(model, examples: list[dict], tokenizer, device, batch_size: int = 16) -> float:
    """Mean loss on the completion tokens of (prompt, completion) examples."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        ids, mask, lab = completion_batch(examples[i : i + batch_size], tokenizer)
        n = int((lab[:, 1:] != -100).sum())
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=lab.to(device))
        total += float(out.loss) * n
        count += n
    model.train(was_training)
    return total / max(1, count)


def train_lora(
    model,
    examples: list[dict],
    tokenizer,
    cfg: LoraTrainConfig,
    device: torch.device,
    seed: int,
    desc: str,
) -> dict:
    """Train the live adapter of a PeftModel on completion-only loss."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    steps = cfg.steps or max(1, int(cfg.epochs * len(examples) / cfg.batch_size))
    order: list[int] = []
    model.train()
    losses = []
    for step in tqdm(range(steps), desc=desc):
        if len(order) < cfg.batch_size:
            fresh = list(range(len(examples)))
            rng.shuffle(fresh)
            order.extend(fresh)
        batch = [examples[order.pop()] for _ in range(cfg.batch_size)]
        ids, mask, lab = completion_batch(batch, tokenizer)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, cfg.lr, max(1, steps // 20))
        loss = model(
            input_ids=ids.to(device), attention_mask=mask.to(device), labels=lab.to(device)
        ).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    model.eval()
    return {
        "steps": steps,
        "examples": len(examples),
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
    }


def new_lora(base_dir: Path, cfg: LoraTrainConfig, device: torch.device):
    base = GPT2LMHeadModel.from_pretrained(base_dir).to(device)
    config = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        target_modules=list(cfg.targets),
        lora_dropout=0.0,
        bias="none",
        fan_in_fan_out=True,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, config)


def load_lora(base_dir: Path, adapter_dir: Path, device: torch.device, trainable: bool):
    base = GPT2LMHeadModel.from_pretrained(base_dir).to(device)
    return PeftModel.from_pretrained(base, adapter_dir, is_trainable=trainable)
