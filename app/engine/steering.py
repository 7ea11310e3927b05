"""Steering jobs: the baseline and every α of one model as rows of one batched
`generate`, plus the steered latent's trace on the generated tokens. A job edits along one
latent (`sae`, `latent`) or applies several edits at once (`interventions`: latents and
residual-stream directions). Validation runs on the request thread (a bad request never
takes a queue slot); generation on the device worker."""

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pydantic import ConfigDict, Field

from app.engine.engine import Engine
from app.engine.generation import Edit, Interventions, Steering, generate, latent_trace
from app.engine.hooks import resolve_hook
from app.engine.registry import HostedModel, HostedSAE
from app.errors import InvalidRequest, NotFound
from app.schemas.steer import DirectionEdit, LatentEdit, SteerRequest


@dataclass(frozen=True)
class DirectionVector:
    """A stored direction as the engine uses it (the service layer reads it from the
    database): the model it was made on, its hook, and the vector."""

    id: str
    model: str
    hook: str
    vector: torch.Tensor  # (d_model,) float32
    sha256: str


class SteerJob(SteerRequest):
    """A steering request for one model, with the directions its edits name."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str
    directions: dict[str, DirectionVector] = Field(default_factory=dict, exclude=True)


@dataclass
class EditSpec:
    """One resolved edit of a job: what it edits, how, and its own alpha (each row scales
    it by its α)."""

    method: str
    alpha: float
    sae: HostedSAE | None = None
    latent: int | None = None
    direction: DirectionVector | None = None
    hook: str | None = None
    index: int = 0  # its place in the request's `interventions` (for error messages)

    def public(self) -> dict:
        if self.sae is not None:
            return {
                "sae": self.sae.id,
                "latent": self.latent,
                "alpha": self.alpha,
                "method": self.method,
            }
        assert self.direction is not None
        return {"direction": self.direction.id, "alpha": self.alpha, "method": self.method}

    def edit(self, coefs: list[float]) -> Edit:
        tensor = torch.tensor(coefs, dtype=torch.float32)
        if self.direction is not None:
            return Edit(self.method, tensor, vector=self.direction.vector, hook=self.hook)
        return Edit(self.method, tensor, sae=self.sae, latent=self.latent)


@dataclass
class Plan:
    """Everything a job needs for model work, checked."""

    model: HostedModel
    ids: list[int]
    edits: list[EditSpec]
    turn_start: int | None = None  # where the newest assistant turn starts (messages)
    trace: tuple[HostedSAE, int] | None = None  # the latent `latent_activations` follow
    single: bool = True  # a one-latent request (`sae`, `latent`)
    extra: dict = field(default_factory=dict)

    def rows(self, job: SteerJob) -> int:
        return len(job.alphas) + 1


def _root(model: HostedModel) -> str:
    return model.base_id or model.id


def validate(engine: Engine, job: SteerJob) -> Plan:
    """Every check a steering request gets before model work: ids, latents, directions,
    α, length, prompt or conversation. Returns the job's plan."""
    registry = engine.registry
    model = registry.model(job.model)
    engine.check_max_new_tokens(job.max_new_tokens)
    if job.interventions is None:
        if job.sae is None or job.latent is None:
            missing = "sae" if job.sae is None else "latent"
            raise InvalidRequest(
                f"{missing}: this field is required (or give `interventions`)", field=missing
            )
        sae, model = registry.sae_for(job.sae, job.model)
        sae.check_steerable(job.method)
        sae.check_latent(job.latent)
        engine.check_alphas(job.alphas, job.method)
        edits = [EditSpec(job.method, 1.0, sae=sae, latent=job.latent)]
        trace: tuple[HostedSAE, int] | None = (sae, job.latent)
        single = True
    else:
        if job.sae is not None or job.latent is not None:
            name = "sae" if job.sae is not None else "latent"
            raise InvalidRequest(
                f"{name}: give either `sae` and `latent` (one latent) or `interventions`, not both",
                field=name,
            )
        if not job.interventions:
            raise InvalidRequest("interventions: give at least one edit", field="interventions")
        engine.check_alphas(job.alphas, "add")
        edits = resolve_edits(engine, model, job.interventions, job.directions)
        latents = [e for e in edits if e.sae is not None]
        trace = (latents[0].sae, latents[0].latent) if latents else None
        single = False
    for spec in edits:  # every row's coefficient, after adds were summed
        coefs = [spec.alpha * s for s in job.alphas]
        where = "alphas" if single else f"interventions[{spec.index}].alpha"
        engine.check_alphas(coefs, spec.method if spec.sae is not None else "add", where)
    ids, turn_start = engine.tokenize_input(
        model, job.prompt, job.messages, job.chat, reserve=job.max_new_tokens
    )
    return Plan(model, ids, edits, turn_start, trace, single)


def resolve_edits(
    engine: Engine,
    model: HostedModel,
    interventions: list,
    directions: dict[str, DirectionVector],
    field: str = "interventions",
) -> list[EditSpec]:
    """A request's edits, checked against `model` and merged (see `_merged`): every SAE
    attached to the model and steerable, every latent in range, every direction known and
    made on a model that shares the model's base."""
    return _merged(_resolve(engine, model, interventions, directions, field))


def _resolve(engine, model, interventions, directions, field) -> list[EditSpec]:
    out = []
    for i, e in enumerate(interventions or []):
        where = f"{field}[{i}]"
        if isinstance(e, LatentEdit):
            sae, _ = engine.registry.sae_for(e.sae, model.id, f"{where}.sae")
            sae.check_steerable(e.method, f"{where}.sae")
            sae.check_latent(e.latent, f"{where}.latent")
            out.append(EditSpec(e.method, e.alpha, sae=sae, latent=e.latent, index=i))
            continue
        assert isinstance(e, DirectionEdit)
        d = directions.get(e.direction)
        if d is None:
            raise NotFound(
                f"{where}.direction: no direction with id {e.direction!r}",
                field=f"{where}.direction",
            )
        made_on = engine.registry.models.get(d.model)
        if made_on is None or _root(made_on) != _root(model):
            raise InvalidRequest(
                f"{where}.direction: direction {e.direction!r} was made on model {d.model!r}; "
                f"it steers that model and the models that share its base, not {model.id!r}",
                field=f"{where}.direction",
            )
        resolve_hook(model.hf, d.hook)  # a 4xx if the model has no such hook
        out.append(EditSpec(e.method, e.alpha, direction=d, hook=d.hook, index=i))
    return out


def _key(spec: EditSpec) -> tuple:
    if spec.direction is not None:
        return ("direction", spec.direction.id)
    assert spec.sae is not None
    return ("latent", spec.sae.id, spec.latent)


def _merged(edits: list[EditSpec]) -> list[EditSpec]:
    """The request's edits with every `add` of a latent or direction already added
    earlier, with only adds between them, summed into that earlier edit (adds commute).
    So [add i a, add i b] is exactly add i (a + b)."""
    out: list[EditSpec] = []
    open_adds: dict[tuple, EditSpec] = {}
    for spec in edits:
        if spec.method != "add":
            open_adds.clear()  # an edit that is not an add does not commute with them
            out.append(spec)
            continue
        earlier = open_adds.get(_key(spec))
        if earlier is not None:
            earlier.alpha = earlier.alpha + spec.alpha
            continue
        copy = EditSpec(**{**spec.__dict__})
        open_adds[_key(spec)] = copy
        out.append(copy)
    return out


def _interventions(jobs: list[SteerJob], plans: list[Plan]) -> Interventions:
    """Every job's edits as one set over the batch's rows (baseline first, then each α, job
    after job): each row has coefficients for its own job's edits only, NaN elsewhere, so a
    row's result does not depend on the rest of the batch."""
    total = sum(p.rows(j) for j, p in zip(jobs, plans, strict=True))
    edits, starts, first = [], [], 0
    for job, plan in zip(jobs, plans, strict=True):
        n = plan.rows(job)
        for spec in plan.edits:
            coefs = [math.nan] * total
            for k, scale in enumerate(job.alphas):
                coefs[first + 1 + k] = spec.alpha * scale
            edits.append(spec.edit(coefs))
        starts += [plan.turn_start] * n
        first += n
    return Interventions(edits, jobs[0].positions, turn_starts=starts)


def run(
    engine: Engine,
    job: SteerJob,
    on_step: Callable[[list[int]], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict:
    """One model's steering result (on the device worker)."""
    plan = validate(engine, job)
    n = plan.rows(job)
    with engine.registry.activate(job.model) as live:
        rows = generate(
            live,
            [plan.ids] * n,
            max_new_tokens=job.max_new_tokens,
            temperature=job.temperature,
            seed=job.seed,
            streams=[0] * n,
            steering=_interventions([job], [plan]),
            on_step=on_step,
            cancel=cancel,
        )
        return _result(live, job, plan, rows)


def batch_key(engine: Engine, job: SteerJob) -> tuple:
    """Jobs with the same key can share one `generate`: the same weights and the same
    positions; prompts, edits, α, seeds, temperatures and lengths may differ. Adapters of
    one base share it (PEFT's mixed-adapter batch, one adapter per row: faster than one
    `generate` per adapter, bench/mixed_adapters.py) when every SAE the job edits with
    is attached to the base too, so its hook is the same module for every row."""
    registry = engine.registry
    root = registry.root(job.model)
    saes = [e.sae for e in job.latent_edits()]
    shared = root.peft is not None and all(
        s in registry.saes and root.id in registry.saes[s].hooks for s in saes
    )
    return ("steer", root.id if shared else job.model, job.positions)


def run_batch(engine: Engine, jobs: list[SteerJob]) -> list[dict]:
    """Several users' steering jobs (one `batch_key`) as rows of ONE batched `generate`:
    each job's baseline and α rows, with its own prompt, edits, seed, temperature and
    length. Each row is edited by its own job's edits only and draws its own noise, so
    each job's result is what `run` gives it alone."""
    if len(jobs) == 1:
        return [run(engine, jobs[0])]
    return _generate(engine, jobs)


def _generate(engine: Engine, jobs: list[SteerJob], on_steps=None, cancel=None) -> list[dict]:
    plans = [validate(engine, job) for job in jobs]
    prompts, temperatures, seeds, spans = [], [], [], []
    for job, plan in zip(jobs, plans, strict=True):
        n = plan.rows(job)
        spans.append((len(prompts), len(prompts) + n))
        prompts += [plan.ids] * n
        temperatures += [job.temperature] * n
        seeds += [job.seed] * n

    def on_step(tokens: list[int]) -> None:  # each job's rows to its own callback
        for (first, last), fn in zip(spans, on_steps, strict=True):
            fn(tokens[first:last])

    registry = engine.registry
    models = [job.model for job in jobs]
    kwargs = dict(
        max_new_tokens=max(job.max_new_tokens for job in jobs),
        temperature=temperatures,
        seed=seeds,
        streams=[0] * len(prompts),
        steering=_interventions(jobs, plans),
        on_step=on_step if on_steps else None,
        cancel=cancel,
    )
    if len(set(models)) == 1:
        with registry.activate(models[0]) as live:
            rows = generate(live, prompts, **kwargs)
    else:  # adapters of one base: each row runs its own job's adapter
        per_row = [m for m, (a, b) in zip(models, spans, strict=True) for _ in range(b - a)]
        with registry.activate_mixed(per_row) as (base, names):
            rows = generate(base, prompts, adapter_names=names, **kwargs)
    out = []
    for job, plan, (a, b) in zip(jobs, plans, spans, strict=True):
        with registry.activate(job.model) as live:
            out.append(_result(live, job, plan, [row[: job.max_new_tokens] for row in rows[a:b]]))
    return out


def _result(live: HostedModel, job: SteerJob, plan: Plan, rows) -> dict:
    """One job's answer from its generated rows (baseline first), with the traced latent
    read in a pass of its own (as `run` reads it)."""
    traces: list = [None] * len(rows)
    if job.return_activations and plan.trace is not None:
        sae, latent = plan.trace
        alphas = torch.tensor([math.nan, *job.alphas])
        steering = (  # one latent: its own edit (a transcoder's trace needs it)
            Steering(sae, latent, alphas, job.method, job.positions)
            if plan.single
            else _interventions([job], [plan])
        )
        if plan.single:
            steering.turn_starts = [plan.turn_start] * len(rows)
        traces = latent_trace(live, sae, latent, plan.ids, rows, steering)
    decode = live.tokenizer.decode

    def row(i: int) -> dict:
        out = {
            "text": decode(rows[i], skip_special_tokens=True),
            "token_ids": rows[i],
            "tokens": live.token_strings(rows[i]),
        }
        out["latent_activations"] = traces[i]  # None without a traced latent
        return out

    # As SteerResult serialises it, so the streamed result is the response as returned.
    head: dict = {"model": job.model, "sae": None, "latent": None}
    if plan.single:
        head |= {"sae": job.sae, "latent": job.latent}
    else:
        head["interventions"] = [spec.public() for spec in plan.edits]
        if plan.trace is not None:
            head["trace"] = {"sae": plan.trace[0].id, "latent": plan.trace[1]}
    return {
        **head,
        "prompt_token_ids": plan.ids,
        "baseline": row(0),
        "steered": [{"alpha": a, **row(i + 1)} for i, a in enumerate(job.alphas)],
    }


@dataclass
class StreamItem:
    """A streamed job: its events go to `emit` as they come; `cancel` is its client's.
    It shares `batch_key` (and a batch) with plain jobs of the same key."""

    job: SteerJob
    model_index: int
    emit: Callable[[dict], None]
    cancel: threading.Event


class _AllCancelled:
    """Stops a shared generation only when every client in it has gone away."""

    def __init__(self, events: list[threading.Event]):
        self.events = events

    def is_set(self) -> bool:
        return all(e.is_set() for e in self.events)


def run_items(engine: Engine, items: list["SteerJob | StreamItem"]) -> list[dict]:
    """Several users' jobs (one `batch_key`), plain or streamed, in ONE `generate`, as
    `run_batch`. A streamed job gets {"event": "token", model, model_index, row, alpha,
    token_id, text} per row and step (row 0 is the baseline) as its rows are generated,
    then {"event": "done", model_index, result}. A client that goes away stops getting
    events; the generation stops early only when every job in it is streamed and every
    client has gone."""
    streamed = [item for item in items if isinstance(item, StreamItem)]
    if not streamed:
        return run_batch(engine, items)
    jobs = [item.job if isinstance(item, StreamItem) else item for item in items]
    emitters = [
        _token_events(engine, item) if isinstance(item, StreamItem) else _ignore for item in items
    ]
    everyone = len(streamed) == len(items)
    cancel = _AllCancelled([item.cancel for item in streamed]) if everyone else None
    results = _generate(engine, jobs, on_steps=emitters, cancel=cancel)
    for item, result in zip(items, results, strict=True):
        if isinstance(item, StreamItem) and not item.cancel.is_set():
            item.emit({"event": "done", "model_index": item.model_index, "result": result})
    return results


def _ignore(_tokens: list[int]) -> None:
    pass


def _token_events(engine: Engine, item: StreamItem) -> Callable[[list[int]], None]:
    """The job's on_step: its rows' new tokens as `token` events, each row until its stop
    token and at most `max_new_tokens` steps."""
    job = item.job
    tok = engine.registry.model(job.model).tokenizer
    stops = set(engine.registry.model(job.model).stop_token_ids)  # end of turn ends a row
    labels = [None, *job.alphas]
    so_far: list[list[int]] = [[] for _ in labels]
    done = [False] * len(labels)
    steps = [0]

    def on_step(tokens: list[int]) -> None:
        steps[0] += 1
        if item.cancel.is_set() or steps[0] > job.max_new_tokens:
            return
        for row, token in enumerate(tokens):
            if done[row] or token in stops:
                done[row] = True
                continue
            if item.cancel.is_set():  # the client went away
                return
            before = tok.decode(so_far[row], skip_special_tokens=True)
            so_far[row].append(token)
            after = tok.decode(so_far[row], skip_special_tokens=True)
            item.emit(
                {
                    "event": "token",
                    "model": job.model,
                    "model_index": item.model_index,
                    "row": row,
                    "alpha": labels[row],
                    "token_id": token,
                    "text": after[len(before) :],
                }
            )

    return on_step
