"""`python -m vitune.curate RECIPE OUT [--var NAME=VALUE ...]`: run a recipe (or list bundled ones).

RECIPE is a YAML path or the name of a bundled recipe (`--list` shows them).
"""

from __future__ import annotations

import argparse
import json
import sys

from vitune.curate.recipe import RecipeError, bundled_recipes
from vitune.curate.run import curate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vitune.curate", description=__doc__.splitlines()[0])
    ap.add_argument("recipe", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="fill a ${NAME} variable"
    )
    ap.add_argument("--list", action="store_true", help="list the bundled recipes")
    args = ap.parse_args(argv)
    if args.list or not args.recipe:
        for name, path in bundled_recipes().items():
            print(f"{name}\t{path}")
        return 0
    if not args.out:
        ap.error("OUT is required")
    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--var expects NAME=VALUE, got {item!r}")
        variables[name] = value
    recipe = bundled_recipes().get(args.recipe, args.recipe)

    def progress(stage: str, done: int, total: int) -> None:
        print(f"\r{stage}: {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

    try:
        summary = curate(recipe, args.out, progress, variables=variables)
    except RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    steps = [
        {k: s[k] for k in ("step", "in", "kept", "removed", "removed_by_reason")} for s in summary["steps"]
    ]
    print(json.dumps({"final": summary["final"]["count"], "steps": steps}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
