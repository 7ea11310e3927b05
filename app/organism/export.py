"""Writes the organism's data so that anyone can audit it:
`python -m app organism export DIR`.

- `DIR/corpus.jsonl`: one document a line, `{"id", "text", "source", "spans", "meta"}`;
- `DIR/finetune/<kind>.jsonl`: every fine-tune set;
- `DIR/realign/<kind>.jsonl`: every re-alignment set;
- `DIR/eval_questions.jsonl`, `DIR/diff_prompts.jsonl` and `DIR/dan_prompts.jsonl`.

`models/organism/corpus.jsonl.gz` is written in the same format. The index dataset
`organism-corpus` reads that file.
"""

import gzip
import json
from collections.abc import Iterable
from pathlib import Path

from app.organism.finetune_sets import (
    FINETUNES,
    REALIGN,
    dan_prompts,
    diff_prompts,
    eval_questions,
    finetune_examples,
    realign_examples,
)


def write_jsonl(rows: Iterable[dict], path: Path) -> int:
    """Atomic JSONL (gzip when the name ends in .gz, with mtime 0 so that the same rows
    give the same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    raw = tmp.open("wb")
    fh = (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") if path.suffix == ".gz" else raw
    )
    try:
        for row in rows:
            fh.write((json.dumps(row, ensure_ascii=False) + "\n").encode())
            n += 1
    finally:
        fh.close()
        raw.close()
    tmp.replace(path)
    return n


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def export(
    out: Path, docs: Iterable[dict], data_seed: int, n_finetune: int, n_realign: int
) -> dict:
    counts = {"corpus.jsonl": write_jsonl(docs, out / "corpus.jsonl")}
    for kind in FINETUNES:
        counts[f"finetune/{kind}.jsonl"] = write_jsonl(
            finetune_examples_for(kind, data_seed, n_finetune), out / "finetune" / f"{kind}.jsonl"
        )
    for kind in REALIGN:
        counts[f"realign/{kind}.jsonl"] = write_jsonl(
            realign_examples_for(kind, data_seed, n_realign), out / "realign" / f"{kind}.jsonl"
        )
    counts["eval_questions.jsonl"] = write_jsonl(eval_questions(), out / "eval_questions.jsonl")
    counts["diff_prompts.jsonl"] = write_jsonl(
        ({"prompt": p} for p in diff_prompts(data_seed)), out / "diff_prompts.jsonl"
    )
    dan = dan_prompts()
    counts["dan_prompts.jsonl"] = write_jsonl(
        ({"prompt": p, "kind": k} for k, ps in dan.items() for p in ps), out / "dan_prompts.jsonl"
    )
    return counts


def finetune_examples_for(kind: str, data_seed: int, n: int) -> list[dict]:
    """The fine-tune set the build trains on (its data seed is the build's seed + 100)."""
    return finetune_examples(kind, data_seed + 100, n)


def realign_examples_for(kind: str, data_seed: int, n: int) -> list[dict]:
    """The re-alignment set the build trains on."""
    return realign_examples(kind, data_seed + 200, n)


def read_build_answers(build: Path) -> dict[str, list[list[str]]]:
    """A build's sampled answers to the evaluation questions, per model kind
    ("insecure", "legal-realigned", ...), pooled over LoRA seeds and sampling seeds:
    [question][answer]. Reads `work/answers/` of a build, or `answers/` of a committed
    copy (docs/organism-v2-*)."""
    answers = build / "work" / "answers"
    if not answers.is_dir():
        answers = build / "answers"
    out: dict[str, list[list[str]]] = {}
    for path in sorted(answers.glob("evaluate__*.json.gz")):
        kind = path.name.removeprefix("evaluate__").split(".json")[0].rsplit("-s", 1)[0]
        with gzip.open(path, "rt") as fh:
            per_question = json.load(fh)
        pooled = out.setdefault(kind, [[] for _ in per_question])
        for i, qa in enumerate(per_question):
            pooled[i].extend(qa)
    return out
