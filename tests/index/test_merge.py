"""The index's partial state: shards of one pass merge into exactly the one-pass state, in
any order and for any cut into shards (what the Ray engine relies on)."""

import itertools
import json

import pytest
import torch

from app.index.builder import (
    IndexParams,
    IndexState,
    build_index,
    merge_states,
    top_order,
)
from app.index.datasets import load_documents, tokenize_contexts
from app.index.distributed import shard_bounds
from app.organism.corpus import generate_corpus

# A small batch and an odd number of contexts: several shards, a short last batch.
PARAMS = IndexParams(context=24, batch_size=4, top_k=5)
N_CONTEXTS = 37
FIELDS = (
    "top_values",
    "top_ctx",
    "top_tokens",
    "nonzero",
    "total",
    "max",
    "hist",
    "ex_key",
    "ex_ctx",
    "ex_pos",
    "ex_value",
    "ex_window",
)


@pytest.fixture(scope="module")
def contexts(registry, tmp_path_factory):
    folder = tmp_path_factory.mktemp("merge")
    path = folder / "corpus.jsonl"
    with path.open("w") as fh:
        for doc in generate_corpus(seed=5, n_docs=40):
            fh.write(json.dumps({"text": doc["text"], "id": doc["id"]}) + "\n")
    tok = registry.model("base").tokenizer
    return tokenize_contexts(
        load_documents(path=path), tok, PARAMS.context, folder / "c.npy", N_CONTEXTS
    )


def build(registry, contexts) -> IndexState:
    with registry.activate("base") as model:
        return build_index(model, registry.sae("sae"), contexts, PARAMS, progress=False)


@pytest.fixture(scope="module")
def one_pass(registry, contexts):
    return build(registry, contexts)


def shard_states(registry, contexts, n_shards):
    return [
        build(registry, contexts.shard(a, b))
        for a, b in shard_bounds(len(contexts), PARAMS.batch_size, n_shards)
    ]


def assert_same(a: IndexState, b: IndexState) -> None:
    assert a.n_tokens == b.n_tokens and a.n_batches == b.n_batches
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name


def test_the_one_pass_state_is_not_trivial(one_pass, contexts):
    """The equalities below would hold vacuously on an empty state."""
    assert one_pass.n_batches == 10 and len(contexts) == N_CONTEXTS
    assert int((one_pass.top_values > 0).sum()) > 100
    assert int((one_pass.ex_ctx >= 0).sum()) > 100
    assert int(one_pass.hist.sum()) == int(one_pass.nonzero.sum()) > 1000
    # Ties: contexts where a latent is silent all have the value 0 in its top-k list.
    assert int((one_pass.top_values == 0).sum()) > 0


@pytest.mark.parametrize("n_shards", [2, 3, 10])
def test_merged_shards_equal_one_pass(registry, contexts, one_pass, n_shards):
    states = shard_states(registry, contexts, n_shards)
    assert len(states) == n_shards
    assert all(s.n_tokens > 0 for s in states)
    assert_same(merge_states(states), one_pass)


def test_merge_is_order_independent(registry, contexts, one_pass):
    states = shard_states(registry, contexts, 3)
    saved = [s.state_dict() for s in states]
    for order in itertools.permutations(range(3)):
        copies = [IndexState.from_state({k: clone(v) for k, v in saved[i].items()}) for i in order]
        assert_same(merge_states(copies), one_pass)
    # Pairwise, as a tree: (s2 + s0) + s1.
    a = IndexState.from_state({k: clone(v) for k, v in saved[2].items()})
    a.merge(IndexState.from_state({k: clone(v) for k, v in saved[0].items()}))
    b = merge_states([a, IndexState.from_state({k: clone(v) for k, v in saved[1].items()})])
    assert_same(b, one_pass)


def clone(v):
    return v.clone() if isinstance(v, torch.Tensor) else v


def test_top_order_breaks_ties_by_context():
    values = torch.tensor([[1.0, 1.0, 0.5, 1.0, -1.0], [0.0, 0.0, 0.0, 2.0, 0.0]])
    ctx = torch.tensor([[5, 2, 9, 7, -1], [8, 3, 1, 4, 6]])
    order = top_order(values, ctx, 3)
    assert ctx.gather(1, order).tolist() == [[2, 5, 7], [4, 1, 3]]
    # The same candidates in any column order give the same list.
    perm = torch.tensor([4, 2, 0, 3, 1])
    again = top_order(values[:, perm], ctx[:, perm], 3)
    assert ctx[:, perm].gather(1, again).tolist() == [[2, 5, 7], [4, 1, 3]]


def test_a_checkpoint_of_the_old_format_is_not_resumed(one_pass):
    old = one_pass.state_dict() | {"version": 1}
    assert IndexState.from_state(old) is None
    assert IndexState.from_state(one_pass.state_dict()) is not None


def test_a_shard_must_start_on_a_batch_boundary(registry, contexts):
    with pytest.raises(ValueError, match="batch boundary"):
        build(registry, contexts.shard(3, 20))
