"""Open a page in a real headless Chromium (Debian's /usr/bin/chromium through playwright's driver;
no browser download) and report what a reader would see: console errors, failed requests, images
that did not load, and the text of elements picked by CSS selector."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vitune.report.browser import CHROMIUM_ARGS, chromium_path


@dataclass
class PageView:
    errors: list[str] = field(default_factory=list)  # console errors and page exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    images: int = 0
    broken_images: list[str] = field(default_factory=list)  # <img> with naturalWidth 0
    text: dict[str, str] = field(default_factory=dict)  # data-attribute value -> element text


def view_page(path: Path, attributes: tuple[str, ...] = ()) -> PageView:
    """Load `path` (file://), wait for every image, and collect the text of every element carrying
    one of `attributes` (keyed `attr=value`)."""
    from playwright.sync_api import sync_playwright

    out = PageView()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page()
            page.on("console", lambda m: out.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: out.errors.append(str(e)))
            page.on("request", lambda r: out.requests.append(r.url))
            page.goto(Path(path).resolve().as_uri(), wait_until="load")
            imgs = page.evaluate(
                "[...document.images].map(i => [i.complete && i.naturalWidth > 0, i.alt || i.src.slice(0, 60)])"
            )
            out.images = len(imgs)
            out.broken_images = [name for ok, name in imgs if not ok]
            for attr in attributes:
                pairs = page.evaluate(
                    f"[...document.querySelectorAll('[{attr}]')].map(e => [e.getAttribute('{attr}'), e.textContent])"
                )
                out.text.update({f"{attr}={k}": v.strip() for k, v in pairs})
        finally:
            browser.close()
    return out
