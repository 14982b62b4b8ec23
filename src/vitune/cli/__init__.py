"""The `vitune` command line: a thin typer layer over the library (no logic lives here).

One module per command group registers its commands on the shared `app` (cli/app.py); add a group
by writing a module and importing it below.
"""

from __future__ import annotations

from vitune.cli import (  # noqa: F401  (registers the commands)
    data,
    eval,
    export,
    lab,
    mix,
    quickstart,
    report,
    serve,
    train,
)
from vitune.cli.app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
