"""Data recipes: mixtures, deduplication, filters, balance and selection (`curate(recipe, out)`).

Modules: `recipe` (YAML schema), `dedup` (exact / MinHash / pHash), `images` (image hash cache, pHash clusters), `filters` (rule filters),
`balance` (caps, mixture quotas, yes/no), `select` (random / informative / diversity), `run`
(the resumable runner). Example recipes live in `recipes/`.
"""

from vitune.curate.recipe import Recipe, RecipeError, bundled_recipes, load_recipe
from vitune.curate.run import curate

__all__ = ["Recipe", "RecipeError", "bundled_recipes", "curate", "load_recipe"]
