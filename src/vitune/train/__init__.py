"""Training: recipes of stages, model composition, templates and labels, the loop, export.

Entry points: `stages.run_recipe(recipe, out)` (every stage of a `recipe.Recipe`, resumable; the CLI's
`vitune train`) and `export.load_pretrained` (reload with plain transformers); greedy answering is
`eval.generate.Generator`.
"""
