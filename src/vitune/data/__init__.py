"""Record types passed along the pipeline and their storage (Parquet shards, LLaVA JSON, ledgers)."""
