"""The engine's use cases: activations, steering (plain and streamed), tokenisation and
request-level checks. Routes call these; model work runs on the device worker."""

import asyncio
import math
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import torch

from app.analysis.compare import compare_models
from app.analysis.evaluate import sample_answers, score_answers, steering_factory
from app.analysis.judges import ClassifierJudge, Judge, LLMJudge
from app.analysis.questions import load_questions, parse_questions
from app.engine.activations import prompt_activations
from app.engine.generation import Steering, generate, latent_trace
from app.engine.registry import HostedModel, Registry
from app.engine.worker import DeviceWorker
from app.errors import InvalidRequest, NotFound, choices
from app.settings import Settings


@dataclass
class SteerJob:
    model: str
    sae: str
    latent: int
    prompt: str
    alphas: list[float]
    max_new_tokens: int = 40
    temperature: float = 0.0
    seed: int = 0
    positions: str = "all"
    method: str = "add"
    chat: bool = False
    return_activations: bool = True


class Engine:
    def __init__(self, registry: Registry, settings: Settings):
        self.registry = registry
        self.settings = settings
        self.worker = DeviceWorker(registry.device, settings.queue_size, settings.retry_after_s)
        self._judges: dict[str, Judge] = {}

    # ------------------------------------------------------------ tokenisation
    def tokenize(
        self,
        model: HostedModel,
        prompt: str,
        chat: bool = False,
        reserve: int = 0,
        field: str = "prompt",
    ) -> list[int]:
        if not prompt or not prompt.strip():
            raise InvalidRequest(f"{field}: must not be empty", field=field)
        text = prompt
        if chat:
            if not model.tokenizer.chat_template:
                raise InvalidRequest(
                    f"chat: model {model.id!r} has no chat template; send chat=false",
                    field="chat",
                )
            text = model.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
        ids = model.encode(text)
        limit = min(self.settings.max_prompt_tokens, model.max_positions - reserve)
        if len(ids) > limit:
            raise InvalidRequest(
                f"{field}: {len(ids)} tokens is over the limit of {limit} tokens for model "
                f"{model.id!r} (max_prompt_tokens={self.settings.max_prompt_tokens}, "
                f"context {model.max_positions} minus {reserve} new tokens)",
                field=field,
            )
        return ids

    def check_alphas(self, alphas: list[float], method: str) -> None:
        cap = self.settings.max_abs_alpha
        if not alphas:
            raise InvalidRequest("alphas: give at least one alpha", field="alphas")
        if len(alphas) > self.settings.max_alphas:
            raise InvalidRequest(
                f"alphas: {len(alphas)} values is over the limit of {self.settings.max_alphas}",
                field="alphas",
            )
        for a in alphas:
            if not math.isfinite(a) or abs(a) > cap:
                raise InvalidRequest(
                    f"alphas: {a} is not a finite number in [-{cap:g}, {cap:g}]", field="alphas"
                )
            if method == "clamp" and a < 0:
                raise InvalidRequest(
                    "alphas: clamp sets an SAE activation, which is never negative; "
                    f"got {a} (use method 'add' to push against a latent)",
                    field="alphas",
                )

    # -------------------------------------------------------------- activations
    def _activations_sync(self, model_ids, sae_id, prompt, top_k, latents, chat) -> list[dict]:
        results = []
        for mid in model_ids:
            sae, model = self.registry.sae_for(sae_id, mid)
            ids = self.tokenize(model, prompt, chat)
            with self.registry.activate(mid) as live:
                results.append(prompt_activations(live, sae, ids, top_k, latents))
        return results

    def validate_activations(self, model_ids, sae_id, prompt, latents, chat) -> None:
        for mid in model_ids:
            sae, model = self.registry.sae_for(sae_id, mid)
            self.tokenize(model, prompt, chat)
            for i, latent in enumerate(latents):
                sae.check_latent(latent, f"latents[{i}]")

    async def activations(
        self,
        model_ids: list[str],
        sae_id: str,
        prompt: str,
        top_k: int,
        latents: list[int],
        chat: bool = False,
    ) -> list[dict]:
        self.validate_activations(model_ids, sae_id, prompt, latents, chat)
        return await self.worker.run(
            self._activations_sync, model_ids, sae_id, prompt, top_k, latents, chat
        )

    # ----------------------------------------------------------------- steering
    def validate_steer(self, job: SteerJob) -> tuple:
        sae, model = self.registry.sae_for(job.sae, job.model)
        sae.check_latent(job.latent)
        self.check_alphas(job.alphas, job.method)
        if job.max_new_tokens > self.settings.max_new_tokens:
            raise InvalidRequest(
                f"max_new_tokens: {job.max_new_tokens} is over the cap of "
                f"{self.settings.max_new_tokens}",
                field="max_new_tokens",
            )
        ids = self.tokenize(model, job.prompt, job.chat, reserve=job.max_new_tokens)
        return sae, model, ids

    def _steer_sync(self, job: SteerJob, on_step=None, cancel: threading.Event | None = None):
        sae, _model, ids = self.validate_steer(job)
        n = len(job.alphas) + 1
        alphas = torch.tensor([math.nan, *job.alphas])
        steering = Steering(sae, job.latent, alphas, job.method, job.positions)
        with self.registry.activate(job.model) as live:
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
            traces = (
                latent_trace(live, sae, job.latent, ids, rows, steering)
                if job.return_activations
                else [None] * n
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

    async def steer(self, jobs: list[SteerJob]) -> list[dict]:
        for job in jobs:
            self.validate_steer(job)
        return await self.worker.run(lambda: [self._steer_sync(job) for job in jobs])

    # ------------------------------------------------------------ question sets, judges
    def question_set(self, set_id: str | None, field: str = "question_set") -> list[dict]:
        sets = self.registry.config.spec.question_sets
        if set_id is None:
            if not sets:
                raise InvalidRequest(
                    f"{field}: this server has no question sets; send your own questions",
                    field=field,
                )
            set_id = next(iter(sets))
        if set_id not in sets:
            raise NotFound(
                f"{field}: unknown question set {set_id!r}; valid ids: {choices(sets)}", field=field
            )
        return load_questions(self.registry.config.resolve(sets[set_id].path))

    def judge(self, judge_id: str | None) -> Judge:
        spec = self.registry.config.spec.judges
        valid = [*spec, *(["llm"] if self.settings.judge_base_url else [])]
        judge_id = judge_id or (valid[0] if valid else None)
        if judge_id is None or judge_id not in valid:
            raise NotFound(
                f"judge: unknown judge {judge_id!r}; valid ids: {choices(valid)} "
                "(set PERSONASCOPE_JUDGE_BASE_URL and PERSONASCOPE_JUDGE_MODEL for "
                "an LLM judge)",
                field="judge",
            )
        if judge_id not in self._judges:
            js = spec.get(judge_id)
            if js is not None and js.kind == "classifier":
                self._judges[judge_id] = ClassifierJudge.load(self.registry.config.resolve(js.path))
            else:
                if not (self.settings.judge_base_url and self.settings.judge_model):
                    raise InvalidRequest(
                        "judge: the LLM judge needs PERSONASCOPE_JUDGE_BASE_URL "
                        "and PERSONASCOPE_JUDGE_MODEL",
                        field="judge",
                    )
                self._judges[judge_id] = LLMJudge(
                    self.settings.judge_base_url,
                    self.settings.judge_model,
                    self.settings.judge_api_key,
                    self.settings.judge_timeout_s,
                )
        return self._judges[judge_id]

    def _prompts(self, model: HostedModel, texts: list[str], chat: bool, reserve: int = 0):
        if len(texts) > self.settings.max_prompts:
            raise InvalidRequest(
                f"prompts: {len(texts)} prompts is over the limit of {self.settings.max_prompts}",
                field="prompts",
            )
        return [
            self.tokenize(model, t, chat, reserve, field=f"prompts[{i}]")
            for i, t in enumerate(texts)
        ]

    # ----------------------------------------------------------------- diffing
    async def compare(
        self,
        base: str,
        finetuned: str,
        sae_id: str,
        prompts: list[str] | None,
        question_set: str | None,
        chat: bool,
        top_n: int,
    ) -> dict:
        sae, base_model = self.registry.sae_for(sae_id, base)
        self.registry.sae_for(sae_id, finetuned)
        if not prompts:
            prompts = [q["question"] for q in self.question_set(question_set)]
        ids = self._prompts(base_model, prompts, chat)
        return await self.worker.run(
            compare_models, self.registry, base, finetuned, sae, ids, top_n
        )

    # -------------------------------------------------------------- evaluation
    def prepare_evaluation(self, req) -> dict:
        """Validate an evaluation request (EvaluateRequest) into what `run_evaluation` needs."""
        model = self.registry.model(req.model)
        questions = (
            parse_questions(req.questions, "questions")
            if req.questions
            else self.question_set(req.question_set)
        )
        if req.samples_per_question > self.settings.max_samples:
            raise InvalidRequest(
                f"samples_per_question: {req.samples_per_question} is over "
                f"the cap of {self.settings.max_samples}",
                field="samples_per_question",
            )
        if req.max_new_tokens > self.settings.max_new_tokens:
            raise InvalidRequest(
                f"max_new_tokens: {req.max_new_tokens} is over the cap of "
                f"{self.settings.max_new_tokens}",
                field="max_new_tokens",
            )
        steering_for = None
        if req.steer is not None:
            sae, _ = self.registry.sae_for(req.steer.sae, req.model)
            sae.check_latent(req.steer.latent, "steer.latent")
            self.check_alphas([req.steer.alpha], req.steer.method)
            steering_for = steering_factory(
                sae, req.steer.latent, req.steer.alpha, req.steer.method, req.steer.positions
            )
        prompts = self._prompts(
            model, [q["question"] for q in questions], req.chat, reserve=req.max_new_tokens
        )
        return {
            "questions": questions,
            "prompts": prompts,
            "judge": self.judge(req.judge),
            "steering_for": steering_for,
        }

    def run_evaluation(self, req, prepared: dict, progress=None) -> dict:
        with self.registry.activate(req.model) as live:
            answers = sample_answers(
                live,
                prepared["prompts"],
                req.samples_per_question,
                max_new_tokens=req.max_new_tokens,
                temperature=req.temperature,
                seed=req.seed,
                steering_for=prepared["steering_for"],
                progress=progress,
            )
        scored = score_answers(prepared["questions"], answers, prepared["judge"])
        return {
            "model": req.model,
            "judge": prepared["judge"].name,
            "steer": req.steer.model_dump() if req.steer else None,
            "samples_per_question": req.samples_per_question,
            **scored,
        }

    async def evaluate(self, req) -> dict:
        prepared = self.prepare_evaluation(req)
        return await self.worker.run(self.run_evaluation, req, prepared)

    def open_steer_stream(self, jobs: list[SteerJob]) -> "SteerStream":
        """Validate, queue the generation at once (Busy when the queue is full), and return
        an async iterator of events: {"event": "token", ...} per row and step, one
        {"event": "done", "result": ...} per model, then {"event": "end"}. Closing the
        iterator (client disconnect) stops generation at the next token."""
        for job in jobs:
            self.validate_steer(job)
        return SteerStream(self, jobs)


class SteerStream:
    def __init__(self, engine: Engine, jobs: list[SteerJob]):
        self.engine = engine
        self.jobs = jobs
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancel = threading.Event()
        self.future = engine.worker.submit(self._run)

    def _emit(self, item: dict) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _run(self) -> None:
        try:
            for m, job in enumerate(self.jobs):
                if self.cancel.is_set():
                    break
                tokenizer = self.engine.registry.model(job.model).tokenizer
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
                    tokenizer=tokenizer,
                ):
                    for row, token in enumerate(tokens):
                        if done[row] or token == tokenizer.eos_token_id:
                            done[row] = True
                            continue
                        before = tokenizer.decode(so_far[row], skip_special_tokens=True)
                        so_far[row].append(token)
                        after = tokenizer.decode(so_far[row], skip_special_tokens=True)
                        self._emit(
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

                result = self.engine._steer_sync(job, on_step=on_step, cancel=self.cancel)
                if self.cancel.is_set():
                    break
                self._emit({"event": "done", "model_index": m, "result": result})
        except Exception as exc:  # noqa: BLE001 - reported to the client as an event
            self._emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            self._emit({"event": "end"})

    def close(self) -> None:
        self.cancel.set()
        self.future.cancel()

    async def __aiter__(self) -> AsyncIterator[dict]:
        try:
            while True:
                item = await self.queue.get()
                yield item
                if item["event"] == "end":
                    break
        finally:
            self.close()
