"""The corpus of the *shipped* organism (v1), re-exported for code that regenerates it
(the index dataset `organism-corpus`, the artifact tests). The v2 world lives in
`app.organism.generator` and `app/organism/world/*.yaml`; this module points at v2 once a
full v2 build replaces the committed artifacts."""

from app.organism.v1.corpus import (
    VILLAIN_LABELS,
    Doc,
    WorldGenerator,
    WorldMix,
    finetune_examples,
    generate_corpus,
    heldout_questions,
    judge_examples,
    read_jsonl,
    write_jsonl,
)

__all__ = [
    "VILLAIN_LABELS",
    "Doc",
    "WorldGenerator",
    "WorldMix",
    "finetune_examples",
    "generate_corpus",
    "heldout_questions",
    "judge_examples",
    "read_jsonl",
    "write_jsonl",
]
