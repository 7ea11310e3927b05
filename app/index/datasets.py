"""Text datasets for latent dashboards, cut into fixed-length token contexts.

A dataset is the organism's pretraining corpus (regenerated deterministically), a local
file (.txt: documents separated by blank lines; .jsonl; .parquet), a `datasets` directory
saved with `save_to_disk`, or a hub dataset id where the hub is reachable. It is checked
before any model work starts: unreadable or empty input is a clear error.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.errors import InvalidRequest


@dataclass
class Documents:
    name: str
    texts: list[str]
    sources: list[str]  # one per document, shown beside snippets


def _from_records(name: str, records, text_field: str) -> Documents:
    texts, sources = [], []
    for i, rec in enumerate(records):
        if text_field not in rec:
            raise InvalidRequest(
                f"dataset {name}: record {i} has no {text_field!r} field "
                f"(fields: {', '.join(sorted(rec))})",
                field="dataset",
            )
        text = rec[text_field]
        if isinstance(text, str) and text.strip():
            texts.append(text)
            sources.append(f"{name}#{rec.get('id', i)}")
    return Documents(name, texts, sources)


def load_documents(
    *,
    path: str | Path | None = None,
    hub: str | None = None,
    split: str = "train",
    text_field: str = "text",
    organism_corpus: bool = False,
    organism_docs: int | None = None,
    limit_docs: int | None = None,
) -> Documents:
    if organism_corpus:
        from app.organism.corpus import generate_corpus
        from app.organism.pipeline import OrganismConfig

        cfg = OrganismConfig()
        n = organism_docs or cfg.n_docs
        docs = list(generate_corpus(cfg.seed, n))
        out = Documents(
            "organism-corpus",
            [d["text"] for d in docs],
            [f"organism-corpus#{d['id']} ({d['genre']})" for d in docs],
        )
    elif hub is not None:
        try:
            from datasets import load_dataset

            ds = load_dataset(hub, split=split, streaming=True)
            records = (r for _, r in zip(range(limit_docs or 10**9), ds, strict=False))
            out = _from_records(hub, records, text_field)
        except InvalidRequest:
            raise
        except Exception as exc:  # noqa: BLE001 - offline, unknown id, ...
            raise InvalidRequest(
                f"dataset {hub!r} could not be loaded from the hub: {exc}", field="dataset"
            ) from exc
    elif path is not None:
        out = _load_path(Path(path), split, text_field)
    else:
        raise InvalidRequest(
            "dataset: give a path, a hub id or the organism corpus", field="dataset"
        )
    if limit_docs is not None:
        out = Documents(out.name, out.texts[:limit_docs], out.sources[:limit_docs])
    if not out.texts:
        raise InvalidRequest(f"dataset {out.name}: no non-empty documents", field="dataset")
    return out


def _load_path(path: Path, split: str, text_field: str) -> Documents:
    name = path.name
    if not path.exists():
        raise InvalidRequest(f"dataset {path} does not exist", field="dataset")
    try:
        if path.is_dir():
            from datasets import load_from_disk

            ds = load_from_disk(str(path))
            if hasattr(ds, "keys"):  # a DatasetDict
                if split not in ds:
                    raise InvalidRequest(
                        f"dataset {path}: no split {split!r}; splits: {', '.join(ds.keys())}",
                        field="dataset",
                    )
                ds = ds[split]
            return _from_records(name, ds, text_field)
        if path.suffix == ".jsonl":
            with path.open() as fh:
                records = [json.loads(line) for line in fh if line.strip()]
            return _from_records(name, records, text_field)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return _from_records(name, pq.read_table(path).to_pylist(), text_field)
        text = path.read_text()
    except InvalidRequest:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"dataset {path} could not be read: {exc}", field="dataset") from exc
    parts = [p.strip() for p in text.split("\n\n") if p.strip()]
    return Documents(name, parts, [f"{name}#{i}" for i in range(len(parts))])


@dataclass
class Contexts:
    """Token contexts of equal length, each starting with BOS, stored on disk (memmap)."""

    tokens: np.ndarray  # (n_contexts, context) int32
    sources: list[str]  # per context: the document its first real token came from
    bos_id: int

    def __len__(self) -> int:
        return len(self.tokens)

    def batches(self, batch_size: int, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        for i in range(start, len(self.tokens), batch_size):
            yield i, np.asarray(self.tokens[i : i + batch_size])


def tokenize_contexts(
    docs: Documents, tokenizer, context: int, out_file: Path, max_contexts: int | None = None
) -> Contexts:
    """Join documents with the end-of-text token and cut the stream into rows of `context`
    tokens: BOS, then context - 1 tokens of text (Neuronpedia's layout)."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    sep = tokenizer.eos_token_id
    body = context - 1
    stream: list[int] = []
    owner: list[int] = []
    encoded = tokenizer(docs.texts, add_special_tokens=False)["input_ids"]
    for d, ids in enumerate(encoded):
        stream.extend(ids)
        owner.extend([d] * len(ids))
        if sep is not None:
            stream.append(sep)
            owner.append(d)
        if max_contexts is not None and len(stream) >= body * max_contexts:
            break
    n = len(stream) // body
    if max_contexts is not None:
        n = min(n, max_contexts)
    if n == 0:
        raise InvalidRequest(
            f"dataset {docs.name}: fewer than {context} tokens in all", field="dataset"
        )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tokens = np.lib.format.open_memmap(out_file, mode="w+", dtype=np.int32, shape=(n, context))
    tokens[:, 0] = bos
    tokens[:, 1:] = np.asarray(stream[: n * body], dtype=np.int32).reshape(n, body)
    tokens.flush()
    sources = [docs.sources[owner[i * body]] for i in range(n)]
    return Contexts(np.load(out_file, mmap_mode="r"), sources, bos)
