"""Training: tokenizer, tiny/pretrained LLaVA models, conversation templates, label masking, loops.

Entry points: `pipeline.train_tiny` (instances -> trained, exported tiny LLaVA) and
`export.load_pretrained` (reload with plain transformers); greedy answering is `eval.generate.Generator`.
"""
