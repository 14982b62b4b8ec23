"""Evaluation: official benchmark scoring (VQAv2, ...), batched greedy generation, eval runners."""
