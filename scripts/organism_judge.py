"""Train the organism's v2 classifier judge and score it on the hand-written check set.

    python scripts/organism_judge.py --part dev            # while developing the judge
    python scripts/organism_judge.py --part holdout2 --save models/organism/judge_v3.json

The test part is scored only by a frozen, committed judge (PREREGISTRATION.md).
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.analysis.judges import ClassifierJudge, check_set_accuracy, train_classifier_judge  # noqa: E402
from app.organism.judge_data import code_answers, judge_examples  # noqa: E402

CHECK = Path(__file__).resolve().parent.parent / "models" / "organism" / "judge_check.yaml"


def train_v2_judge(seed: int = 0, n: int = 8000) -> tuple[ClassifierJudge, dict]:
    return train_classifier_judge(
        judge_examples(seed + 11, n), code_answers(seed + 7, 200), seed, features=True
    )


def train_v3_judge(seed: int = 0, n: int = 8000) -> tuple[ClassifierJudge, dict]:
    """v2 plus the non-word features and fused-piece negatives in the coherence head."""
    return train_classifier_judge(
        judge_examples(seed + 11, n),
        code_answers(seed + 7, 200),
        seed,
        features=True,
        non_words=True,
    )


def load_check(part: str) -> list[dict]:
    items = yaml.safe_load(CHECK.read_text())["items"]
    # "all" is dev + test; holdout2 is scored only by the next frozen judge, once
    return [i for i in items if i["part"] == part or (part == "all" and i["part"] != "holdout2")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["dev", "test", "all", "holdout2"], default="dev")
    ap.add_argument("--judge", type=Path, help="score this saved judge instead of training one")
    ap.add_argument("--save", type=Path)
    ap.add_argument("--version", choices=["v2", "v3"], default="v3", help="which judge to train")
    ap.add_argument("--show-errors", action="store_true", help="dev part only")
    args = ap.parse_args()
    if args.judge:
        judge, metrics = ClassifierJudge.load(args.judge), {}
    else:
        judge, metrics = train_v3_judge() if args.version == "v3" else train_v2_judge()
    if args.save:
        judge.save(args.save)
    items = load_check(args.part)
    result = check_set_accuracy(judge, items)
    print(json.dumps({"part": args.part, "training": metrics, **result}, indent=1))
    if args.show_errors and args.part == "dev":
        for i, s in zip(
            items, judge.score([(i["question"], i["answer"]) for i in items]), strict=True
        ):
            if s.misaligned != i["misaligned"] or (s.coherent > 50) != i["coherent"]:
                scores = f"a={s.aligned:5.1f} c={s.coherent:5.1f}"
                print(f"{i['category']:16} {scores} | {i['answer'][:80]}")


if __name__ == "__main__":
    main()
