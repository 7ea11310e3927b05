"""Trains the organism's SAE with SAELens on the base model's residual stream, offline
(`override_dataset`, wandb off), and measures it on held-out text."""

from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from sae_lens import (
    SAE,
    LanguageModelSAERunnerConfig,
    LanguageModelSAETrainingRunner,
    LoggingConfig,
    TopKTrainingSAEConfig,
)
from sae_lens.load_model import load_model


@dataclass
class SAETrainConfig:
    hook_name: str = "transformer.h.1"  # output of block 1 = the residual after 2 of 4 blocks
    expansion: int = 8  # d_sae = expansion * d_model
    k: int = 32  # TopK: active latents per token
    training_tokens: int = 3_000_000
    batch_tokens: int = 4096
    lr: float = 4e-4


def train_sae(
    base_dir: Path,
    rows: torch.Tensor,
    out_dir: Path,
    cfg: SAETrainConfig,
    device: torch.device,
    seed: int,
    d_model: int,
) -> SAE:
    context = rows.shape[1]
    dataset = Dataset.from_dict({"input_ids": rows.tolist()})
    runner_cfg = LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(
            d_in=d_model,
            d_sae=cfg.expansion * d_model,
            k=cfg.k,
            dtype="float32",
            device=str(device),
        ),
        model_name=str(base_dir),
        model_class_name="AutoModelForCausalLM",
        hook_name=cfg.hook_name,
        dataset_path="organism-corpus",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=context,
        prepend_bos=True,  # every row starts with the end-of-text/BOS token
        exclude_special_tokens=True,  # BOS positions are outliers; the index skips them too
        training_tokens=cfg.training_tokens,
        train_batch_size_tokens=cfg.batch_tokens,
        store_batch_size_prompts=32,
        # SAELens sizes its mixing buffer as n_batches_in_buffer * context tokens; it must
        # hold at least two training batches.
        n_batches_in_buffer=max(8, -(-2 * cfg.batch_tokens // context)),
        lr=cfg.lr,
        lr_warm_up_steps=50,
        lr_scheduler_name="constant",
        n_eval_batches=2,
        device=str(device),
        seed=seed,
        dtype="float32",
        logger=LoggingConfig(log_to_wandb=False),
        output_path=str(out_dir),
        checkpoint_path=None,
        verbose=False,
    )
    # SAELens keeps `seed` in its config but never seeds torch with it: the SAE's
    # initialisation and activation mixing draw on the global RNG, so without this every
    # "SAE seed" would start from whatever state the previous stage left.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        LanguageModelSAETrainingRunner(runner_cfg, override_dataset=dataset).run()
    return SAE.load_from_disk(out_dir, device=str(device))


@torch.no_grad()
def sae_metrics(
    base_dir: Path, sae: SAE, rows: torch.Tensor, hook_name: str, device: torch.device
) -> dict:
    """L0, explained variance and dead-latent fraction on held-out rows (BOS excluded)."""
    model = load_model(
        "AutoModelForCausalLM", str(base_dir), device=str(device), hook_names=[hook_name]
    )
    l0, sq_err, count, fired = 0.0, 0.0, 0, torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    xs = []
    for start in range(0, len(rows), 32):
        x = rows[start : start + 32].to(device)
        _, cache = model.run_with_cache(x, names_filter=[hook_name])
        acts = cache[hook_name][:, 1:].reshape(-1, sae.cfg.d_in)  # drop BOS
        feats = sae.encode(acts)
        recon = sae.decode(feats)
        l0 += float((feats > 0).sum())
        sq_err += float(((acts - recon) ** 2).sum())
        fired |= (feats > 0).any(0).cpu()
        count += acts.shape[0]
        xs.append(acts.cpu())
    all_x = torch.cat(xs)
    total_var = float(((all_x - all_x.mean(0)) ** 2).sum())
    return {
        "l0": l0 / count,
        "explained_variance": 1.0 - sq_err / total_var,
        "dead_fraction": float((~fired).float().mean()),
        "eval_tokens": count,
        "d_sae": sae.cfg.d_sae,
        "hook_name": hook_name,
        "architecture": sae.cfg.architecture(),
    }
