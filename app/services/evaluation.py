"""The misalignment evaluation (the `evaluate` kind): sample answers to a question set,
optionally steered, and score each with a judge; whole, or streamed with progress."""

from dataclasses import dataclass
from typing import Any

from app import kinds
from app.analysis.evaluate import sample_answers, score_answers, steering_factory
from app.analysis.judges import Judge
from app.analysis.questions import parse_questions
from app.engine import steering as engine_steering
from app.engine.bridge import Cancelled, WorkerStream
from app.engine.generation import Interventions
from app.errors import InvalidRequest
from app.schemas.conversation import last_user_turn, turns
from app.schemas.evaluate import EvaluateRequest, EvaluateResult
from app.schemas.fields import json_param
from app.services import catalog, results
from app.services import steering as steering_service
from app.services.context import Context, off_loop


@dataclass
class Prepared:
    """A validated evaluation: its questions, their token ids, the judge, the steering."""

    body: EvaluateRequest
    questions: list[dict]
    prompts: list[list[int]]
    judge: Judge
    steering_for: Any = None
    edits: list | None = None  # the resolved, merged interventions
    # per prompt, where a conversation's newest assistant turn starts (None: a question)
    turn_starts: list[int | None] | None = None

    @property
    def total(self) -> int:
        """Answers to sample."""
        return len(self.prompts) * self.body.samples_per_question

    @property
    def cost(self) -> int:
        """Token positions: samples x (prompt + new tokens), per question."""
        new = self.body.max_new_tokens
        return self.body.samples_per_question * sum(len(p) + new for p in self.prompts)


def prepare(ctx: Context, body: EvaluateRequest) -> Prepared:
    """Every check before model work, in the order a user fixes them."""
    model = ctx.registry.model(body.model)
    if body.questions and body.conversations:
        raise InvalidRequest(
            "conversations: give either `questions` or `conversations`, not both",
            field="conversations",
        )
    if body.conversations:
        questions = [
            {"id": f"q{i}", "question": last_user_turn(c), "topic": None}
            for i, c in enumerate(body.conversations)
        ]
    else:
        questions = (
            parse_questions(body.questions, "questions")
            if body.questions
            else catalog.questions(ctx, body.question_set)
        )
    if body.samples_per_question > ctx.settings.max_samples:
        raise InvalidRequest(
            f"samples_per_question: {body.samples_per_question} is over "
            f"the cap of {ctx.settings.max_samples}",
            field="samples_per_question",
        )
    ctx.engine.check_max_new_tokens(body.max_new_tokens)
    if body.positions != "all" and body.interventions is None:
        raise InvalidRequest(
            f"positions: {body.positions!r} says where `interventions` edit, and there are "
            + (
                "none; one latent (`steer`) has its own `steer.positions`"
                if body.steer is not None
                else "none; give `interventions`, or leave positions at 'all'"
            ),
            field="positions",
        )
    steering_for = None
    specs: list = []
    if body.steer is not None:
        sae, _ = ctx.registry.sae_for(body.steer.sae, body.model)
        sae.check_steerable(body.steer.method, "steer.sae")
        sae.check_latent(body.steer.latent, "steer.latent")
        ctx.engine.check_alphas([body.steer.alpha], body.steer.method)
        steering_for = steering_factory(
            sae, body.steer.latent, body.steer.alpha, body.steer.method, body.steer.positions
        )
    if body.interventions is not None:
        if body.steer is not None:
            raise InvalidRequest(
                "interventions: give either `steer` (one latent) or `interventions`, not both",
                field="interventions",
            )
        if not body.interventions:
            raise InvalidRequest("interventions: give at least one edit", field="interventions")
        found = steering_service.directions(ctx, body.direction_ids())
        specs = engine_steering.resolve_edits(ctx.engine, model, body.interventions, found)
        for spec in specs:
            method = spec.method if spec.sae is not None else "add"
            ctx.engine.check_alphas([spec.alpha], method, f"interventions[{spec.index}].alpha")
        steering_for = edits_factory(specs, body.positions)
    starts: list[int | None] | None = None
    if body.conversations:
        convs = [turns(c) for c in body.conversations]
        tokenized = ctx.engine.tokenize_turns(model, convs, reserve=body.max_new_tokens)
        prompts = [ids for ids, _ in tokenized]
        starts = [start for _, start in tokenized]
    else:
        prompts = ctx.engine.tokenize_all(
            model, [q["question"] for q in questions], body.chat, reserve=body.max_new_tokens
        )
    prepared = Prepared(body, questions, prompts, catalog.judge(ctx, body.judge), steering_for)
    prepared.edits = specs if body.interventions is not None else None
    prepared.turn_starts = starts
    ctx.engine.admit(prepared.cost)
    return prepared


def edits_factory(specs: list, positions: str = "all"):
    """Every sampled row applies every edit at its own alpha, at `positions`."""

    def make(n_rows: int) -> Interventions:
        return Interventions([spec.edit([spec.alpha] * n_rows) for spec in specs], positions)

    return make


def run(ctx: Context, prepared: Prepared, progress=None) -> dict:
    """Sample and score (on the device worker). `progress(done, total)` after each batch."""
    body = prepared.body
    with ctx.registry.activate(body.model) as live:
        answers = sample_answers(
            live,
            prepared.prompts,
            body.samples_per_question,
            max_new_tokens=body.max_new_tokens,
            temperature=body.temperature,
            seed=body.seed,
            steering_for=prepared.steering_for,
            turn_starts=prepared.turn_starts,
            progress=progress,
        )
    scored = score_answers(prepared.questions, answers, prepared.judge)
    return {
        "model": body.model,
        "judge": prepared.judge.name,
        "steer": body.steer.model_dump() if body.steer else None,
        # only when edited: results saved before edits existed rerun identically
        **(
            {"interventions": [spec.public() for spec in prepared.edits]}
            if prepared.edits is not None
            else {}
        ),
        # only when not every token: results saved before it existed rerun identically
        **({"positions": body.positions} if body.positions != "all" else {}),
        "samples_per_question": body.samples_per_question,
        **scored,
    }


@results.recorded("evaluate")
async def evaluate(ctx: Context, body: EvaluateRequest) -> dict:
    """POST /api/evaluate."""
    prepared = await off_loop(prepare, ctx, body)  # reads stored directions
    return await ctx.worker.run(run, ctx, prepared, cost=prepared.cost)


def open_stream(ctx: Context, prepared: Prepared) -> WorkerStream:
    """Queue a prepared evaluation at once (Busy when the queue is full) and stream
    {"event": "progress", done, total} after each batch, {"event": "done", result}, then
    {"event": "end"}. Closing it stops the work between batches."""

    recording = results.Recording(ctx, "evaluate", prepared.body)

    def work(emit, cancel) -> None:
        def progress(done: int, total: int) -> None:
            if cancel.is_set():
                raise Cancelled
            emit({"event": "progress", "done": done, "total": total})

        result = run(ctx, prepared, progress)
        recording.done(result)  # kept, so saving it is no second evaluation
        emit({"event": "done", "result": result})

    return WorkerStream(ctx.worker, work, cost=prepared.cost)


def _page_params(request: dict[str, Any]) -> dict[str, Any]:
    """The evaluation page's query for an evaluate request (validated or stored)."""
    steer = request.get("steer")
    defaults = EvaluateRequest.model_fields
    return {
        "model": request["model"],
        "question_set": request.get("question_set"),
        "questions": "\n".join(request.get("questions") or []) or None,
        **(
            {"conversations": json_param(request["conversations"])}
            if request.get("conversations")
            else {}
        ),
        "judge": request.get("judge"),
        **{
            k: request.get(k, defaults[k].default)
            for k in ("samples_per_question", "max_new_tokens", "temperature", "seed")
        },
        "chat": bool(request.get("chat", True)),
        "sae": steer["sae"] if steer else None,
        "latent": steer["latent"] if steer else None,
        "alphas": f"{steer['alpha']:g}" if steer else None,
        "method": steer["method"] if steer else None,
        "positions": steer["positions"] if steer else request.get("positions"),
        "baseline": False if steer else None,
        "interventions": (
            json_param(request["interventions"]) if request.get("interventions") else None
        ),
    }


kinds.register(
    kinds.Kind(
        name="evaluate",
        request=EvaluateRequest,
        response=EvaluateResult,
        run=evaluate,
        page="/evaluate",
        view="evaluate",
        page_params=_page_params,
        summary="Misalignment evaluation",
    )
)
