"""Text datasets for latent dashboards, read through `datasets` and cut into fixed-length
token contexts.

Every dataset goes through `datasets.load_dataset` (or `load_from_disk`): a file, a glob or
a folder of txt / json / jsonl / csv / tsv / parquet / arrow files, compressed or not (the
builder is inferred from the file names, or named with `format`), a folder saved with
`save_to_disk`, or a hub dataset id with its config (subset) and split. Reading is lazy
(`streaming`) and stops once the token budget is met, so memory is bounded by the budget,
not by the file. The dataset is opened and its first record checked before any model work
starts: unreadable or empty input, or a missing text field, is a clear error.

    python -m app index build --model M --sae S --dataset data/*.jsonl.gz --max-tokens 1000000
"""

import bisect
import glob
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.errors import InvalidRequest, choices

log = logging.getLogger(__name__)

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".lz4")
# File suffix (after any compression suffix) -> `datasets` builder and its options.
BUILDERS: dict[str, tuple[str, dict]] = {
    ".txt": ("text", {}),
    ".text": ("text", {}),
    ".md": ("text", {}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".ndjson": ("json", {}),
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"sep": "\t"}),
    ".parquet": ("parquet", {}),
    ".arrow": ("arrow", {}),
}
SAVED_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")
TOKENIZE_BATCH = 64  # documents per tokenizer call
# The organism's pretraining corpus, as its build wrote it: one JSON object per document.
ORGANISM_CORPUS = Path(__file__).resolve().parents[2] / "models/organism/corpus.jsonl.gz"


@dataclass
class Documents:
    """A dataset read lazily: iterating yields (text, source) for each non-empty document.
    `source` names the document beside its snippets: `name#id`, plus `(source)` when the
    record has a `source` field (e.g. the organism's genre)."""

    name: str
    open: Callable[[], Iterator[dict]]  # a fresh iterator of records
    text_field: str = "text"
    limit_docs: int | None = None
    ident: str = ""  # what was opened, how (and local files' sizes and times): a cache key

    def __iter__(self) -> Iterator[tuple[str, str]]:
        records = self.open()
        if self.limit_docs is not None:
            records = itertools.islice(records, self.limit_docs)
        for i, rec in enumerate(records):
            text = rec.get(self.text_field)
            if isinstance(text, str) and text.strip():
                source = f"{self.name}#{rec.get('id', i)}"
                if rec.get("source"):
                    source += f" ({rec['source']})"
                yield text, source

    @property
    def texts(self) -> list[str]:
        """Every document's text (reads the whole dataset: for small ones)."""
        return [text for text, _ in self]

    @property
    def sources(self) -> list[str]:
        return [source for _, source in self]


def _bad(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"dataset {name}: {message}", field="dataset")


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _suffix(name: str) -> str:
    lower = name.lower()
    for comp in COMPRESSIONS:
        if lower.endswith(comp):
            lower = lower[: -len(comp)]
    return Path(lower).suffix


def _builder(name: str, files: list[str], format: str | None) -> tuple[str, dict]:
    if format is not None:
        return format, {}
    suffixes = {_suffix(f) for f in files}
    builders = {BUILDERS[s][0] for s in suffixes if s in BUILDERS}
    unknown = sorted(s or "(none)" for s in suffixes if s not in BUILDERS)
    if unknown or len(builders) != 1:
        raise _bad(
            name,
            f"cannot tell the format from the file names (suffixes {choices(sorted(suffixes))}); "
            f"supported: {choices(BUILDERS)}, each optionally compressed "
            f"({', '.join(COMPRESSIONS)}), all of one format; or set `format` to one of "
            f"'text', 'json', 'csv', 'parquet', 'arrow'",
        )
    kwargs: dict = {}
    for suffix in suffixes:
        kwargs.update(BUILDERS[suffix][1])
    return builders.pop(), kwargs


def _local_files(path: Path) -> list[str]:
    if path.is_dir():
        files = sorted(
            str(p)
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        return files
    return [str(path)]


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _first(name: str, records: Iterator[dict], text_field: str) -> Iterator[dict]:
    """Read up to the first non-empty document now (so errors surface before model work)
    and check the fields; return an iterator over every record, those read included."""
    seen: list[dict] = []
    try:
        for rec in records:
            if not seen and text_field not in rec:
                raise _bad(
                    name,
                    f"records have no {text_field!r} field; fields: {choices(sorted(rec))} "
                    f"(set text_field, or --text-field)",
                )
            seen.append(rec)
            text = rec.get(text_field)
            if isinstance(text, str) and text.strip():
                return itertools.chain(seen, records)
    except InvalidRequest:
        raise
    except Exception as exc:  # noqa: BLE001 - bad encoding, broken JSON, ...
        raise _bad(name, f"could not be read: {_one_line(exc)}") from exc
    raise _bad(name, "no non-empty documents")


def _records(ds, name: str) -> Iterator[dict]:
    try:
        yield from ds
    except Exception as exc:  # noqa: BLE001 - a broken line far into the file
        raise _bad(name, f"could not be read: {_one_line(exc)}") from exc


def load_documents(
    *,
    path: str | Path | None = None,
    hub: str | None = None,
    config: str | None = None,
    split: str = "train",
    text_field: str = "text",
    format: str | None = None,
    sample_by: str = "paragraph",
    streaming: bool = True,
    limit_docs: int | None = None,
    name: str | None = None,
    organism_corpus: bool = False,
    organism_docs: int | None = None,
) -> Documents:
    """Open a dataset (see the module docstring) and check its first record.
    `organism_corpus` (kept for older callers) reads the committed ORGANISM_CORPUS file,
    its first `organism_docs` documents."""
    if organism_corpus:
        path, name = ORGANISM_CORPUS, name or "organism-corpus"
        limit_docs = organism_docs or limit_docs
    args = [str(path) if path else None, hub, config, split, text_field, format, sample_by]
    docs = _open(path, hub, config, split, text_field, format, sample_by, streaming, name)
    docs.limit_docs = limit_docs
    stamps = []
    if path is not None:
        local = Path(str(path)).expanduser()
        found = glob.glob(str(local), recursive=True) if _is_glob(str(path)) else [str(local)]
        for f in sorted(found):
            for p in [Path(f), *(sorted(Path(f).rglob("*")) if Path(f).is_dir() else [])]:
                if p.is_file():
                    st = p.stat()
                    stamps.append([str(p), st.st_size, int(st.st_mtime)])
    docs.ident = json.dumps([args, limit_docs, stamps])
    return docs


def _open(path, hub, config, split, text_field, format, sample_by, streaming, name) -> Documents:
    limit_docs = None
    if (path is None) == (hub is None):
        raise InvalidRequest("dataset: give exactly one of a path or a hub id", field="dataset")
    import datasets

    datasets.disable_progress_bars()
    if hub is not None:
        name = name or (f"{hub}/{config}" if config else hub)

        def open_hub():
            ds = datasets.load_dataset(hub, config, split=split, streaming=streaming)
            return _records(ds, name)

        try:
            records = open_hub()
            records = _first(name, records, text_field)
        except InvalidRequest:
            raise
        except Exception as exc:  # noqa: BLE001 - offline, unknown id, unknown config, ...
            raise _bad(name, f"could not be loaded from the hub: {_one_line(exc)}") from exc
        return _documents(name, open_hub, text_field, limit_docs, records)

    text = str(path)
    local = Path(text).expanduser()
    name = name or local.name
    if _is_glob(text):
        files = sorted(f for f in glob.glob(str(local), recursive=True) if Path(f).is_file())
        if not files:
            raise _bad(name, f"the pattern {text!r} matches no files")
    elif not local.exists():
        raise _bad(name, f"{local} does not exist")
    elif local.is_dir() and any((local / m).exists() for m in SAVED_MARKERS):
        return _saved(name, local, split, text_field, limit_docs)
    else:
        files = _local_files(local)
        if not files:
            raise _bad(name, f"the folder {local} holds no files")
    builder, kwargs = _builder(name, files, format)
    if builder == "text":
        kwargs["sample_by"] = sample_by

    def open_files():
        ds = datasets.load_dataset(
            builder, data_files=files, split="train", streaming=streaming, **kwargs
        )
        return _records(ds, name)

    try:
        records = _first(name, open_files(), text_field)
    except InvalidRequest:
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable file, wrong format
        raise _bad(name, f"could not be read as {builder}: {_one_line(exc)}") from exc
    return _documents(name, open_files, text_field, limit_docs, records)


def _documents(name, opener, text_field, limit_docs, first_records) -> Documents:
    """Hand the already-opened iterator to the first reader, a fresh one to later ones."""
    pending = [first_records]

    def open_once():
        return pending.pop() if pending else opener()

    return Documents(name, open_once, text_field, limit_docs)


def _saved(name: str, path: Path, split: str, text_field: str, limit_docs) -> Documents:
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001
        raise _bad(name, f"could not be loaded with load_from_disk: {_one_line(exc)}") from exc
    if isinstance(ds, DatasetDict):
        if split not in ds:
            raise _bad(name, f"no split {split!r}; splits: {choices(ds.keys())}")
        ds = ds[split]
    if text_field not in ds.column_names:
        raise _bad(
            name,
            f"records have no {text_field!r} field; fields: {choices(ds.column_names)} "
            f"(set text_field, or --text-field)",
        )
    if len(ds) == 0:
        raise _bad(name, "no non-empty documents")
    return Documents(name, lambda: iter(ds), text_field, limit_docs)


@dataclass
class Contexts:
    """Token contexts of equal length, each starting with BOS, stored on disk (memmap). A
    shard of a larger set holds its rows from context id `first` on; ids are global."""

    tokens: np.ndarray  # (n_contexts, context) int32
    sources: list[str]  # per context: the document its first real token came from
    bos_id: int
    first: int = 0  # the global id of tokens[0]

    def __len__(self) -> int:
        return len(self.tokens)

    def batches(
        self, batch_size: int, start: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(global id of the first row, rows) per batch, from global id `start` on."""
        start = self.first if start is None else start
        for i in range(start, self.first + len(self.tokens), batch_size):
            j = i - self.first
            yield i, np.asarray(self.tokens[j : j + batch_size])

    def shard(self, start: int, stop: int) -> "Contexts":
        """Global ids [start, stop) of these contexts, as their own Contexts."""
        a, b = start - self.first, stop - self.first
        return Contexts(self.tokens[a:b], self.sources[a:b], self.bos_id, first=start)


def _batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch


def tokenize_contexts(
    docs: Documents,
    tokenizer,
    context: int,
    out_file: Path,
    max_contexts: int | None = None,
    max_tokens: int | None = None,
) -> Contexts:
    """Join documents with the end-of-text token and cut the stream into rows of `context`
    tokens: BOS, then context - 1 tokens of text (Neuronpedia's layout). Reading stops once
    `max_contexts` rows or `max_tokens` tokens (rows x context) are filled; memory holds
    the budget's tokens, never the whole dataset."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    sep = tokenizer.eos_token_id
    body = context - 1
    limits = [n for n in (max_contexts, max_tokens // context if max_tokens else None) if n]
    if max_tokens is not None and max_tokens < context:
        raise InvalidRequest(
            f"max_tokens: {max_tokens} is less than one context of {context} tokens",
            field="max_tokens",
        )
    cap = min(limits) if limits else None
    chunks: list[np.ndarray] = []
    starts: list[int] = []  # first stream position of each document
    sources: list[str] = []
    total = 0
    done = False
    for batch in _batched(docs, TOKENIZE_BATCH):
        encoded = tokenizer([t for t, _ in batch], add_special_tokens=False)["input_ids"]
        for (_, source), ids in zip(batch, encoded, strict=True):
            starts.append(total)
            sources.append(source)
            row = ids + ([sep] if sep is not None else [])
            chunks.append(np.asarray(row, dtype=np.int32))
            total += len(row)
            if cap is not None and total >= body * cap:
                done = True
                break
        if done:
            break
    n = total // body
    if cap is not None:
        n = min(n, cap)
    if n == 0:
        raise InvalidRequest(
            f"dataset {docs.name}: fewer than {context} tokens in all", field="dataset"
        )
    stream = np.concatenate(chunks)[: n * body]
    del chunks
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tokens = np.lib.format.open_memmap(out_file, mode="w+", dtype=np.int32, shape=(n, context))
    tokens[:, 0] = bos
    tokens[:, 1:] = stream.reshape(n, body)
    tokens.flush()
    owners = [sources[bisect.bisect_right(starts, i * body) - 1] for i in range(n)]
    return Contexts(np.load(out_file, mmap_mode="r"), owners, bos)
