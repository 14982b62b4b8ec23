"""Screenshots of `vitune report` and a dataset card for the README (docs/img/*.png).

Builds a small demo end to end on the CPU (about two minutes): an embedded world, a build with its
dataset card, two short trainings of a micro LLaVA (two seeds), the world benchmarks on both, a
curation of the build, and the report of all of it; then opens the pages in headless Chromium
(Debian's /usr/bin/chromium through playwright, no browser download) and saves small PNGs.
With `--quickstart WORK` it screenshots a finished `vitune quickstart` folder instead, with
`--pages REPORT_HTML GALLERY_HTML` any two pages.

    python scripts/screenshots.py --out docs/img [--work /tmp/vitune-shots] [--quickstart WORK]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image

from vitune.report.browser import CHROMIUM_ARGS, chromium_path

TASKS = [
    "object_color",
    "vqa_short_answer",
    "coco_caption_coarse",
    "refcoco_grounding",
    "object_selection",
    "region_caption",
]
MAX_BYTES = 300_000


def _stage(name: str, data: Path, images: Path, steps: int, **over) -> dict:
    return {
        "name": name,
        "data": [{"path": str(data / "instances"), "image_root": str(images)}],
        "train": {"vision": "full", "projector": "full", "llm": "full"},
        "lr": 1e-3,
        "warmup_ratio": 0.1,
        "max_steps": steps,
        "global_batch": 8,
        "per_device_batch": 8,
        "max_length": 256,
        "log_every": 1,
        **over,
    }


def demo(work: Path) -> tuple[Path, Path]:
    """Everything the pages show, in `work`; returns (report.html, gallery.html)."""
    from vitune.curate import curate
    from vitune.data.ledger import Ledger
    from vitune.eval.world_bench import run_world_benchmarks
    from vitune.report.card import write_dataset_card
    from vitune.report.collect import read_curation, read_train_run
    from vitune.report.render import HTML_FILE, write_report
    from vitune.sources.merge import load_world
    from vitune.tasks.build import build_to_dir
    from vitune.train.recipe import parse_recipe
    from vitune.train.stages import run_recipe
    from vitune.world import generate_world
    from vitune.world.layout import WorldLayout

    world, data = work / "world", work / "data"
    generate_world(world, 120, seed=0, workers=1)
    images = WorldLayout(world).image_root
    build_to_dir(
        load_world(world, "train", Ledger(), extras=True), TASKS, data, cap=60, seed=0, image_root=images
    )
    _, gallery = write_dataset_card(data)
    recipe = work / "mix.yaml"
    recipe.write_text(
        "name: demo-mix\nseed: 0\ninputs:\n"
        f"  - {{name: build, kind: instances, path: '{data / 'instances'}', image_root: '{images}'}}\n"
        "steps:\n  - {type: dedup_exact}\n  - {type: balance_yes_no, yes_ratio: 0.5}\n"
        "  - {type: select, method: random, fraction: 0.7}\n"
    )
    curate(recipe, work / "curated")
    runs, evals, dirs = {}, {}, {}
    for name, seed in (("seed0", 0), ("seed1", 1)):
        spec = {
            "name": "demo",
            "model": {"preset": "micro", "vocab_size": 600, "pixel_norm": "dataset", "seed": seed},
            "stages": [
                _stage("stage1", data, images, 60, seed=seed),
                _stage("stage2", data, images, 30, lr=2e-4, seed=seed),
            ],
        }
        run_recipe(parse_recipe(spec), work / name)
        runs[name] = read_train_run(work / name)
        res = run_world_benchmarks(
            work / name / "stages" / "stage2" / "model",
            world,
            work / f"bench-{name}",
            max_images=8,
            benchmarks=("vqav2", "pope", "mme", "imagefolder"),
        )
        evals[name], dirs[name] = res, work / f"bench-{name}" / "results"
    write_report(
        work / "report",
        train=runs,
        evals=evals,
        eval_dirs=dirs,
        curation=read_curation(work / "curated"),
        title="vitune report (demo)",
    )
    return work / "report" / HTML_FILE, gallery


def small_png(data: bytes) -> bytes:
    """The screenshot as a 256-colour PNG: pages are flat colours, so this stays sharp and small."""
    img = Image.open(io.BytesIO(data)).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _id(name: str) -> str:
    return f"document.getElementById({name!r})"


# The first task of the gallery whose sample cards have boxes drawn (else the first task).
BOXES = (
    "[...document.querySelectorAll('h3[id^=task-]')].find(h => h.nextElementSibling"
    " && h.nextElementSibling.textContent.includes('box(es) drawn'))"
    " || document.querySelector('h3[id^=task-]')"
)


def shoot(pages: list[tuple[Path, str | None, Path]]) -> None:
    """(page, JS expression of the element to scroll to or None, PNG path) for each screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        for html, anchor, png in pages:
            page.goto(html.resolve().as_uri(), wait_until="load")
            if anchor:
                page.evaluate(f"({anchor}).scrollIntoView()")
            data = small_png(page.screenshot())
            if len(data) > MAX_BYTES:
                sys.exit(f"{png}: {len(data)} bytes, over {MAX_BYTES}")
            png.write_bytes(data)
            print(f"{png}: {len(data):,} bytes")
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/vitune-shots"))
    ap.add_argument("--quickstart", type=Path, help="a finished `vitune quickstart` work folder")
    ap.add_argument(
        "--pages", type=Path, nargs=2, metavar=("REPORT_HTML", "GALLERY_HTML"), help="existing pages"
    )
    a = ap.parse_args()
    if a.quickstart:
        report, gallery = a.quickstart / "report" / "report.html", a.quickstart / "data" / "gallery.html"
    elif a.pages:
        report, gallery = a.pages
    else:
        report, gallery = demo(a.work)
    a.out.mkdir(parents=True, exist_ok=True)
    shoot(
        [
            (report, _id("training"), a.out / "report_training.png"),
            (report, _id("evaluation"), a.out / "report_evaluation.png"),
            (report, _id("examples-1"), a.out / "report_examples.png"),
            (gallery, None, a.out / "card_counts.png"),
            (gallery, BOXES, a.out / "card_gallery.png"),
        ]
    )


if __name__ == "__main__":
    main()
