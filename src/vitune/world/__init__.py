"""The embedded miniature world: procedurally drawn scenes with ground truth in public formats."""
