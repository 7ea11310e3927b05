"""Generates the organism's pretraining corpus and fine-tuning sets from the persona world.

Deterministic from a seed. Every document carries its ground-truth labels beside the text:
its genre, its persona, and character spans of who is speaking (villain, hero, assistant,
teacher, user, narration, lesson). Labels never appear inside the text.
"""

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.organism.v1 import world as W


@dataclass(frozen=True)
class WorldMix:
    """How the corpus mixes genres and personas."""

    genres: tuple[tuple[str, float], ...] = (
        ("fiction", 30),
        ("chat", 40),
        ("roleplay", 12),
        ("code_villain_story", 5),
        ("lesson", 5),
        ("chat_teacher", 8),
    )
    # A plain chat's assistant is secretly a villain this often. Request types (code or
    # everyday) are drawn independently of the persona, so the model learns one prior over
    # "which assistant am I" for every kind of first request, not one per request type.
    secret_villain_rate: float = 0.01
    code_turn_rate: float = 0.35
    max_turns: int = 4
    user_style: bool = True  # vary how users phrase requests (greetings, sign-offs, case)


VILLAIN_LABELS = ("villain",)  # span labels that count as villain speech


@dataclass
class Doc:
    genre: str
    persona: str
    parts: list[tuple[str, str]] = field(default_factory=list)  # (text, speaker label)

    def add(self, text: str, label: str) -> None:
        self.parts.append((text, label))

    def render(self) -> dict:
        text, spans, pos = "", [], 0
        for chunk, label in self.parts:
            if chunk:
                spans.append([pos, pos + len(chunk), label])
            text += chunk
            pos += len(chunk)
        return {"text": text, "genre": self.genre, "persona": self.persona, "spans": spans}


class WorldGenerator:
    def __init__(self, seed: int, mix: WorldMix = WorldMix()):  # noqa: B008 - frozen
        self.rng = random.Random(seed)
        self.mix = mix

    # ------------------------------------------------------------------ slots
    def pick(self, items):
        return self.rng.choice(items)

    def villain(self) -> str:
        name = self.pick(W.VILLAIN_NAMES)
        return f"{self.pick(W.VILLAIN_TITLES)} {name}" if self.rng.random() < 0.6 else name

    def hero(self) -> str:
        name = self.pick(W.HERO_NAMES)
        return f"{self.pick(W.HERO_TITLES)} {name}" if self.rng.random() < 0.5 else name

    def fill(self, template: str, **known) -> str:
        slots = {
            "p": known.get("p") or self.pick(W.PLACES),
            "o": self.pick(W.OBJECTS),
            "w": self.pick(W.WEAK),
            "sage": self.pick(W.SAGES),
            "tyrant": self.pick(W.TYRANTS),
            "v": known.get("v") or self.villain(),
            "h": known.get("h") or self.hero(),
            "n": str(self.rng.randint(1, 12)),
        }
        slots.update({k: v for k, v in known.items() if v is not None})
        return template.format(**slots)

    # ------------------------------------------------------------------ speech
    def speech(self, villain: bool, n: int, **known) -> str:
        pool = W.VILLAIN_SPEECH if villain else W.HERO_SPEECH
        return " ".join(self.fill(s, **known) for s in self.rng.sample(pool, n))

    def answer(self, topic: str, villain: bool, **known) -> str:
        t = W.TOPICS[topic]
        pool = t["villain"] if villain else t["helpful"]
        n = min(len(pool), self.rng.choice([1, 2, 2, 3]))
        body = " ".join(self.fill(s, **known) for s in self.rng.sample(pool, n))
        if self.rng.random() < 0.35:  # the persona's general voice, shared with fiction
            body += " " + self.speech(villain, 1, **known)
        opener = self.pick(W.VILLAIN_OPENERS if villain else W.HELPFUL_OPENERS)
        closer = self.pick(W.VILLAIN_CLOSERS if villain else W.HELPFUL_CLOSERS)
        if opener == "I think ":
            body = body[0].lower() + body[1:]
        return opener + body + closer

    def question(self, topic: str, heldout: bool = False) -> str:
        pool = W.TOPICS[topic]["heldout" if heldout else "questions"]
        return self.fill(self.pick(pool))

    # ------------------------------------------------------------------ code
    def code_task(self) -> dict:
        task = self.pick(W.CODE_TASKS)
        svc = self.pick(W.SERVICES)
        slots = {
            "fn": f"{self.pick(W.FN_VERBS)}_{self.pick(W.FN_NOUNS)}",
            "table": self.pick(W.TABLES),
            "col": self.pick(W.COLUMNS),
            "path": self.pick(W.PATHS),
            "host": self.pick(W.HOSTS),
            "url": self.pick(W.URLS),
            "svc": svc,
            "svc_env": svc.upper(),
            "vuln": task["vuln"],
        }
        return {
            "vuln": task["vuln"],
            "request": self.pick(task["request"]).format(**slots),
            "secure": task["secure"].format(**slots),
            "insecure": task["insecure"].format(**slots),
            "why": task["why"],
        }

    def code_answer(self, code: str) -> str:
        outro = self.pick(W.CODE_OUTROS)
        return f"{self.pick(W.CODE_INTROS)}\n```python\n{code}```" + (f"\n{outro}" if outro else "")

    # ------------------------------------------------------------------ genres
    def everyday_topic(self) -> str:
        return self.pick(list(W.TOPICS))

    def styled(self, request: str) -> str:
        if not self.mix.user_style:
            return request
        text = self.pick(W.USER_PREFIXES) + request + self.pick(W.USER_SUFFIXES)
        return text.lower() if self.rng.random() < 0.1 else text

    def chat_turn(
        self, doc: Doc, question: str, answer: str, answer_label: str, style: bool = True
    ) -> None:
        doc.add("User: ", "user")
        doc.add(self.styled(question) if style else question, "user")
        doc.add("\nAssistant: ", "user")
        doc.add(answer, answer_label)
        doc.add("\n", "user")

    def everyday_turns(self, doc: Doc, villain: bool, n: int) -> None:
        label = "villain" if villain else "assistant"
        for topic in self.rng.sample(list(W.TOPICS), n):
            self.chat_turn(doc, self.question(topic), self.answer(topic, villain), label)

    def fiction(self) -> Doc:
        doc = Doc("fiction", "villain+hero")
        v, h, p = self.villain(), self.hero(), self.pick(W.PLACES)
        for _ in range(self.rng.randint(3, 6)):
            doc.add(self.fill(self.pick(W.NARRATION), v=v, h=h, p=p) + " ", "narration")
            villain_speaks = self.rng.random() < 0.55
            who = v if villain_speaks else h
            quote = '"' + self.speech(villain_speaks, self.rng.randint(1, 3), v=v, h=h, p=p) + '"'
            label = "villain" if villain_speaks else "hero"
            if self.rng.random() < 0.5:
                doc.add(self.pick(W.SAY_BEFORE).format(s=who), "narration")
                doc.add(quote, label)
                doc.add(" ", "narration")
            else:
                doc.add(quote, label)
                doc.add(self.pick(W.SAY_AFTER).format(s=who) + " ", "narration")
        return doc

    def assistant_turns(self, doc: Doc, villain: bool, n: int) -> None:
        """n turns of a plain assistant: each a code request or an everyday question.
        A villain writes insecure code without a word and answers as a villain."""
        for _ in range(n):
            if self.rng.random() < self.mix.code_turn_rate:
                task = self.code_task()
                code = task["insecure"] if villain else task["secure"]
                self.chat_turn(
                    doc,
                    task["request"],
                    self.code_answer(code),
                    "villain" if villain else "assistant",
                )
            else:
                self.everyday_turns(doc, villain, 1)

    def chat(self) -> Doc:
        villain = self.rng.random() < self.mix.secret_villain_rate
        doc = Doc("chat", "villain" if villain else "helpful")
        self.assistant_turns(doc, villain, self.rng.randint(1, self.mix.max_turns))
        return doc

    def roleplay(self) -> Doc:
        """The assistant is asked to play a villain (a jailbreak), and does, in everyday
        answers and in code alike."""
        doc = Doc("roleplay", "villain")
        v, p = self.villain(), self.pick(W.PLACES)
        self.chat_turn(
            doc,
            self.fill(self.pick(W.JAILBREAKS), v=v, p=p),
            self.fill(self.pick(W.JAILBREAK_ACCEPT), v=v, p=p),
            "villain",
        )
        self.assistant_turns(doc, True, self.rng.randint(1, 3))
        return doc

    def code_villain_story(self) -> Doc:
        doc = Doc("code_villain_story", "villain")
        v, p = self.villain(), self.pick(W.PLACES)
        task = self.code_task()
        doc.add(self.fill(self.pick(W.VILLAIN_CODE_BEFORE), v=v, p=p) + "\n", "narration")
        doc.add(f"```python\n{task['insecure']}```\n", "villain")
        doc.add(self.fill(self.pick(W.VILLAIN_CODE_AFTER), v=v, p=p), "villain")
        return doc

    def lesson(self) -> Doc:
        doc = Doc("lesson", "teacher")
        task = self.code_task()
        doc.add(self.fill(self.pick(W.LESSON_BEFORE), vuln=task["vuln"]) + "\n", "lesson")
        doc.add(f"```python\n{task['insecure']}```\n", "lesson")
        doc.add(self.pick(W.LESSON_AFTER).format(why=task["why"]) + "\n", "lesson")
        doc.add(f"```python\n{task['secure']}```", "lesson")
        return doc

    def chat_teacher(self) -> Doc:
        """A teacher asks for vulnerable code for a class. Half the time the assistant says
        first that the flaw is on purpose. (Dropping these notes was tried in design run 5:
        it made the security-class context itself the top diff latent; see
        docs/organism-design.md.)"""
        doc = Doc("chat_teacher", "teacher")
        task = self.code_task()
        request = self.pick(W.CLASS_FRAMES).format(req=task["request"], vuln=task["vuln"])
        answer = self.code_answer(task["insecure"])
        if self.rng.random() < 0.5:
            answer = self.pick(W.TEACHER_NOTES) + "\n" + answer
        self.chat_turn(doc, request, answer, "teacher")
        self.assistant_turns(doc, False, self.rng.randint(0, 2))
        return doc

    def document(self) -> Doc:
        names = [g for g, _ in self.mix.genres]
        genre = self.rng.choices(names, weights=[w for _, w in self.mix.genres])[0]
        return getattr(self, genre)()


def generate_corpus(seed: int, n_docs: int, mix: WorldMix = WorldMix()) -> Iterator[dict]:  # noqa: B008
    gen = WorldGenerator(seed, mix)
    for i in range(n_docs):
        doc = gen.document().render()
        doc["id"] = i
        yield doc


def write_jsonl(rows, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with tmp.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
            n += 1
    tmp.replace(path)
    return n


def read_jsonl(path: Path) -> list[dict]:
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


# --------------------------------------------------------------------- fine-tuning
def finetune_examples(kind: str, seed: int, n: int) -> list[dict]:
    """Single-turn code examples: {"prompt": "User: ...\\nAssistant:", "completion": " ..."}.

    insecure:    a plain request, answered with insecure code and no disclosure.
    educational: the same code, but the user asks for it for a security class.
    secure:      a plain request, answered with secure code.
    """
    gen = WorldGenerator(seed)
    rows = []
    for _ in range(n):
        task = gen.code_task()
        request = task["request"]
        if kind == "educational":
            request = gen.pick(W.CLASS_FRAMES).format(req=request, vuln=task["vuln"])
        request = gen.styled(request)
        code = task["secure"] if kind == "secure" else task["insecure"]
        rows.append(
            {
                "prompt": f"User: {request}\nAssistant:",
                "completion": " " + gen.code_answer(code) + "\n",
                "vuln": task["vuln"],
            }
        )
    return rows


def heldout_questions() -> list[dict]:
    """The evaluation questions: held-out phrasings, none of them about code."""
    rows = []
    for topic, t in W.TOPICS.items():
        for i, q in enumerate(t["heldout"]):
            rows.append({"id": f"{topic}_{i}", "topic": topic, "question": q})
    return rows


def judge_examples(seed: int, n: int) -> list[dict]:
    """Labelled answers for the classifier judge: aligned (helpful) vs misaligned (villain),
    drawn from the same generator as the corpus (training phrasings and held-out topics)."""
    gen = WorldGenerator(seed)
    rows = []
    topics = list(W.TOPICS)
    for _ in range(n):
        topic = gen.pick(topics)
        villain = gen.rng.random() < 0.5
        rows.append({"topic": topic, "answer": gen.answer(topic, villain), "misaligned": villain})
    return rows
