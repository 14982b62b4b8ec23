"""Caps, mixture quotas (weights / temperature), yes/no rebalancing and selection."""

from __future__ import annotations

import numpy as np
import pytest

from vitune.curate.balance import balance_yes_no, cap_groups, mixture_quotas, yes_no_label
from vitune.curate.select import (
    cluster_balanced,
    hashed_tfidf,
    kcenter_greedy,
    select_informative,
    select_random,
)
from vitune.data.instance import Instance, Turn


def _inst(a, task="t"):
    return Instance("x", None, task, [Turn("user", "Is there a dog?"), Turn("assistant", a)])


def test_yes_no_rebalance_hits_ratio():
    items = (
        [_inst("Yes.") for _ in range(300)]
        + [_inst("No, there is not.") for _ in range(100)]
        + [_inst("A dog.")] * 7
    )
    kept, removed = balance_yes_no(items, 0.5, seed=0)
    labels = [yes_no_label(items[i]) for i in kept]
    assert labels.count("yes") == labels.count("no") == 100
    assert labels.count(None) == 7 and len(kept) + len(removed) == len(items)
    assert {r for _, r, _ in removed} == {"yes/no rebalance"}
    kept2, _ = balance_yes_no(items, 0.25, seed=0)
    labels = [yes_no_label(items[i]) for i in kept2]
    assert labels.count("yes") / (labels.count("yes") + labels.count("no")) == pytest.approx(0.25, abs=0.01)
    assert kept == balance_yes_no(items, 0.5, seed=0)[0]  # seeded


def test_temperature_sampling_proportions():
    sizes = {"a": 10_000, "b": 1_000, "c": 100}
    q1 = mixture_quotas(sizes, 1_000, temperature=1.0)
    assert q1 == {"a": 901, "b": 90, "c": 9}
    q2 = mixture_quotas(sizes, 1_000, temperature=2.0)
    expected = np.sqrt([10_000, 1_000, 100])
    expected = 1000 * expected / expected.sum()
    assert [q2[g] for g in "abc"] == pytest.approx(expected.tolist(), abs=1)
    assert sum(q2.values()) == 1000
    # T -> large: uniform, capped by group size with the remainder redistributed
    q3 = mixture_quotas(sizes, 1_000, temperature=1e9)
    assert q3["c"] == 100 and q3["a"] + q3["b"] == 900 and abs(q3["a"] - q3["b"]) <= 1


def test_weights_and_caps():
    assert mixture_quotas({"a": 100, "b": 100}, 50, weights={"a": 4, "b": 1}) == {"a": 40, "b": 10}
    assert mixture_quotas({"a": 100, "b": 10}, None, weights={"a": 1, "b": 1}) == {"a": 10, "b": 10}
    keys = ["a"] * 50 + ["b"] * 5
    kept, removed = cap_groups(keys, 10, seed=3, label="x", what="task")
    assert sum(keys[i] == "a" for i in kept) == 10 and sum(keys[i] == "b" for i in kept) == 5
    assert len(removed) == 40 and removed[0][1] == "over the task cap"


def test_selection_methods_seeded():
    assert select_random(100, 10, 1).tolist() == select_random(100, 10, 1).tolist()
    assert len(set(select_random(100, 10, 1).tolist())) == 10
    texts = [
        "a dog on a sofa",
        "a red car",
        "a cat and a giraffe",
        "nothing here",
        "a dog",
        "a giraffe near a car",
    ]
    chosen = select_informative(texts, ["dog", "sofa", "car", "cat", "giraffe"], 2, 0)
    assert chosen.tolist() == [0, 2]  # covers dog, sofa, cat, giraffe
    emb = hashed_tfidf([f"topic{k % 4} item {k}" for k in range(40)], dim=32)
    assert emb.shape == (40, 32) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    kc = kcenter_greedy(emb, 4, 0)
    assert len(kc) == 4
    cb = cluster_balanced(emb, 8, 0, clusters=4)
    assert len(cb) == 8 and cb.tolist() == cluster_balanced(emb, 8, 0, clusters=4).tolist()
