"""Steering jobs: the baseline and every α of one model as rows of one batched
`generate`, plus the latent's trace on the generated tokens. Validation runs on the
request thread (a bad request never takes a queue slot); generation on the device
worker."""

import math
import threading
from collections.abc import Callable

import torch

from app.engine.engine import Engine
from app.engine.generation import Steering, generate, latent_trace
from app.engine.registry import HostedModel, HostedSAE
from app.schemas.steer import SteerRequest

# A steering request for one model (its `model` is one id).
SteerJob = SteerRequest


def validate(engine: Engine, job: SteerJob) -> tuple[HostedSAE, HostedModel, list[int]]:
    """Every check a steering request gets before model work: ids, latent, α, length,
    prompt. Returns the SAE, the model and the prompt's token ids."""
    sae, model = engine.registry.sae_for(job.sae, job.model)
    sae.check_steerable(job.method)
    sae.check_latent(job.latent)
    engine.check_alphas(job.alphas, job.method)
    engine.check_max_new_tokens(job.max_new_tokens)
    ids = engine.tokenize(model, job.prompt, job.chat, reserve=job.max_new_tokens)
    return sae, model, ids


def run(
    engine: Engine,
    job: SteerJob,
    on_step: Callable[[list[int]], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict:
    """One model's steering result (on the device worker)."""
    sae, _model, ids = validate(engine, job)
    n = len(job.alphas) + 1
    alphas = torch.tensor([math.nan, *job.alphas])  # row 0 is the baseline
    steering = Steering(sae, job.latent, alphas, job.method, job.positions)
    with engine.registry.activate(job.model) as live:
        rows = generate(
            live,
            [ids] * n,
            max_new_tokens=job.max_new_tokens,
            temperature=job.temperature,
            seed=job.seed,
            streams=[0] * n,
            steering=steering,
            on_step=on_step,
            cancel=cancel,
        )
        return _result(engine, live, job, sae, ids, rows)


def batch_key(job: SteerJob) -> tuple:
    """Jobs with the same key can share one `generate`: the same model (adapter) and SAE,
    edited the same way; prompts, latents, α, seeds, temperatures and lengths may differ."""
    return ("steer", job.model, job.sae, job.method, job.positions)


def run_batch(engine: Engine, jobs: list[SteerJob]) -> list[dict]:
    """Several users' steering jobs (one `batch_key`) as rows of ONE batched `generate`:
    each job's baseline and α rows, with its own prompt, latent, seed, temperature and
    length. Each row is edited by its own latent only and draws its own noise, so each
    job's result is what `run` gives it alone."""
    if len(jobs) == 1:
        return [run(engine, jobs[0])]
    prepared = [validate(engine, job) for job in jobs]
    sae = prepared[0][0]
    prompts, alphas, latents, temperatures, seeds = [], [], [], [], []
    for job, (_sae, _model, ids) in zip(jobs, prepared, strict=True):
        n = len(job.alphas) + 1
        prompts += [ids] * n
        alphas += [math.nan, *job.alphas]
        latents += [job.latent] * n
        temperatures += [job.temperature] * n
        seeds += [job.seed] * n
    steering = Steering(
        sae,
        jobs[0].latent,
        torch.tensor(alphas),
        jobs[0].method,
        jobs[0].positions,
        latents=latents,
    )
    model_id = jobs[0].model
    with engine.registry.activate(model_id) as live:
        rows = generate(
            live,
            prompts,
            max_new_tokens=max(job.max_new_tokens for job in jobs),
            temperature=temperatures,
            seed=seeds,
            streams=[0] * len(prompts),
            steering=steering,
        )
        results, first = [], 0
        for job, (_sae, _model, ids) in zip(jobs, prepared, strict=True):
            n = len(job.alphas) + 1
            mine = [row[: job.max_new_tokens] for row in rows[first : first + n]]
            first += n
            results.append(_result(engine, live, job, sae, ids, mine))
    return results


def _result(engine: Engine, live, job: SteerJob, sae, ids: list[int], rows) -> dict:
    """One job's answer from its generated rows (baseline first), with the latent's trace
    read in a pass of its own (as `run` reads it)."""
    steering = Steering(
        sae, job.latent, torch.tensor([math.nan, *job.alphas]), job.method, job.positions
    )
    traces = (
        latent_trace(live, sae, job.latent, ids, rows, steering)
        if job.return_activations
        else [None] * len(rows)
    )
    decode = live.tokenizer.decode

    def row(i: int) -> dict:
        out = {
            "text": decode(rows[i], skip_special_tokens=True),
            "token_ids": rows[i],
            "tokens": live.token_strings(rows[i]),
        }
        if traces[i] is not None:
            out["latent_activations"] = traces[i]
        return out

    return {
        "model": job.model,
        "sae": job.sae,
        "latent": job.latent,
        "prompt_token_ids": ids,
        "baseline": row(0),
        "steered": [{"alpha": a, **row(i + 1)} for i, a in enumerate(job.alphas)],
    }


def stream(engine: Engine, jobs: list[SteerJob], emit, cancel: threading.Event) -> None:
    """Run `jobs` one model after another, emitting {"event": "token", model, model_index,
    row, alpha, token_id, text} per row and step (row 0 is the baseline) and {"event":
    "done", model_index, result} per model. A bridge job (app.engine.bridge)."""
    for m, job in enumerate(jobs):
        if cancel.is_set():
            return
        model = engine.registry.model(job.model)
        tokenizer = model.tokenizer
        stops = set(model.stop_token_ids)  # the end of turn ends a row, not only EOS
        labels = [None, *job.alphas]
        so_far: list[list[int]] = [[] for _ in labels]
        done = [False] * len(labels)

        def on_step(
            tokens,
            m=m,
            job=job,
            labels=labels,
            so_far=so_far,
            done=done,
            tok=tokenizer,
            stops=stops,
        ):
            for row, token in enumerate(tokens):
                if done[row] or token in stops:
                    done[row] = True
                    continue
                before = tok.decode(so_far[row], skip_special_tokens=True)
                so_far[row].append(token)
                after = tok.decode(so_far[row], skip_special_tokens=True)
                emit(
                    {
                        "event": "token",
                        "model": job.model,
                        "model_index": m,
                        "row": row,
                        "alpha": labels[row],
                        "token_id": token,
                        "text": after[len(before) :],
                    }
                )

        result = run(engine, job, on_step=on_step, cancel=cancel)
        if cancel.is_set():
            return
        emit({"event": "done", "model_index": m, "result": result})
