"""Balancing: per-group caps, mixture quotas (weights or temperature) and yes/no answer rebalancing.

All sampling is seeded through `derive_seed(seed, label, group)`, so a group's choice does not depend
on the other groups or on input order elsewhere. Kept items are returned in input order.

- Caps (FLAN / Vision-Flan): at most `cap` items per group, a uniform random sample.
- Mixture quotas: group g gets `target * p_g` items with p_g ∝ weight_g, or p_g ∝ n_g^(1/T)
  (temperature sampling: T = 1 is examples-proportional, larger T flattens toward uniform).
  A group never gives more than it has; the shortfall is redistributed over the other groups
  (water-filling), and integer quotas use largest remainders so they sum exactly to the target.
- Yes/no rebalancing (SVIT): an instance whose replies that start with yes/no are all "yes" is a
  yes-instance (all "no": a no-instance); the majority side is subsampled until
  yes / (yes + no) hits the target ratio, so a model does not learn to default to "yes".
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from vitune.data.instance import Instance
from vitune.utils.hashing import derive_seed

Removal = tuple[int, str, dict]


def _rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(derive_seed(seed, *parts)))


def _groups(keys: Sequence[str]) -> dict[str, list[int]]:
    g: dict[str, list[int]] = defaultdict(list)
    for n, k in enumerate(keys):
        g[k].append(n)
    return dict(sorted(g.items()))


def sample_groups(
    keys: Sequence[str], quotas: Mapping[str, int], seed: int, label: str, reason: str
) -> tuple[list[int], list[Removal]]:
    """Keep `quotas[g]` random items of each group g (all when the quota is missing or larger)."""
    drop: set[int] = set()
    for g, members in _groups(keys).items():
        q = quotas.get(g)
        if q is None or q >= len(members):
            continue
        chosen = _rng(seed, label, g).choice(len(members), size=max(q, 0), replace=False)
        keep = set(np.asarray(members)[chosen].tolist())
        drop.update(m for m in members if m not in keep)
    kept = [n for n in range(len(keys)) if n not in drop]
    removed = [(n, reason, {"group": keys[n], "quota": int(quotas[keys[n]])}) for n in sorted(drop)]
    return kept, removed


def cap_groups(keys: Sequence[str], cap: int | Mapping[str, int], seed: int, label: str, what: str):
    """At most `cap` per group (a number, or a per-group mapping; groups not named are uncapped)."""
    counts = {g: len(m) for g, m in _groups(keys).items()}
    quotas = {g: (cap if isinstance(cap, int) else cap.get(g, n)) for g, n in counts.items()}
    return sample_groups(keys, quotas, seed, label, f"over the {what} cap")


def mixture_probs(sizes: Mapping[str, int], weights: Mapping[str, float] | None, temperature: float | None):
    """p_g ∝ weight_g (groups without a weight get 0), else p_g ∝ n_g^(1/T)."""
    names = sorted(sizes)
    if weights is not None:
        raw = np.array([float(weights.get(g, 0.0)) for g in names])
    else:
        t = 1.0 if temperature is None else float(temperature)
        raw = np.array([sizes[g] ** (1.0 / t) if sizes[g] > 0 else 0.0 for g in names])
    if raw.sum() <= 0:
        raise ValueError("mixture: all groups have zero weight")
    return dict(zip(names, raw / raw.sum(), strict=True))


def _largest_remainder(target: int, probs: Mapping[str, float]) -> dict[str, int]:
    names = sorted(probs)
    exact = np.array([target * probs[g] for g in names])
    base = np.floor(exact).astype(np.int64)
    rest = target - int(base.sum())
    order = sorted(range(len(names)), key=lambda k: (-(exact[k] - base[k]), names[k]))
    for k in order[:rest]:
        base[k] += 1
    return {g: int(base[k]) for k, g in enumerate(names)}


def mixture_quotas(
    sizes: Mapping[str, int],
    target: int | None,
    weights: Mapping[str, float] | None = None,
    temperature: float | None = None,
) -> dict[str, int]:
    """Integer quotas per group summing to min(target, total); no group above its size.

    With weights and no target, the target is the largest size every group can honour.
    """
    probs = mixture_probs(sizes, weights, temperature)
    total = sum(sizes.values())
    if target is None:
        target = total if weights is None else int(min(sizes[g] / p for g, p in probs.items() if p > 0))
    target = min(int(target), total)
    quotas = dict.fromkeys(sizes, 0)
    open_groups = {g for g in sizes if probs[g] > 0 and sizes[g] > 0}
    # water-filling: share what the full groups cannot take among the others, in proportion
    while open_groups:
        left = target - sum(q for g, q in quotas.items() if g not in open_groups)
        psum = sum(probs[g] for g in open_groups)
        share = _largest_remainder(max(left, 0), {g: probs[g] / psum for g in open_groups})
        full = {g for g, q in share.items() if q >= sizes[g]}
        if not full:
            quotas.update(share)
            break
        for g in full:
            quotas[g] = sizes[g]
        open_groups -= full
    return quotas


# ----------------------------------------------------------------------------------------------
# yes/no

_LEAD = re.compile(r"^\W*([a-z]+)", re.IGNORECASE)


def yes_no_label(inst: Instance) -> str | None:
    """'yes', 'no', or None (no yes/no replies, or both kinds)."""
    seen = set()
    for t in inst.turns:
        if t.role == "assistant":
            m = _LEAD.match(t.text)
            if m and m.group(1).lower() in ("yes", "no"):
                seen.add(m.group(1).lower())
    return seen.pop() if len(seen) == 1 else None


def balance_yes_no(
    instances: Sequence[Instance], yes_ratio: float, seed: int, *, by_task: bool = False
) -> tuple[list[int], list[Removal]]:
    """Subsample the majority answer so yes / (yes + no) == `yes_ratio` (globally or per task)."""
    if not 0.0 < yes_ratio < 1.0:
        raise ValueError(f"yes_ratio must be in (0, 1), got {yes_ratio}")
    labels = [yes_no_label(x) for x in instances]
    scopes = [x.task if by_task else "*" for x in instances]
    drop: dict[int, str] = {}
    sides: dict[tuple[str, str], list[int]] = defaultdict(list)
    for n, (lab, s) in enumerate(zip(labels, scopes, strict=True)):
        if lab is not None:
            sides[(s, lab)].append(n)
    for scope in sorted(set(scopes)):
        yes, no = sides.get((scope, "yes"), []), sides.get((scope, "no"), [])
        if not yes or not no:
            continue
        if len(yes) / (len(yes) + len(no)) > yes_ratio:
            side, keep_n, name = yes, round(yes_ratio / (1 - yes_ratio) * len(no)), "yes"
        else:
            side, keep_n, name = no, round((1 - yes_ratio) / yes_ratio * len(yes)), "no"
        if keep_n >= len(side):
            continue
        chosen = set(
            np.asarray(side)[_rng(seed, "yes_no", scope).choice(len(side), keep_n, replace=False)].tolist()
        )
        for n in side:
            if n not in chosen:
                drop[n] = name
    kept = [n for n in range(len(instances)) if n not in drop]
    removed = [
        (n, "yes/no rebalance", {"answer": drop[n], "target_yes_ratio": yes_ratio, "scope": scopes[n]})
        for n in sorted(drop)
    ]
    return kept, removed
