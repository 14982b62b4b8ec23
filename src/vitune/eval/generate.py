"""Greedy batched generation with a saved Llava model: `vitune.models.llava`, re-exported here
(`vitune serve`, multi-round evaluation and older code import `Generator` from this module)."""

from vitune.models.llava import Completion, Generator, GenItem, RowStreams, Sampling, load_pretrained

__all__ = ["Completion", "GenItem", "Generator", "RowStreams", "Sampling", "load_pretrained"]
