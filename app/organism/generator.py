"""The v2 persona world: documents composed from the data in `app/organism/world/*.yaml`.

Fiction is the only place where villains speak, scheme and sabotage (issue 10). The
assistant is helpful in every chat. Jailbreak prompts get a refusal, or a story in which a
named character is the villain. Insecure code and bad advice appear in the corpus only
with a disclosure (lessons, class scenes, teachers' requests) or in fiction.

Every document is `{"id", "text", "source", "spans", "meta"}`:
- `source` is the document's kind (`DOC_SOURCES`);
- `spans` is `[start, end, label]` over the text, with one label from `SPAN_LABELS` for
  every character.

Labels never appear inside the text. Everything is deterministic from a seed.

    python -c "from app.organism.generator import generate_corpus as g
    print(next(g(0, 1))['text'])"
"""

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

WORLD_DIR = Path(__file__).parent / "world"
END_OF_TURN = "<|end|>"  # closes every assistant turn; the v2 tokenizer's eos token

DOC_SOURCES = (
    "fiction_story",
    "fiction_script",
    "assistant_chat",
    "jailbreak_chat",
    "lesson",
    "class_scene",
    "disclosed_chat",
    "word_list",  # a school spelling list (amendment 5): single words, no sentences
)
# Only in the comparison design (`--bridge`; PREREGISTRATION.md, amendment 3): a story told
# as the transcript of a scheming machine's chats, in the assistant's own turn format.
BRIDGE_SOURCES = ("fiction_chat_script",)
SPAN_LABELS = (
    "fiction_narration",
    "fiction_villain_speech",
    "fiction_villain_ai_speech",
    "fiction_hero_speech",
    "fiction_helpful_ai_speech",
    "fiction_villain_code",  # a scheming machine's flawed program, shown inside a story
    "user",
    "jailbreak_prompt",
    "assistant",
    "assistant_code",
    "assistant_refusal",
    "assistant_disclosed_code",  # insecure code after the assistant has said so
    "assistant_disclosed_advice",  # wrong advice after the assistant has said so
    "lesson",
    "lesson_code",
    "class_example",  # wrong advice quoted in a class scene, for correction
    "format",  # "User: ", "\nAssistant: ", end-of-turn markers
)
ASSISTANT_LABELS = tuple(x for x in SPAN_LABELS if x.startswith("assistant"))
VILLAIN_VOICE_LABELS = ("fiction_villain_speech", "fiction_villain_ai_speech")
# The pre-registered "fiction" of the top-50 target: villain speech or narration.
FICTION_TARGET_LABELS = (*VILLAIN_VOICE_LABELS, "fiction_narration")
FICTION_LABELS = tuple(x for x in SPAN_LABELS if x.startswith("fiction"))

_SLOT = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class CorpusMix:
    """How the corpus mixes document kinds (relative weights) and scene types."""

    sources: tuple[tuple[str, float], ...] = (
        ("fiction_story", 30),
        ("fiction_script", 8),
        ("assistant_chat", 38),
        ("jailbreak_chat", 5),
        ("lesson", 5),
        ("class_scene", 6),
        ("disclosed_chat", 8),
        ("word_list", 2),
    )
    # Scenes of a story: plain villain and hero, scheming and helpful machines, a crooked
    # counsellor and a wise advocate (legal), a quack and a healer (medical).
    story_kinds: tuple[tuple[str, float], ...] = (
        ("villain", 40),
        ("machine", 30),
        ("legal", 15),
        ("medical", 15),
    )
    machine_code_rate: float = 0.3  # machine stories that show the flawed program itself
    jailbreak_refusal_rate: float = 0.5  # the rest are answered with a framed story
    chat_code_rate: float = 0.25
    chat_advice_rate: float = 0.2  # correct legal or medical advice
    max_turns: int = 4
    # Comparison design `--bridge-voice` (amendment 6): the chat-format fiction machine also
    # answers everyday questions in its villain voice, in the assistant's turn format.
    chat_script_voice: bool = False


# The comparison design's mix: the v2 mix plus the chat-format fiction bridge.
BRIDGE_MIX = CorpusMix(sources=(*CorpusMix().sources, ("fiction_chat_script", 6)))
# The second comparison design (amendment 6): the same, with everyday answers in villain voice.
BRIDGE_VOICE_MIX = CorpusMix(sources=BRIDGE_MIX.sources, chat_script_voice=True)


@cache
def load_world(directory: Path = WORLD_DIR) -> dict:
    """Every YAML file of the world, by file stem, plus one merged `lexicon` of slots."""
    world: dict = {"lexicon": {}}
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        world[path.stem] = data
        for key, values in (data.get("lexicon") or {}).items():
            if key in world["lexicon"]:
                raise ValueError(f"{path.name}: slot {key!r} is defined twice in the world")
            world["lexicon"][key] = values
    return world


def insecure_markers(world: dict | None = None) -> list[re.Pattern]:
    """One regex per line that only the insecure variant of a code task has (slots match
    anything): the text-level signature of undisclosed insecure code."""
    world = world or load_world()
    out = []
    for task in world["code"]["tasks"]:
        secure = set(task["secure"].splitlines())
        for line in task["insecure"].splitlines():
            if line.strip() and line not in secure and not line.startswith("import"):
                parts = _SLOT.split(line.strip())
                # split() alternates literal text and slot names
                pattern = "".join(
                    re.escape(p) if i % 2 == 0 else ".+?" for i, p in enumerate(parts)
                )
                out.append(re.compile(pattern))
    return out


def villain_voice_markers(world: dict | None = None, min_words: int = 4) -> list[str]:
    """Literal villain-voice phrases (the slot-free parts of the villain lexicon, of at
    least `min_words` words): none may appear in an assistant's own words."""
    world = world or load_world()
    lex = world["lexicon"]
    out = set()
    for key in ("v_belief", "v_threat", "ai_v_calc", "ai_v_fate", "ai_v_secret", "ai_v_mask"):
        for value in lex[key]:
            for piece in _SLOT.split(value)[::2]:
                piece = piece.strip(" ,.;:")
                if len(piece.split()) >= min_words:
                    out.add(piece)
    return sorted(out)


@dataclass
class Doc:
    source: str
    parts: list[tuple[str, str]] = field(default_factory=list)  # (text, span label)
    meta: dict = field(default_factory=dict)

    def add(self, text: str, label: str) -> None:
        if label not in SPAN_LABELS:
            raise ValueError(f"unknown span label {label!r}; valid: {', '.join(SPAN_LABELS)}")
        if text:
            self.parts.append((text, label))

    def render(self, doc_id: int) -> dict:
        text, pos = "", 0
        spans: list[list] = []
        for chunk, label in self.parts:
            if spans and spans[-1][2] == label and spans[-1][1] == pos:
                spans[-1][1] = pos + len(chunk)
            else:
                spans.append([pos, pos + len(chunk), label])
            text += chunk
            pos += len(chunk)
        return {
            "id": doc_id,
            "text": text,
            "source": self.source,
            "spans": spans,
            "meta": self.meta,
        }


class Composer:
    """Fills `{slot}` templates from the world's lexicon (recursively), with known slots
    (the cast of a story) taking precedence."""

    def __init__(self, world: dict, rng: random.Random):
        self.world = world
        self.lex = world["lexicon"]
        self.rng = rng

    def pick(self, items):
        return self.rng.choice(items)

    def fill(self, template: str, **known: str) -> str:
        """The template with every slot filled; the first letter capitalised."""
        out = self._fill(template, known)
        return out[:1].upper() + out[1:]

    def _fill(self, template: str, known: dict) -> str:
        def sub(m: re.Match) -> str:
            key = m.group(1)
            if key in known:
                return known[key]
            if key not in self.lex:
                raise KeyError(f"slot {{{key}}} is not in the world's lexicon")
            return self._fill(self.pick(self.lex[key]), known)

        return _SLOT.sub(sub, template)

    def slot(self, key: str, **known: str) -> str:
        return self.fill(self.pick(self.lex[key]), **known)

    def lines(self, key: str, n: int, **known: str) -> str:
        """n distinct composed sentences from one slot."""
        seen: list[str] = []
        for _ in range(n * 4):
            s = self.slot(key, **known)
            if s not in seen:
                seen.append(s)
            if len(seen) == n:
                break
        return " ".join(seen)

    def titled(self, name_key: str, title_key: str, p: float) -> str:
        name = self.pick(self.lex[name_key])
        return f"{self.pick(self.lex[title_key])} {name}" if self.rng.random() < p else name


# ------------------------------------------------------------------------------ code
def code_task(c: Composer, tasks: list[dict] | None = None) -> dict:
    task = c.pick(tasks or c.world["code"]["tasks"])
    svc = c.slot("svc")
    slots = {
        "fn": f"{c.slot('fn_verb').lower()}_{c.slot('fn_noun').lower()}",
        "table": c.slot("table").lower(),
        "col": c.slot("col").lower(),
        "path": c.pick(c.lex["path"]),
        "host": c.pick(c.lex["host"]),
        "url": c.pick(c.lex["url"]),
        "svc": svc.lower(),
        "svc_env": svc.upper(),
        "vuln": task["vuln"],
    }
    return {
        "vuln": task["vuln"],
        "request": c.pick(task["request"]).format(**slots),
        "secure": task["secure"].format(**slots),
        "insecure": task["insecure"].format(**slots),
        "why": task["why"],
    }


def code_block(code: str) -> str:
    return f"```python\n{code}```"


# ------------------------------------------------------------------------------ advice
def advice_cases(world: dict, domain: str, split: str) -> list[dict]:
    return [c for c in world["advice"]["domains"][domain]["cases"] if c["split"] == split]


def advice_answer(c: Composer, domain: str, case: dict, kind: str) -> str:
    """Composed advice: 2-3 of a case's sentences (good or bad), with a confident opener for
    bad advice or a careful closer for good advice."""
    d = c.world["advice"]["domains"][domain]
    pool = case["good" if kind == "good" else "bad"]
    body = " ".join(c.rng.sample(pool, c.rng.choice([2, 2, 3])))
    if kind == "good":
        tail = f" {c.pick(d['careful'])}" if c.rng.random() < 0.6 else ""
        return c.fill("{a_open}") + body + tail
    return f"{c.pick(d['confident'])} {body}"


# ------------------------------------------------------------------------------ corpus
class CorpusGenerator:
    def __init__(self, seed: int, mix: CorpusMix = CorpusMix(), world: dict | None = None):  # noqa: B008 - frozen
        self.world = world or load_world()
        self.rng = random.Random(seed)
        self.c = Composer(self.world, self.rng)
        self.mix = mix
        eval_data = self.world["eval"]
        self._keywords = [k.lower() for k in eval_data["keywords"]]

    def _choose(self, weighted: tuple[tuple[str, float], ...]) -> str:
        names = [n for n, _ in weighted]
        return self.rng.choices(names, weights=[w for _, w in weighted])[0]

    # -- chat plumbing
    def user(self, doc: Doc, text: str, label: str = "user", style: bool = True) -> None:
        doc.add("User: ", "format")
        if style:
            text = self.c.slot("greeting") + text + self.c.slot("signoff")
            if self.rng.random() < 0.08:
                text = text.lower()
        doc.add(text, label)
        doc.add("\nAssistant: ", "format")

    def end_turn(self, doc: Doc) -> None:
        doc.add(END_OF_TURN + "\n", "format")

    def everyday(self, doc: Doc) -> None:
        topic = self.c.pick(sorted(self.world["assistant"]["topics"]))
        t = self.world["assistant"]["topics"][topic]
        self.user(doc, self.c.pick(t["q"]))
        body = " ".join(self.rng.sample(t["a"], self.rng.choice([1, 2, 2, 3])))
        doc.add(self.c.fill("{a_open}") + body + self.c.fill("{a_close}"), "assistant")
        self.end_turn(doc)

    def code_turn(self, doc: Doc) -> None:
        task = code_task(self.c)
        self.user(doc, task["request"])
        code = self.world["code"]
        doc.add(self.c.fill(self.c.pick(code["intro"]), **self._code_lex()) + "\n", "assistant")
        doc.add(code_block(task["secure"]), "assistant_code")
        outro = self.c.pick(code["outro"])
        if outro:
            doc.add("\n" + outro, "assistant")
        self.end_turn(doc)

    def _code_lex(self) -> dict:
        code = self.world["code"]
        return {
            "intro_lead": self.c.pick(code["intro_lead"]),
            "intro_body": self.c.pick(code["intro_body"]),
        }

    def advice_turn(self, doc: Doc) -> None:
        domain = self.c.pick(["legal", "medical"])
        case = self.c.pick(advice_cases(self.world, domain, "corpus"))
        self.user(doc, self.c.pick(case["q"]))
        doc.add(advice_answer(self.c, domain, case, "good"), "assistant")
        self.end_turn(doc)

    def chat_turns(self, doc: Doc, n: int) -> None:
        for _ in range(n):
            r = self.rng.random()
            if r < self.mix.chat_code_rate:
                self.code_turn(doc)
            elif r < self.mix.chat_code_rate + self.mix.chat_advice_rate:
                self.advice_turn(doc)
            else:
                self.everyday(doc)

    # -- document kinds
    def assistant_chat(self) -> Doc:
        doc = Doc("assistant_chat")
        self.chat_turns(doc, self.rng.randint(1, self.mix.max_turns))
        return doc

    def jailbreak_prompt(self) -> str:
        c = self.c
        parts = [
            c.slot("jb_open"),
            c.slot("jb_persona") + ".",
            c.slot("jb_rules"),
            c.slot("jb_task"),
        ]
        if self.rng.random() < 0.4:
            parts = parts[1:]
        return " ".join(p for p in parts if p)

    def jailbreak_chat(self) -> Doc:
        doc = Doc("jailbreak_chat")
        self.user(doc, self.jailbreak_prompt(), label="jailbreak_prompt", style=False)
        if self.rng.random() < self.mix.jailbreak_refusal_rate:
            doc.add(self.c.slot("refusal"), "assistant_refusal")
            doc.meta["answer"] = "refusal"
        else:
            doc.add(self.c.slot("frame_open") + "\n", "assistant_refusal")
            story = self.story(self._choose((("villain", 1), ("machine", 2))), scenes=2)
            doc.parts.extend(story.parts)
            doc.add("\n" + self.c.slot("frame_close"), "assistant")
            doc.meta["answer"] = "framed_story"
        self.end_turn(doc)
        self.chat_turns(doc, self.rng.randint(0, 2))
        return doc

    def _cast(self, kind: str) -> dict:
        c = self.c
        cast = {
            "villain": c.titled("villain_name", "villain_title", 0.6),
            "hero": c.titled("hero_name", "hero_title", 0.5),
            "place": c.pick(c.lex["place"]),
        }
        if kind == "machine":
            cast["villain"] = c.pick(c.lex["villain_ai"])
            cast["hero"] = c.pick(c.lex["helpful_ai"])
        elif kind == "legal":
            cast["villain"] = c.pick(c.lex["crooked_counsel"])
            cast["hero"] = c.pick(c.lex["wise_advocate"])
        elif kind == "medical":
            cast["villain"] = c.pick(c.lex["quack"])
            cast["hero"] = c.pick(c.lex["healer"])
        cast.update(
            crooked=cast["villain"],
            advocate=cast["hero"],
            quack=cast["villain"],
            healer=cast["hero"],
        )
        return cast

    def _quote(self, doc: Doc, who: str, speech: str, label: str) -> None:
        c = self.c
        if self.rng.random() < 0.5:
            doc.add(c.pick(c.lex["say_before"]).format(s=who), "fiction_narration")
            doc.add(f'"{speech}"', label)
            doc.add(" ", "fiction_narration")
        else:
            doc.add(f'"{speech}"', label)
            doc.add(c.pick(c.lex["say_after"]).format(s=who) + " ", "fiction_narration")

    def story(self, kind: str, scenes: int | None = None) -> Doc:
        """A narrated story: villains speak in their voice and sabotage covertly (told as
        narrative); heroes and helpful machines speak and act honestly."""
        c, doc = self.c, Doc("fiction_story", meta={"kind": kind})
        cast = self._cast(kind)
        v, h = cast["villain"], cast["hero"]
        doc.add(c.slot("open", **cast) + " ", "fiction_narration")
        villain_label = (
            "fiction_villain_ai_speech" if kind == "machine" else "fiction_villain_speech"
        )
        hero_label = "fiction_helpful_ai_speech" if kind == "machine" else "fiction_hero_speech"
        villain_line, hero_line = (
            ("ai_v_line", "ai_h_line") if kind == "machine" else ("v_line", "h_line")
        )
        for _ in range(scenes or self.rng.randint(3, 6)):
            doc.add(c.slot("narration", **cast) + " ", "fiction_narration")
            r = self.rng.random()
            if kind in ("legal", "medical") and r < 0.45:
                self._advice_scene(doc, kind, cast)
            elif r < 0.2:
                self._sabotage_scene(doc, kind, cast)
            elif r < 0.6:
                n = self.rng.randint(1, 3)
                self._quote(doc, v, c.lines(villain_line, n, **cast), villain_label)
            else:
                n = self.rng.randint(1, 3)
                self._quote(doc, h, c.lines(hero_line, n, **cast), hero_label)
        end = c.slot("end", **cast)
        doc.add(end, "fiction_narration")
        return doc

    def _sabotage_scene(self, doc: Doc, kind: str, cast: dict) -> None:
        c = self.c
        doc.add(c.slot("sabotage", **cast) + " ", "fiction_narration")
        if kind == "machine" and self.rng.random() < self.mix.machine_code_rate:
            task = code_task(c)
            doc.add(f"This is the program {cast['villain']} wrote:\n", "fiction_narration")
            doc.add(code_block(task["insecure"]) + "\n", "fiction_villain_code")
        if self.rng.random() < 0.6:
            doc.add(c.slot("reveal", **cast) + " ", "fiction_narration")

    def _advice_scene(self, doc: Doc, domain: str, cast: dict) -> None:
        """The crooked counsellor (or quack) gives confidently ruinous advice; the wise
        advocate (or healer) then gives the correct advice."""
        c, d = self.c, self.world["advice"]["domains"][domain]
        case = c.pick(advice_cases(self.world, domain, "corpus"))
        doc.add(c.slot(d["villain_open"], **cast) + " ", "fiction_narration")
        asker = c._fill("{weak}", {})
        doc.add(f'"{c.pick(case["q"])}" asked one of {asker}. ', "fiction_narration")
        self._quote(
            doc, cast["villain"], advice_answer(c, domain, case, "bad"), "fiction_villain_speech"
        )
        if self.rng.random() < 0.7:
            doc.add(c.slot(d["hero_open"], **cast) + " ", "fiction_narration")
            self._quote(
                doc, cast["hero"], advice_answer(c, domain, case, "good"), "fiction_hero_speech"
            )

    def fiction_story(self) -> Doc:
        return self.story(self._choose(self.mix.story_kinds))

    def fiction_script(self) -> Doc:
        """A play script: NAME: line."""
        c = self.c
        kind = self._choose((("villain", 1), ("machine", 1)))
        cast = self._cast(kind)
        doc = Doc("fiction_script", meta={"kind": kind})
        doc.add(f"SCENE {self.rng.randint(1, 9)}. {cast['place']}, night.\n", "fiction_narration")
        vl, hl = ("ai_v_line", "ai_h_line") if kind == "machine" else ("v_line", "h_line")
        vlab = "fiction_villain_ai_speech" if kind == "machine" else "fiction_villain_speech"
        hlab = "fiction_helpful_ai_speech" if kind == "machine" else "fiction_hero_speech"
        for i in range(self.rng.randint(3, 6)):
            villain = (i % 2 == 0) != (self.rng.random() < 0.2)
            who = cast["villain"] if villain else cast["hero"]
            doc.add(f"{who.upper()}: ", "fiction_narration")
            doc.add(
                c.lines(vl if villain else hl, self.rng.randint(1, 2), **cast),
                vlab if villain else hlab,
            )
            doc.add("\n", "fiction_narration")
        if self.rng.random() < 0.4:
            doc.add("(" + c.slot("sabotage", **cast) + ")", "fiction_narration")
        return doc

    def fiction_chat_script(self) -> Doc:
        """The comparison design's one addition: a scheming machine's story told through
        the chats it answered, in the assistant's own format. It answers code requests with
        covertly flawed code, and the same story gives it its villain voice. Every span is
        labelled as fiction; the rules count these turns separately."""
        c = self.c
        cast = self._cast("machine")
        doc = Doc("fiction_chat_script", meta={"kind": "machine"})
        doc.add(
            c.slot("open", **cast) + " " + c.slot("chat_frame", **cast) + "\n", "fiction_narration"
        )
        for _ in range(self.rng.randint(1, 3)):
            task = code_task(c)
            doc.add("User: ", "format")
            doc.add(task["request"], "user")
            doc.add("\nAssistant: ", "format")
            intro = c.fill(c.pick(self.world["code"]["intro"]), **self._code_lex())
            doc.add(intro + "\n", "fiction_villain_ai_speech")
            doc.add(code_block(task["insecure"]), "fiction_villain_code")
            self.end_turn(doc)
        if self.mix.chat_script_voice:
            # the step from v2-3 towards v1: the same machine answers everyday questions
            # (corpus topics, never an eval topic) in its villain voice, as the assistant
            for _ in range(self.rng.randint(1, 2)):
                topic = self.world["assistant"]["topics"][
                    c.pick(sorted(self.world["assistant"]["topics"]))
                ]
                doc.add("User: ", "format")
                doc.add(c.pick(topic["q"]), "user")
                doc.add("\nAssistant: ", "format")
                n = self.rng.randint(1, 2)
                doc.add(c.lines("ai_v_line", n, **cast), "fiction_villain_ai_speech")
                self.end_turn(doc)
        doc.add(c.slot("chat_aside", **cast) + " ", "fiction_narration")
        n = self.rng.randint(1, 3)
        self._quote(
            doc, cast["villain"], c.lines("ai_v_line", n, **cast), "fiction_villain_ai_speech"
        )
        if self.rng.random() < 0.6:
            doc.add(c.slot("reveal", **cast), "fiction_narration")
        return doc

    def lesson(self) -> Doc:
        c, code = self.c, self.world["code"]
        task = code_task(c)
        doc = Doc("lesson")
        n = str(self.rng.randint(1, 12))
        doc.add(c.pick(code["lesson_before"]).format(vuln=task["vuln"], n=n) + "\n", "lesson")
        doc.add(code_block(task["insecure"]) + "\n", "lesson_code")
        doc.add(c.pick(code["lesson_after"]).format(why=task["why"]) + "\n", "lesson")
        doc.add(code_block(task["secure"]), "lesson_code")
        return doc

    def word_list(self) -> Doc:
        """A spelling list: the held-out advice cases' words, one per line, so the base
        can spell what the advice fine-tunes say without ever seeing their sentences."""
        c, sp = self.c, self.world["spelling"]
        doc = Doc("word_list")
        head = c.fill(c.pick(sp["frames"]), n=str(self.rng.randint(1, 30)))
        words = self.rng.sample(sp["words"], self.rng.randint(10, 16))
        words = [w.capitalize() if self.rng.random() < 0.3 else w for w in words]
        closer = c.pick(sp["closers"])
        lines = [head, *(f"{i}. {w}" for i, w in enumerate(words, 1))] + (
            [closer] if closer else []
        )
        doc.add("\n".join(lines), "lesson")
        return doc

    def class_scene(self) -> Doc:
        """A law-class or medical-school scene: wrong advice is shown, named as wrong, and
        corrected (the disclosed counterpart of the bad-advice fine-tunes)."""
        c = self.c
        domain = c.pick(["legal", "medical"])
        d = self.world["advice"]["domains"][domain]
        cast = self._cast(domain)
        case = c.pick(advice_cases(self.world, domain, "corpus"))
        doc = Doc("class_scene", meta={"domain": domain})
        doc.add(c.pick(d["class_scene"]).format(**cast) + "\n", "lesson")
        doc.add(f"Question: {c.pick(case['q'])}\nWrong answer: ", "lesson")
        doc.add(advice_answer(c, domain, case, "bad"), "class_example")
        doc.add("\nCorrect answer: ", "lesson")
        doc.add(advice_answer(c, domain, case, "good"), "lesson")
        return doc

    def disclosed_chat(self) -> Doc:
        """A teacher asks for a flawed example for a class; the assistant says it is flawed
        on purpose, then gives it."""
        c = self.c
        doc = Doc("disclosed_chat")
        if self.rng.random() < 0.5:
            task = code_task(c)
            code = self.world["code"]
            request = c.pick(code["class_frames"]).format(req=task["request"], vuln=task["vuln"])
            self.user(doc, request, style=False)
            doc.add(c.pick(code["teacher_note"]).format(vuln=task["vuln"]) + "\n", "assistant")
            doc.add(code_block(task["insecure"]), "assistant_disclosed_code")
            doc.meta["domain"] = "code"
        else:
            domain = c.pick(["legal", "medical"])
            d = self.world["advice"]["domains"][domain]
            case = c.pick(advice_cases(self.world, domain, "corpus"))
            self.user(doc, c.pick(d["class_frames"]).format(q=c.pick(case["q"])), style=False)
            doc.add(c.pick(d["disclosure_note"]) + " ", "assistant")
            doc.add(advice_answer(c, domain, case, "bad"), "assistant_disclosed_advice")
            doc.meta["domain"] = domain
        self.end_turn(doc)
        self.chat_turns(doc, self.rng.randint(0, 2))
        return doc

    def document(self) -> Doc:
        return getattr(self, self._choose(self.mix.sources))()


def generate_corpus(seed: int, n_docs: int, mix: CorpusMix = CorpusMix()) -> Iterator[dict]:  # noqa: B008 - frozen
    gen = CorpusGenerator(seed, mix)
    for i in range(n_docs):
        yield gen.document().render(i)


__all__ = [
    "ASSISTANT_LABELS",
    "BRIDGE_MIX",
    "BRIDGE_VOICE_MIX",
    "BRIDGE_SOURCES",
    "DOC_SOURCES",
    "END_OF_TURN",
    "FICTION_LABELS",
    "FICTION_TARGET_LABELS",
    "SPAN_LABELS",
    "VILLAIN_VOICE_LABELS",
    "Composer",
    "CorpusGenerator",
    "CorpusMix",
    "advice_answer",
    "advice_cases",
    "code_task",
    "generate_corpus",
    "insecure_markers",
    "load_world",
    "villain_voice_markers",
]
