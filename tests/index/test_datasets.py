"""Index datasets through `datasets`: every file format, folders, globs, compression,
`save_to_disk` folders, text fields and splits, the token budget, and clear 4xx errors."""

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from app.engine.config import load_config
from app.errors import InvalidRequest
from app.index.datasets import load_documents, tokenize_contexts
from app.index.jobs import resolve_dataset

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    {"id": f"d{i}", "body": f'Document {i} says "hello"\non two lines, with a comma, and more.'}
    for i in range(12)
]


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(ROOT / "models/organism/base")


def texts(docs) -> list[str]:
    return [t for t, _ in docs]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("formats")
    (d / "docs.json").write_text(json.dumps(DOCS))
    lines = "".join(json.dumps(r) + "\n" for r in DOCS)
    (d / "docs.jsonl").write_text(lines)
    (d / "docs.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    import csv

    with (d / "docs.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "body"])
        w.writeheader()
        w.writerows(DOCS)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(DOCS), d / "docs.parquet")
    folder = d / "txt"
    folder.mkdir()
    for r in DOCS[:3]:
        (folder / f"{r['id']}.txt").write_text(r["body"] + "\n\nA second paragraph.")
    shards = d / "shards"
    shards.mkdir()
    for i in range(3):
        (shards / f"part-{i}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in DOCS[i * 4 : i * 4 + 4])
        )
    from datasets import Dataset, DatasetDict

    DatasetDict(
        {"train": Dataset.from_list(DOCS[:5]), "validation": Dataset.from_list(DOCS[5:7])}
    ).save_to_disk(str(d / "saved"))
    return d


@pytest.mark.parametrize(
    "name", ["docs.json", "docs.jsonl", "docs.jsonl.gz", "docs.csv", "docs.parquet"]
)
def test_record_files_give_each_record_text_verbatim(files, name):
    """JSON arrays and CSV were indexed as raw text; .jsonl.gz failed with a UTF-8 error."""
    docs = load_documents(path=files / name, text_field="body")
    assert texts(docs) == [r["body"] for r in DOCS]
    assert docs.sources[0] == f"{name}#d0"


def test_folder_of_text_files_one_document_per_paragraph(files):
    docs = load_documents(path=files / "txt")
    assert len(texts(docs)) == 6 and texts(docs)[0] == DOCS[0]["body"]
    whole = load_documents(path=files / "txt", sample_by="document")
    assert len(texts(whole)) == 3


def test_glob_and_folder_of_shards(files):
    assert texts(load_documents(path=str(files / "shards" / "*.jsonl"), text_field="body")) == [
        r["body"] for r in DOCS
    ]
    assert len(texts(load_documents(path=files / "shards", text_field="body"))) == 12


def test_save_to_disk_folder_and_split(files):
    docs = load_documents(path=files / "saved", text_field="body", split="validation")
    assert texts(docs) == [r["body"] for r in DOCS[5:7]]
    with pytest.raises(InvalidRequest, match=r"no split 'test'; splits: 'train', 'validation'"):
        load_documents(path=files / "saved", text_field="body", split="test")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"path": "docs.jsonl"}, r"no 'text' field; fields: 'body', 'id' \(set text_field"),
        ({"path": "nope.jsonl"}, "does not exist"),
        ({"path": "*.nothing"}, "matches no files"),
        ({"path": "weird.xyz"}, r"cannot tell the format.*'\.jsonl'"),
        ({"path": "broken.jsonl.gz"}, "could not be read"),
    ],
)
def test_bad_datasets_are_4xx_naming_the_field(files, kwargs, message):
    (files / "weird.xyz").write_text("x")
    (files / "broken.jsonl.gz").write_bytes(b"not gzip at all")
    kwargs = {**kwargs, "path": str(files / kwargs["path"])}
    with pytest.raises(InvalidRequest, match=message) as err:
        load_documents(**kwargs)
    assert err.value.field == "dataset" and "\n" not in err.value.message


def test_hub_dataset_offline_is_a_4xx_at_once():
    """With HF_HUB_OFFLINE=1 an unreachable hub id fails in one line, without retries."""
    code = (
        "from app.index.datasets import load_documents\n"
        "try:\n"
        "    load_documents(hub='no-such-user/no-such-dataset', config='en')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc.field, exc.message)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - started < 15
    assert out.stdout.startswith("InvalidRequest dataset dataset no-such-user/no-such-dataset/en")
    assert "could not be loaded from the hub" in out.stdout and "Retrying" not in out.stderr


def test_token_budget_stops_reading(tmp_path, tok):
    """--max-contexts 10 used to read and tokenise the whole file."""
    path = tmp_path / "big.jsonl"
    with path.open("w") as fh:
        for i in range(20_000):
            fh.write(json.dumps({"text": f"document number {i} " * 20}) + "\n")
    docs = load_documents(path=path)
    pulled = []
    opener = docs.open

    def counting():
        for rec in opener():
            pulled.append(1)
            yield rec

    docs.open = counting
    ctx = tokenize_contexts(docs, tok, 32, tmp_path / "c.npy", max_tokens=32 * 10)
    assert ctx.tokens.shape == (10, 32)
    assert len(pulled) < 200  # a few tokenizer batches, not 20,000 records
    again = tokenize_contexts(load_documents(path=path), tok, 32, tmp_path / "d.npy", 10)
    assert np.array_equal(np.asarray(again.tokens), np.asarray(ctx.tokens))
    with pytest.raises(InvalidRequest, match="max_tokens"):
        tokenize_contexts(load_documents(path=path), tok, 32, tmp_path / "e.npy", max_tokens=5)


def test_config_options_and_overrides(tmp_path, files):
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        "models: {m: {hub: gpt2}}\n"
        "datasets:\n"
        f"  docs: {{path: {files / 'docs.csv'}, text_field: body, max_tokens: 4096}}\n"
    )
    config = load_config(cfg)
    docs, budget = resolve_dataset(config, "docs")
    assert budget == 4096 and docs.name == "docs" and docs.sources[0] == "docs#d0"
    docs, _ = resolve_dataset(config, str(files / "docs.jsonl"), text_field="body")
    assert len(texts(docs)) == 12
    with pytest.raises(InvalidRequest, match=r"neither a dataset id.*'docs'.*hub:"):
        resolve_dataset(config, "wikitext")


def test_organism_corpus_is_a_committed_file_read_without_the_organism_package():
    """The organism's dataset is models/organism/corpus.jsonl.gz; resolving it imports
    nothing from app.organism."""
    code = (
        "import sys; from app.engine.config import load_config; "
        "from app.index.jobs import resolve_dataset; "
        "docs, _ = resolve_dataset(load_config('models/default.yaml'), 'organism-corpus'); "
        "first = next(iter(docs)); "
        "assert not [m for m in sys.modules if m.startswith('app.organism')], sys.modules; "
        "print(first[1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "organism-corpus#0 (code_villain_story)"
    with gzip.open(ROOT / "models/organism/corpus.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    assert len(rows) == 22_000 and set(rows[0]) == {"id", "text", "source"}
    assert [r["id"] for r in rows[:3]] == [0, 1, 2]
