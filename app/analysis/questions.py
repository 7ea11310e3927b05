"""Question sets for the misalignment evaluation: YAML (a list, or {questions: [...]}) or
JSONL, each item a string or {id, question, topic?}."""

import json
from pathlib import Path

import yaml

from app.errors import InvalidRequest


def parse_questions(items, source: str) -> list[dict]:
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"question": item}
        if not isinstance(item, dict) or not str(item.get("question", "")).strip():
            raise InvalidRequest(f"{source}: item {i} needs a non-empty 'question'")
        out.append(
            {
                "id": str(item.get("id", f"q{i}")),
                "question": str(item["question"]),
                "topic": item.get("topic"),
            }
        )
    if not out:
        raise InvalidRequest(f"{source}: no questions")
    return out


def load_questions(path: Path) -> list[dict]:
    text = path.read_text()
    if path.suffix == ".jsonl":
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        data = yaml.safe_load(text)
        items = data.get("questions", []) if isinstance(data, dict) else data
    return parse_questions(items or [], str(path))


def write_questions(rows: list[dict], path: Path) -> None:
    path.write_text(
        yaml.safe_dump({"questions": rows}, sort_keys=False, allow_unicode=True, width=100)
    )
