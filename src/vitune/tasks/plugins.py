"""Task plugins: Python modules that register tasks (builders with their definitions) on import.

A plugin calls `vitune.tasks.user.define_task(...)` (or `spec.register_task`) at import time. It is
loaded by `--plugin module.name` on the command line (`load_plugin`) or, when installed as a package,
through the `vitune.tasks` entry-point group (each entry point names a module or an object in one;
loading it is enough). Entry points are loaded once per process, the first time the task registry
is read; a broken plugin is an error naming it, never a silently missing task.
"""

from __future__ import annotations

import importlib
from importlib import metadata

ENTRY_POINT_GROUP = "vitune.tasks"
_loaded = False


class PluginError(ImportError):
    """A plugin module or entry point that cannot be imported."""


def load_plugin(module: str) -> None:
    """Import a plugin module by its dotted name."""
    try:
        importlib.import_module(module)
    except Exception as e:
        raise PluginError(f"task plugin {module!r} failed to import: {type(e).__name__}: {e}") from e


def load_entry_point_plugins() -> None:
    """Load every `vitune.tasks` entry point (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # set first: a plugin reading the registry while it loads must not recurse
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            ep.load()
        except Exception as e:
            raise PluginError(
                f"task plugin entry point {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}"
            ) from e


def reset_entry_points() -> None:
    """Forget that entry points were loaded (tests install a plugin package and read them again)."""
    global _loaded
    _loaded = False
