"""HTML pages from the jinja2 templates in `report/templates/` (package data), autoescaped.

Pages are self-contained: the stylesheet is in the base template and every figure or thumbnail is
a data URI, so nothing is fetched from a network or from files beside the page.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"


@cache
def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,  # a missing field is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = lambda v, spec=".2f": "—" if v is None else format(v, spec)
    return env


def render_page(template: str, **context: Any) -> str:
    return _env().get_template(template).render(**context)
