"""Benchmarks: official-file loaders, LLaVA-1.5 prompts and official-identical scorers, by name.

    from vitune.eval.benchmarks import get_benchmark
    bench = get_benchmark("pope")
    items = bench.load("data/pope/coco")          # list[BenchItem]
    preds = {it.item_id: answer_fn(it) for it in items}
    results = bench.score(preds, items)           # {"overall": ..., "per_category": ..., ...}

A new benchmark is one module here with a `@register_benchmark` `Benchmark` subclass, imported
below so that it registers.
"""

from vitune.eval.benchmarks import (  # noqa: F401 - imported to register the benchmarks
    ai2d,
    aokvqa,
    chair,
    gqa,
    imagefolder,
    llava_bench,
    mathvista,
    mm_vet,
    mmbench,
    mme,
    mmmu,
    okvqa,
    pope,
    scienceqa,
    seed_bench,
    textvqa,
    vizwiz,
    vqav2,
)
from vitune.eval.benchmarks.base import (
    LETTER_ANSWER,
    SHORT_ANSWER,
    BenchItem,
    Benchmark,
    benchmark_names,
    get_benchmark,
    register_benchmark,
    to_gen_item,
)

__all__ = [
    "LETTER_ANSWER",
    "SHORT_ANSWER",
    "BenchItem",
    "Benchmark",
    "benchmark_names",
    "get_benchmark",
    "register_benchmark",
    "to_gen_item",
]
