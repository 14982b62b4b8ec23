"""Does vLLM load a vitune export and answer as transformers does? Greedy answers on 32 prompts.

Needs a GPU and `pip install vllm` (not a vitune dependency). The same requests (an image drawn
from a seed + a question, rendered with the export's own chat template by its processor) are
answered greedily by plain transformers (`AutoProcessor` + `LlavaForConditionalGeneration`, one
request at a time) and by vLLM's offline engine (`LLM(model=DIR, limit_mm_per_prompt={"image": 1})`,
`generate([{"prompt": ..., "multi_modal_data": {"image": img}}], SamplingParams(temperature=0))`);
prints how many of the answers are identical (token ids up to the first end-of-sequence) and the
first differing ones, and exits 1 unless at least `--min-equal` of them are.

    python benchmarks/gpu_vllm_load.py --model run/stage2/model [--prompts 32] [--max-tokens 32]
        [--dtype float32] [--out answers.json]
    python benchmarks/gpu_vllm_load.py --tiny            # a random tiny export built here
    python benchmarks/gpu_vllm_load.py --tiny --skip-vllm  # the transformers half only (CPU)

Use the same dtype on both sides (float32 by default): bf16 kernels differ between the two and can
flip a greedy choice on a near-tie, which says nothing about whether the export loads correctly.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vitune.train.export_probe import probe_image

QUESTIONS = [
    "What colour is the largest box?",
    "How many boxes are in the picture?",
    "Describe the picture in one sentence.",
    "Is there a red box on the left?",
    "What is in the top right corner?",
    "Which box is the smallest?",
    "What colour is the background?",
    "Are any two boxes overlapping?",
]


@dataclass
class Request:
    prompt: str  # rendered with the export's chat template, `<image>` included
    image_seed: int


def build_requests(model_dir: str | Path, n: int) -> list[Request]:
    """`n` requests: question i cycles through QUESTIONS, image i is `probe_image(i)`."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    out = []
    for i in range(n):
        content = [{"type": "image"}, {"type": "text", "text": QUESTIONS[i % len(QUESTIONS)]}]
        prompt = processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
        out.append(Request(prompt, i))
    return out


def stop_ids(model_dir: str | Path) -> set[int]:
    """The ids generation ends on (generation_config's eos), for cutting both sides' answers."""
    from transformers import GenerationConfig

    eos = GenerationConfig.from_pretrained(model_dir, local_files_only=True).eos_token_id
    return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


def cut(ids: list[int], stops: set[int]) -> list[int]:
    """Token ids up to (without) the first stop id: vLLM drops it, transformers keeps it."""
    for i, t in enumerate(ids):
        if t in stops:
            return ids[:i]
    return ids


def transformers_answers(
    model_dir: str | Path, requests: list[Request], max_tokens: int, dtype: str, device: str
) -> list[list[int]]:
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = LlavaForConditionalGeneration.from_pretrained(
        model_dir, dtype=getattr(torch, dtype), local_files_only=True
    )
    model.to(device).eval()
    answers = []
    for r in requests:
        inputs = processor(images=[probe_image(r.image_seed)], text=r.prompt, return_tensors="pt").to(device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.no_grad():
            out = model.generate(**inputs, do_sample=False, max_new_tokens=max_tokens)
        answers.append(out[0, inputs["input_ids"].shape[1] :].tolist())
    return answers


def vllm_answers(
    model_dir: str | Path, requests: list[Request], max_tokens: int, dtype: str
) -> list[list[int]]:
    from vllm import LLM, SamplingParams  # GPU only; not a vitune dependency

    llm = LLM(
        model=str(model_dir),
        dtype=dtype,
        limit_mm_per_prompt={"image": 1},
        max_model_len=2048,
        seed=0,
        enforce_eager=True,  # no CUDA graphs: a load check, not a speed test
    )
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    inputs = [
        {"prompt": r.prompt, "multi_modal_data": {"image": probe_image(r.image_seed)}} for r in requests
    ]
    return [list(o.outputs[0].token_ids) for o in llm.generate(inputs, params)]


def compare_answers(a: list[list[int]], b: list[list[int]], stops: set[int]) -> dict[str, Any]:
    """Equal answers (cut at the first stop id) and, for the others, where they first diverge."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} vs {len(b)} answers")
    differ = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        x, y = cut(x, stops), cut(y, stops)
        if x != y:
            at = next((k for k, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))
            differ.append({"request": i, "first_difference_at": at, "a": x, "b": y})
    return {"n": len(a), "equal": len(a) - len(differ), "differ": differ}


def tiny_export(d: Path) -> Path:
    """A random LLaVA small enough to build anywhere, with GPU-friendly head sizes (64)."""
    from vitune.train.export import save_pretrained
    from vitune.train.model import Preset, build_model, processor_for
    from vitune.train.tokenizer import train_tokenizer

    tok = train_tokenizer(QUESTIONS * 10, vocab_size=400)
    model = build_model(Preset(64, 16, 128, 2, 2, 256, 2, 4), tok, seed=0)
    torch.manual_seed(1)
    with torch.no_grad():
        for w in model.parameters():
            if w.dim() >= 2:
                w.normal_(0.0, 0.1)  # wide: every answer depends on its image and question
    return save_pretrained(model, processor_for(model, tok), d)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--model", type=Path, help="an export folder (vitune export / a training stage's model/)"
    )
    src.add_argument("--tiny", action="store_true", help="build a random tiny export and use it")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--min-equal", type=int, default=None, help="answers that must be equal (default: all)")
    ap.add_argument("--skip-vllm", action="store_true", help="only the transformers answers (no GPU needed)")
    ap.add_argument("--out", type=Path, help="write both sides' answers and the comparison here (JSON)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tiny_export(Path(tmp) / "tiny") if args.tiny else args.model
        requests = build_requests(model_dir, args.prompts)
        hf = transformers_answers(model_dir, requests, args.max_tokens, args.dtype, args.device)
        print(f"transformers: {len(hf)} answers, {len({tuple(a) for a in hf})} distinct", file=sys.stderr)
        if args.skip_vllm:
            report: dict[str, Any] = {"transformers": hf}
        else:
            vl = vllm_answers(model_dir, requests, args.max_tokens, args.dtype)
            report = {"transformers": hf, "vllm": vl, **compare_answers(hf, vl, stop_ids(model_dir))}
            print(
                f"vLLM vs transformers ({args.dtype}): {report['equal']}/{report['n']} greedy answers identical"
            )
            for d in report["differ"][:5]:
                print(f"  request {d['request']}: first difference at token {d['first_difference_at']}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    need = args.prompts if args.min_equal is None else args.min_equal
    return 0 if args.skip_vllm or report["equal"] >= need else 1


if __name__ == "__main__":
    sys.exit(main())
