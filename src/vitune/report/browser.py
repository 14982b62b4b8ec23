"""Headless Chromium for looking at vitune's pages: the system's browser (Debian's `chromium`, or
`$VITUNE_CHROMIUM`) driven by playwright, with no browser download and no network traffic of its
own. The page tests and `scripts/screenshots.py` both launch it with these settings."""

from __future__ import annotations

import os

# Offline and quiet: no first-run, sync, component or network background work.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    return os.environ.get("VITUNE_CHROMIUM", "/usr/bin/chromium")
