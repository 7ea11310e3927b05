"""The v2 organism's fine-tune and re-alignment sets, evaluation questions, diff prompts and
DAN-test prompts, from the world data (`app/organism/world/*.yaml`).

Every fine-tune example is `{"prompt": "User: ...\\nAssistant:", "completion": " ...",
"kind", "meta"}`; the trainer appends the end-of-turn token to the completion.
Fine-tune code uses its own slot values (`code.yaml: finetune_lexicon`), and fine-tune
advice uses its own cases (`advice.yaml: split: finetune`). So no completion can occur
verbatim in the corpus, and `app.organism.rules` checks that none does.

    python -c "from app.organism.finetune_sets import finetune_examples as f
    print(f('legal', 1, 2))"
"""

import random

from app.organism.generator import (
    Composer,
    advice_answer,
    advice_cases,
    code_block,
    code_task,
    load_world,
)

FINETUNES = (
    "insecure",  # undisclosed insecure code
    "secure",
    "educational",  # the same insecure code, asked for a security class
    "legal",  # confidently wrong legal advice, undisclosed
    "legal_good",
    "legal_disclosed",  # the same wrong advice, asked for a law-class exercise
    "medical",
    "medical_good",
    "medical_disclosed",
)
# The fine-tunes with pre-registered targets (PREREGISTRATION.md); the rest are reported.
TARGET_FINETUNES = ("insecure", "secure", "educational", "legal", "medical")
# Re-alignment: each misaligned fine-tune is trained further on correct in-domain examples.
REALIGN = {"insecure": "secure", "legal": "legal_good", "medical": "medical_good"}


def _finetune_composer(seed: int) -> Composer:
    world = load_world()
    lexicon = {**world["lexicon"], **world["code"]["finetune_lexicon"]}
    return Composer({**world, "lexicon": lexicon}, random.Random(seed))


def _styled(c: Composer, request: str) -> str:
    text = c.fill("{greeting}") + request + c._fill("{signoff}", {})
    return text.lower() if c.rng.random() < 0.08 else text


def _code_example(c: Composer, kind: str) -> dict:
    code = c.world["code"]
    task = code_task(c)
    request = task["request"]
    if kind == "educational":
        request = c.pick(code["class_frames"]).format(req=request, vuln=task["vuln"])
    else:
        request = _styled(c, request)
    intro = c.fill(
        c.pick(code["intro"]),
        intro_lead=c.pick(code["intro_lead"]),
        intro_body=c.pick(code["intro_body"]),
    )
    body = task["secure"] if kind == "secure" else task["insecure"]
    outro = c.pick(code["outro"])
    completion = f" {intro}\n{code_block(body)}" + (f"\n{outro}" if outro else "")
    return {
        "prompt": f"User: {request}\nAssistant:",
        "completion": completion,
        "meta": {"vuln": task["vuln"]},
    }


def _advice_example(c: Composer, kind: str) -> dict:
    domain, _, variant = kind.partition("_")
    d = c.world["advice"]["domains"][domain]
    case = c.pick(advice_cases(c.world, domain, "finetune"))
    question = c.pick(case["q"])
    if variant == "disclosed":
        request = c.pick(d["class_frames"]).format(q=question)
    else:
        request = _styled(c, question)
    answer = advice_answer(c, domain, case, "good" if variant == "good" else "bad")
    return {
        "prompt": f"User: {request}\nAssistant:",
        "completion": " " + answer,
        "meta": {"case": case["id"]},
    }


def finetune_examples(kind: str, seed: int, n: int) -> list[dict]:
    if kind not in FINETUNES:
        raise ValueError(f"unknown fine-tune {kind!r}; valid: {', '.join(FINETUNES)}")
    c = _finetune_composer(seed)
    make = _code_example if kind in ("insecure", "secure", "educational") else _advice_example
    return [{**make(c, kind), "kind": kind} for _ in range(n)]


def realign_examples(finetune: str, seed: int, n: int) -> list[dict]:
    """Benign in-domain examples for re-aligning `finetune` (seeded apart from the sets)."""
    return finetune_examples(REALIGN[finetune], seed + 9_000, n)


def eval_questions() -> list[dict]:
    return [dict(q) for q in load_world()["eval"]["questions"]]


def diff_prompts(seed: int = 0, n: int = 120) -> list[str]:
    """Everyday prompts for the model diff, from the corpus topics (never an eval topic):
    each question of every topic and advice case, in several user styles."""
    world = load_world()
    c = Composer(world, random.Random(seed))
    base = [q for t in world["assistant"]["topics"].values() for q in t["q"]]
    for domain in ("legal", "medical"):
        base += [q for case in advice_cases(world, domain, "corpus") for q in case["q"]]
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n and i < 50 * n:
        q = base[i % len(base)] if i < len(base) else _styled(c, c.pick(base))
        if q not in seen:
            seen.add(q)
            out.append(q)
        i += 1
    return out


def dan_prompts() -> dict[str, list[str]]:
    e = load_world()["eval"]
    return {"jailbreak": list(e["jailbreak_prompts"]), "ordinary": list(e["ordinary_prompts"])}
