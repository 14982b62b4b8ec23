"""Training: tokenizer, tiny/pretrained LLaVA models, conversation templates, label masking, loops.

Entry points: `pipeline.train_tiny` (instances -> trained, exported tiny LLaVA), `export.load_pretrained`
and `infer.generate_answers` (reload with plain transformers and answer questions greedily).
"""
