"""Load an exported LLaVA with this Python's transformers and record what it computes on fixed inputs.

This file is also run as a script by another Python environment (e.g. one with transformers 4.57):

    python export_probe.py OUT_ROOT MODEL_DIR [MODEL_DIR ...] [--resave]

so it imports only the standard library, torch, transformers and Pillow, never vitune, and uses only
APIs that transformers 4.45+ and 5.x share. It loads the folder the way a user would
(`AutoProcessor` + `LlavaForConditionalGeneration`, local files only), renders fixed conversations
with the folder's chat template, and writes `OUT_ROOT/<i>/probe.json` (versions, loading report,
input ids, greedy continuations) and `OUT_ROOT/<i>/tensors.pt` (pixel values and logits per case)
for the i-th folder, or `OUT_ROOT/<i>/error.txt` if it does not load or run (one interpreter start
probes many folders). `export_check.py` compares two such probes. `--resave` also writes each model
and processor with this version's own `save_pretrained` into `OUT_ROOT/<i>/saved` (the other
direction: a checkpoint this version wrote).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import traceback
from pathlib import Path
from typing import Any

NEW_TOKENS = 16
# (question, image seed or None): an image question, a second image, and a text-only turn.
CASES: list[tuple[str, int | None]] = [
    ("What colour is the square on the left?", 0),
    ("Describe the picture in one sentence.", 1),
    ("What is two plus three?", None),
]


def probe_image(seed: int, size: int = 96) -> Any:
    """A small non-square picture of coloured boxes, the same on every machine (pad-to-square runs)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (size, size * 3 // 4), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = rng.randrange(size - 20), rng.randrange(size * 3 // 4 - 20)
        w, h = rng.randrange(8, 20), rng.randrange(8, 20)
        draw.rectangle([x, y, x + w, y + h], fill=tuple(rng.randrange(256) for _ in range(3)))
    return img


def load(model_dir: str) -> tuple[Any, Any, dict[str, list[str]]]:
    import torch
    import transformers
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    # transformers renamed `torch_dtype` to `dtype` in 4.56; float32 on both sides of a comparison.
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    model, info = LlavaForConditionalGeneration.from_pretrained(
        model_dir, local_files_only=True, output_loading_info=True, **{dtype_key: torch.float32}
    )
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    loading = {k: sorted(map(str, v)) for k, v in info.items() if k != "error_msgs"}
    return model.eval(), processor, loading


def _inputs(processor: Any, question: str, image_seed: int | None) -> Any:
    content: list[dict[str, str]] = [{"type": "text", "text": question}]
    if image_seed is not None:
        content.insert(0, {"type": "image"})
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    images = [probe_image(image_seed)] if image_seed is not None else None
    return prompt, processor(images=images, text=prompt, return_tensors="pt")


def run_probe(model_dir: str, new_tokens: int = NEW_TOKENS) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the JSON summary, the tensors) of `model_dir` under this Python's transformers."""
    import torch
    import transformers

    model, processor, loading = load(model_dir)
    summary: dict[str, Any] = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "loading": loading,
        "tokenizer_class": type(processor.tokenizer).__name__,
        "image_processor_class": type(processor.image_processor).__name__,
        "cases": [],
    }
    tensors: dict[str, Any] = {}
    for i, (question, image_seed) in enumerate(CASES):
        prompt, inputs = _inputs(processor, question, image_seed)
        with torch.no_grad():
            logits = model(**inputs).logits[0].float()
            out = model.generate(
                **inputs, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens
            )
        ids = inputs["input_ids"][0].tolist()
        summary["cases"].append(
            {"prompt": prompt, "input_ids": ids, "generated": out[0, len(ids) :].tolist()}
        )
        tensors[f"logits.{i}"] = logits
        if "pixel_values" in inputs:
            tensors[f"pixel_values.{i}"] = inputs["pixel_values"].float()
    return summary, tensors


def write_probe(model_dir: str, out_dir: str | Path, resave: bool = False) -> None:
    """Probe one folder into `out_dir`; an exception is written to `out_dir/error.txt` instead."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        summary, tensors = run_probe(model_dir)
        torch.save(tensors, out / "tensors.pt")
        (out / "probe.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        if resave:
            model, processor, _ = load(model_dir)
            model.save_pretrained(out / "saved")
            processor.save_pretrained(out / "saved")
    except Exception:  # reported to the comparing side, which names the folder
        lines = traceback.format_exc().strip().splitlines()
        (out / "error.txt").write_text("\n".join(lines[-12:]) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_root")
    ap.add_argument("model_dirs", nargs="+")
    ap.add_argument("--resave", action="store_true", help="also save each model with this version")
    args = ap.parse_args(argv)
    for i, d in enumerate(args.model_dirs):
        write_probe(d, Path(args.out_root) / str(i), args.resave)
    return 0


if __name__ == "__main__":
    sys.exit(main())
