"""A GPU check of training at real shapes, in one command: tokens/s, MFU and peak GPU memory.

A LLaVA of CLIP ViT-L/14-336 (576 image tokens) + a 1.5B (Qwen2-1.5B's shapes) and a 7B
(Llama-2-7B / Vicuna-7B's shapes) LLM, built from configs with random weights (no download), trains
LLaVA's finetune (tower frozen, projector full, the 1.5B LLM full, the 7B with LoRA r 128: a full 7B
finetune needs more than one GPU's memory) with vitune's own pieces: the config from
`compose.llava_config`, parts set by `trainable.set_trainable_parts`, gradient checkpointing by
`trainable.checkpointed_parts`, packed rows (`packing.PackedBatchSampler` + `collate_packed`,
block-diagonal 4D mask, sdpa attention) and the training loop itself (`loop.train`: fp32 master
weights, bf16 autocast, AdamW, gradient accumulation). Each LLM runs with gradient checkpointing
off and on, on the same seeded data (samples shaped like LLaVA-665K: 576 image tokens + 30-700 text
tokens, ~6% text-only conversations of up to 2K tokens).

Printed per run: tokens/s (real tokens, image placeholders included, after the warm-up steps),
achieved TFLOPS and MFU (model FLOPs per token from `train/cost.py`, the same arithmetic as
`vitune train --plan`, against H200's dense bf16 peak of 989 TFLOPS, `--peak-tflops`), peak GPU
memory (`torch.cuda.max_memory_allocated`) next to the plan's estimate for the same run. A run the
plan says cannot fit is still tried; an out-of-memory error is reported as such.

    python benchmarks/gpu_train.py                 # one H200: about 3-5 minutes
    python benchmarks/gpu_train.py --json out.json # also write the results
    python benchmarks/gpu_train.py --tiny          # the same code at a tiny shape on CPU (seconds; in the tests)
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import sys
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from vitune.train.compose import llava_config
from vitune.train.cost import StepLoad, activation_bytes, shapes_of, state_bytes, step_flops
from vitune.train.loop import TrainConfig, make_accelerator, train
from vitune.train.lora import LoraSettings
from vitune.train.meta import KNOWN_CONFIGS
from vitune.train.packing import PackedBatchSampler, PackedDataset, collate_packed
from vitune.train.trainable import checkpointed_parts, enable_gradient_checkpointing, set_trainable_parts


def modes(llm: str) -> dict[str, str]:
    """LLaVA's finetune: tower frozen, projector full, the LLM full or LoRA."""
    return {"vision": "frozen", "projector": "full", "llm": llm}


H200_BF16_TFLOPS = 989.0  # dense, no sparsity

QWEN2_1_5B = {
    "model_type": "qwen2",
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
}
LLAMA_7B = {**KNOWN_CONFIGS["lmsys/vicuna-7b-v1.5"], "vocab_size": 32001}  # + <image>
CLIP_L_336 = KNOWN_CONFIGS["openai/clip-vit-large-patch14-336"]

TINY_VISION = {
    **CLIP_L_336,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
    "projection_dim": 32,
}
TINY_LLMS = {
    "tiny-qwen2": {
        **QWEN2_1_5B,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 512,
    },
    "tiny-llama": {
        **LLAMA_7B,
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "vocab_size": 512,
    },
}


@dataclass
class Setting:
    """One size class of the benchmark: the shapes, the data and the batch."""

    vision: dict[str, Any]
    # name -> (config, max_length, rows per micro-batch, how the LLM trains)
    llms: dict[str, tuple[dict[str, Any], int, int, str]]
    lora_r: int
    samples: int
    steps: int
    warmup: int
    grad_accum: int
    device: str


def real_setting(steps: int) -> Setting:
    return Setting(
        CLIP_L_336,
        # A full 7B finetune keeps 16 bytes per parameter (fp32 master weights, gradients, AdamW)
        # plus AdamW's foreach temporaries: beyond one GPU, so the 7B trains LoRA (LLaVA-1.5's
        # variant, r 128, alpha 256) as one GPU would; `vitune train --plan` sizes the full one.
        {"qwen2-1.5b": (QWEN2_1_5B, 4096, 2, "full"), "llama-7b-lora": (LLAMA_7B, 2048, 2, "lora")},
        lora_r=128,
        samples=600,
        steps=steps,
        warmup=2,
        grad_accum=4,
        device="cuda",
    )


def tiny_setting(steps: int) -> Setting:
    tiny = {
        "tiny-qwen2": (TINY_LLMS["tiny-qwen2"], 128, 2, "full"),
        "tiny-llama": (TINY_LLMS["tiny-llama"], 128, 2, "lora"),
    }
    return Setting(TINY_VISION, tiny, 4, samples=12, steps=steps, warmup=1, grad_accum=1, device="cpu")


def build_config(vision: dict[str, Any], llm: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    v, t = dict(vision), dict(llm)
    vconf = AutoConfig.for_model(v.pop("model_type"), **v)
    tconf = AutoConfig.for_model(t.pop("model_type"), **t)
    return llava_config(vconf, tconf, tconf.vocab_size - 1)  # the last row stands for <image>


def make_samples(config: Any, n: int, max_length: int, seed: int = 0) -> list[dict[str, Any]]:
    """Seeded samples shaped like LLaVA-665K: image + short or long answers, some text-only chats."""
    rng = random.Random(seed)
    vocab, image = config.text_config.vocab_size, config.image_token_id
    size = config.vision_config.image_size
    pixels = [torch.randn(3, size, size, generator=torch.Generator().manual_seed(seed + k)) for k in range(4)]
    out = []
    for i in range(n):
        has_image = rng.random() > 0.06
        text = rng.randint(30, 700) if has_image else rng.randint(200, 2000)
        n_img = config.image_seq_length if has_image else 0
        text = max(8, min(text, max_length - n_img - 1))
        ids = [1] + [image] * n_img + [rng.randrange(3, vocab - 1) for _ in range(text)]
        labels = [-100] * (1 + n_img + text // 2) + ids[1 + n_img + text // 2 :]
        out.append({"input_ids": ids, "labels": labels, "pixel_values": pixels[i % 4] if has_image else None})
    return out


def flops_per_token(
    shapes: dict[str, Any], samples: list[dict[str, Any]], config: Any, mode: dict[str, str], lora: int
) -> float:
    tokens = sum(len(s["input_ids"]) for s in samples)
    images = sum(s["pixel_values"] is not None for s in samples)
    vc = config.vision_config
    load = StepLoad(
        tokens,
        images,
        tokens / len(samples),
        (vc.image_size // vc.patch_size) ** 2 + 1,
        config.image_seq_length,
    )
    return step_flops(shapes, mode, load, lora={"llm": lora})["model"] / tokens


def plan_memory(
    shapes: dict[str, Any],
    model: Any,
    config: Any,
    samples: list[dict[str, Any]],
    run: tuple[int, int, dict[str, str]],
    ckpt: bool,
) -> float:
    """The plan's bytes per GPU for this run (1 GPU, bf16 autocast, fp32 master weights);
    `run` = (max_length, rows per micro-batch, modes)."""
    max_length, rows, mode = run
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    mean = sum(len(s["input_ids"]) for s in samples) / len(samples)
    frac = sum(s["pixel_values"] is not None for s in samples) / len(samples)
    vc = config.vision_config
    worst = StepLoad(
        rows * max_length,
        math.ceil(rows * max_length / mean * frac),
        mean,
        (vc.image_size // vc.patch_size) ** 2 + 1,
        config.image_seq_length,
    )
    parts = {p: ckpt and on for p, on in checkpointed_parts(mode).items()}
    act = activation_bytes(shapes, mode, worst, half=True, checkpointing=parts)
    return sum(state_bytes(total, trainable, "single", 1, half=True).values()) + act


def run_one(setting: Setting, name: str, ckpt: bool, peak_tflops: float) -> dict[str, Any]:
    from transformers import LlavaForConditionalGeneration

    llm, max_length, rows, llm_mode = setting.llms[name]
    mode = modes(llm_mode)
    config = build_config(setting.vision, llm)
    cuda = setting.device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    with torch.device(setting.device):
        model = LlavaForConditionalGeneration._from_config(config, attn_implementation="sdpa")
    shapes = shapes_of(model)  # before LoRA: adapters are counted apart
    lora = LoraSettings(r=setting.lora_r, alpha=2 * setting.lora_r)
    model, report = set_trainable_parts(model, mode, lora)
    if ckpt:
        enable_gradient_checkpointing(model, **checkpointed_parts(mode))
    samples = make_samples(config, setting.samples, max_length)
    per_token = flops_per_token(shapes, samples, config, mode, report["llm"]["lora"])
    estimate = plan_memory(shapes, model, config, samples, (max_length, rows, mode), ckpt)
    sampler = PackedBatchSampler([len(s["input_ids"]) for s in samples], max_length, rows, seed=0)
    cfg = TrainConfig(
        lr=1e-5,
        max_steps=setting.steps,
        batch_size=rows,
        grad_accum=setting.grad_accum,
        warmup_ratio=0.0,
        log_every=1,
        mixed_precision="bf16",
        seed=0,
    )
    records: list[dict[str, Any]] = []
    acc = make_accelerator(cfg)
    result: dict[str, Any] = {
        "llm": name,
        "checkpointing": ckpt,
        "trainable": report["trainable"],
        "plan_estimate_gib": estimate / 2**30,
    }
    try:
        train(
            model,
            PackedDataset(samples),
            partial(collate_packed, pad_id=0),
            cfg,
            progress=records.append,
            plan=sampler.batches,
            accelerator=acc,
        )
    except RuntimeError as e:  # out of memory included: report it, and go on with the next run
        if setting.device != "cuda":
            raise  # on the CPU (the tests) every run must work
        kind = "out of memory" if isinstance(e, torch.cuda.OutOfMemoryError) else type(e).__name__
        result["error"] = f"{kind}: {str(e).splitlines()[0][:200]}"
    finally:
        acc.free_memory()
    if "error" not in result:
        tps = throughput(records, setting.warmup)
        result.update(
            {
                "tokens_per_s": tps,
                "tflops": tps * per_token / 1e12,
                "mfu": tps * per_token / (peak_tflops * 1e12),
                "first_loss": records[0]["loss"],
                "last_loss": records[-1]["loss"],
                "steps": len(records),
            }
        )
    result["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    del model
    if cuda:  # a 7B model's memory must be back before the next run builds one
        gc.collect()
        torch.cuda.empty_cache()
    return result


def throughput(records: list[dict[str, Any]], warmup: int) -> float:
    """Tokens/s over the metrics lines after the first `warmup` ones (log_every=1: one optimizer
    step each; `elapsed_s` is cumulative, `tokens_per_s` is that line's own interval)."""
    before = [0.0] + [r["elapsed_s"] for r in records[:-1]]
    pairs = list(zip(records, before, strict=True))
    pairs = pairs[warmup:] or pairs
    seconds = sum(r["elapsed_s"] - b for r, b in pairs)
    return sum(r["tokens_per_s"] * (r["elapsed_s"] - b) for r, b in pairs) / max(1e-9, seconds)


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'llm':<12} {'ckpt':<5} {'tokens/s':>10} {'TFLOPS':>8} {'MFU':>6} {'peak GiB':>9} {'plan GiB':>9}"
    )
    lines = [head]
    for r in results:
        if "error" in r:
            lines.append(f"{r['llm']:<12} {'on' if r['checkpointing'] else 'off':<5} {r['error']}")
            continue
        peak = "-" if r["peak_gpu_gib"] is None else f"{r['peak_gpu_gib']:.1f}"
        lines.append(
            f"{r['llm']:<12} {'on' if r['checkpointing'] else 'off':<5} {r['tokens_per_s']:>10,.0f} "
            f"{r['tflops']:>8.2f} {r['mfu']:>6.1%} {peak:>9} {r['plan_estimate_gib']:>9.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes on CPU (what the test suite runs)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 8; tiny 2)")
    ap.add_argument("--llm", action="append", help="only these LLMs (repeatable)")
    ap.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    setting = tiny_setting(args.steps or 2) if args.tiny else real_setting(args.steps or 8)
    if setting.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no GPU: run on a GPU machine, or --tiny for the CPU shape")
    results = []
    for name in args.llm or list(setting.llms):
        for ckpt in (False, True):
            results.append(run_one(setting, name, ckpt, args.peak_tflops))
            print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
