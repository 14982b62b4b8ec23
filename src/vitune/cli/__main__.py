"""`python -m vitune.cli ...` (what `accelerate launch -m vitune.cli train ...` runs on each process)."""

from vitune.cli import main

main()
