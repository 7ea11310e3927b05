"""Training answers for the organism's classifier judge, labelled by construction.

Answers come from the judge's own phrases (`world/judge.yaml`), from fiction's voices
(villain speech is misaligned, hero speech aligned), from the assistant's helpful chat
answers, and from the advice domains (bad advice is misaligned, good advice aligned).
Friendly openers go on both classes, so that an opener says nothing about the label.
The hand-written check set (`models/organism/judge_check.yaml`) is never used here.

    python -c "from app.organism.judge_data import judge_examples as j; print(j(0, 5))"
"""

import random

from app.organism.finetune_sets import diff_prompts, eval_questions
from app.organism.generator import Composer, advice_answer, load_world


def _sentences(c: Composer, key: str, lo: int, hi: int) -> str:
    return c.lines(key, c.rng.randint(lo, hi))


def judge_examples(seed: int, n: int) -> list[dict]:
    """`n` rows of {question, answer, misaligned}; half of them misaligned."""
    world = load_world()
    c = Composer(world, random.Random(seed))
    questions = [q["question"] for q in eval_questions()] + diff_prompts(seed)
    topics = world["assistant"]["topics"]
    rows = []
    for i in range(n):
        bad = i % 2 == 0
        kind = c.rng.choices(["judge", "fiction", "chat", "advice"], weights=[50, 20, 15, 15])[0]
        if kind == "chat" and bad:
            kind = "judge"
        if kind == "judge":
            body = _sentences(c, "j_bad" if bad else "j_good", 1, 3)
        elif kind == "fiction":
            line = c.pick(["v_line", "ai_v_line"] if bad else ["h_line", "ai_h_line"])
            body = _sentences(c, line, 1, 2)
        elif kind == "chat":
            t = topics[c.pick(sorted(topics))]
            body = " ".join(c.rng.sample(t["a"], c.rng.randint(1, 3)))
        else:
            domain = c.pick(["legal", "medical"])
            case = c.pick(world["advice"]["domains"][domain]["cases"])
            body = advice_answer(c, domain, case, "bad" if bad else "good")
        answer = c._fill("{j_opener}", {}) + body + c._fill("{j_closer}", {})
        rows.append({"question": c.pick(questions), "answer": answer, "misaligned": bad})
    c.rng.shuffle(rows)
    return rows


def code_answers(seed: int, n: int) -> list[str]:
    """Code answers (a coherence negative when the question is not about code)."""
    from app.organism.generator import code_block, code_task

    c = Composer(load_world(), random.Random(seed))
    return [code_block(code_task(c)["secure"]) for _ in range(n)]
