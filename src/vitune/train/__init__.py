"""Training: tokenizer, tiny/pretrained LLaVA models, conversation templates, label masking, loops."""
