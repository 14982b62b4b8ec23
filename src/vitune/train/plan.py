"""`vitune train RECIPE --plan`: what a recipe will cost, worked out before any weight is loaded.

`plan_recipe(recipe, launch)` checks the recipe's paths, builds the model from its *configs* on the
meta device (`train/meta.py`: no memory, no download: local folders, the Hugging Face cache with
`local_files_only`, or vitune's built-in copies of the bundled recipes' `config.json`), reads every
stage's data, and returns per stage: samples, tokens, optimizer steps, trainable parameters per
part (with `trainable.set_trainable_parts`, the function training uses, so frozen / full / LoRA
count exactly as they will train), FLOPs per optimizer step and memory per GPU under a launch
(1 GPU, DDP, FSDP, DeepSpeed ZeRO-2/3; `launch_from_config` reads `configs/accelerate/*.yaml`).

Tokens: with a tokenizer (a local LLM or checkpoint, or the run's `base/` when it exists) a seeded
sample of each stage is encoded with the stage's `LabelEncoder` (exact when the sample is the whole
stage); without one (a preset before its tokenizer is trained) they are estimated at 4 characters
per token. Either way the report says which. Images are not decoded (the run checks them); the
sample's image files are only looked up.

FLOPs and memory follow `train/cost.py` (formulas in its docstring). Memory is per GPU under the
launch; "fits" means the total is at most 90% of the GPU's memory (the rest: CUDA context,
allocator fragmentation, temporary buffers).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vitune.data.instance import IMAGE_TOKEN, Instance
from vitune.data.ledger import Ledger
from vitune.train.meta import meta_model, model_info
from vitune.train.recipe import DataSpec, Recipe, RecipeError, StageSpec, missing_inputs
from vitune.utils.hashing import derive_seed

GiB = 1024**3
Strategy = Literal["single", "ddp", "fsdp", "zero2", "zero3"]
STRATEGIES: tuple[str, ...] = ("single", "ddp", "fsdp", "zero2", "zero3")
FIT_FRACTION = 0.9  # of the GPU's memory; the rest is CUDA context, fragmentation and buffers
CHARS_PER_TOKEN = 4.0  # the estimate without a tokenizer
SAMPLE = 2000  # instances per stage encoded for the token estimate

# --------------------------------------------------------------------------------------------------
# The launch


@dataclass(frozen=True)
class Launch:
    """How the run is launched: strategy, process count, and the accelerate config's precision."""

    strategy: Strategy = "single"
    processes: int = 1
    mixed_precision: str | None = None  # None: each stage's own setting
    offload_optimizer: bool = False
    offload_params: bool = False
    source: str = "1 process"

    def describe(self) -> str:
        mp = f", {self.mixed_precision}" if self.mixed_precision else ""
        return f"{self.strategy} on {self.processes} process(es){mp} ({self.source})"


def launch_from_options(processes: int = 1, strategy: str | None = None) -> Launch:
    """`--processes N --strategy ddp|fsdp|zero2|zero3` (default: single for 1 process, else ddp)."""
    if processes < 1:
        raise RecipeError(f"--processes must be at least 1, not {processes}")
    strategy = strategy or ("single" if processes == 1 else "ddp")
    if strategy not in STRATEGIES:
        raise RecipeError(f"--strategy {strategy!r}: use one of {list(STRATEGIES)}")
    return Launch(strategy, processes, source=f"--processes {processes} --strategy {strategy}")  # type: ignore[arg-type]


def launch_from_config(path: str | Path) -> Launch:
    """The launch an `accelerate launch --config_file PATH` would make (configs/accelerate/*.yaml)."""
    p = Path(path)
    try:
        cfg = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise RecipeError(f"{p}: cannot read the accelerate config ({e})") from None
    if not isinstance(cfg, dict):
        raise RecipeError(f"{p}: the accelerate config is not a mapping")
    kind = str(cfg.get("distributed_type", "NO")).upper()
    processes = int(cfg.get("num_processes", 1) or 1)
    mp = cfg.get("mixed_precision")
    offload_opt = offload_par = False
    if kind == "DEEPSPEED":
        ds = cfg.get("deepspeed_config") or {}
        stage = int(ds.get("zero_stage", 2))
        if stage not in (2, 3):
            raise RecipeError(f"{p}: deepspeed_config.zero_stage {stage}: the plan knows ZeRO-2 and ZeRO-3")
        strategy = f"zero{stage}"
        offload_opt = str(ds.get("offload_optimizer_device", "none")).lower() not in ("none", "")
        offload_par = str(ds.get("offload_param_device", "none")).lower() not in ("none", "")
    elif kind == "FSDP":
        strategy = "fsdp"
        offload_par = offload_opt = bool((cfg.get("fsdp_config") or {}).get("fsdp_offload_params", False))
    elif kind in ("MULTI_GPU", "MULTI_CPU", "MULTI_NPU", "MULTI_XPU"):
        strategy = "ddp" if processes > 1 else "single"
    elif kind == "NO":
        strategy = "single"
    else:
        raise RecipeError(f"{p}: distributed_type {kind!r} is not one the plan knows")
    return Launch(
        strategy,  # type: ignore[arg-type]
        processes,
        None if mp in (None, "") else str(mp),
        offload_opt,
        offload_par,
        str(p),
    )


def parse_gpu_mem(text: str) -> int:
    """'80GB', '80 GiB', '141G', '80' -> bytes (GPU memory is quoted in GiB: 80 GB means 80 x 2^30)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(g|gb|gib|t|tb|tib|m|mb|mib)?\s*", text.lower())
    if not m:
        raise RecipeError(f"--gpu-mem {text!r}: expected a size like 80GB")
    scale = {"m": 2**20, "t": 2**40}.get((m.group(2) or "g")[0], GiB)
    return int(float(m.group(1)) * scale)


# --------------------------------------------------------------------------------------------------
# Checks before anything is read


# --------------------------------------------------------------------------------------------------
# The data


@dataclass
class DataEstimate:
    """A stage's samples, and their tokens measured on a seeded sample of them."""

    samples: int  # instances read (records, for a dense_vision stage)
    measured: int  # how many of them were encoded (or measured by characters)
    rejected: int  # of those, refused by the encoder (reason in `reasons`)
    read_rejected: int  # records the readers refused (malformed JSON entries)
    lengths: list[int]  # tokens of each measured sample that was kept
    image_frac: float
    method: Literal["tokenizer", "characters", "images"]
    missing_images: int = 0  # measured samples whose image file is absent
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.method != "characters" and self.measured == self.samples

    @property
    def kept(self) -> float:
        return self.samples * (1 - self.rejected / self.measured) if self.measured else float(self.samples)

    @property
    def mean_tokens(self) -> float:
        return sum(self.lengths) / len(self.lengths) if self.lengths else 0.0


def _char_tokens(inst: Instance, template: str, image_tokens: int, max_length: int) -> int:
    from vitune.data.templates import render_segments

    turns = [(r, t) for u, a in inst.pairs() for r, t in (("user", u), ("assistant", a))]
    text = "".join(s.text for s in render_segments(template, turns, inst.image is not None, "</s>"))
    n = math.ceil(len(text.replace(IMAGE_TOKEN, "")) / CHARS_PER_TOKEN)
    return min(max_length, n + (image_tokens if inst.image is not None else 0))


def estimate_data(
    st: StageSpec, tokenizer: Any | None, image_tokens: int, sample: int = SAMPLE
) -> DataEstimate:
    """Read an instruct stage's data (`stages.load_stage_data`, as training does) and measure a
    seeded sample of at most `sample` instances."""
    from vitune.train.labels import LabelEncoder, Rejected
    from vitune.train.stages import load_stage_data

    ledger = Ledger()
    entries: list[tuple[DataSpec, list[Instance]]] = [
        (d, load_stage_data(d, ledger, st.seed)) for d in st.data
    ]
    flat = [(d, k) for d, items in entries for k in range(len(items))]
    rng = random.Random(derive_seed(st.seed, "plan", st.name))
    chosen = sorted(rng.sample(range(len(flat)), min(len(flat), sample)))
    encoder = (
        LabelEncoder(tokenizer, image_tokens, st.template, st.max_length) if tokenizer is not None else None
    )
    by_path = {id(d): items for d, items in entries}
    est = DataEstimate(
        len(flat), len(chosen), 0, len(ledger), [], 0.0, "tokenizer" if encoder else "characters"
    )
    images = 0
    for j in chosen:
        d, k = flat[j]
        inst = by_path[id(d)][k]
        if encoder is not None:
            r = encoder.encode(inst)
            if isinstance(r, Rejected):
                est.rejected += 1
                est.reasons[r.reason] = est.reasons.get(r.reason, 0) + 1
                continue
            est.lengths.append(len(r.input_ids))
        else:
            est.lengths.append(_char_tokens(inst, st.template, image_tokens, st.max_length))
        if inst.image is not None:
            images += 1
            if d.image_root is None or not (Path(d.image_root) / inst.image).is_file():
                est.missing_images += 1
    est.image_frac = images / max(1, len(est.lengths))
    return est


def estimate_records(st: StageSpec) -> DataEstimate:
    """A dense_vision stage: one sample per image of its records."""
    assert st.records is not None
    ledger = Ledger()
    n = len(st.records.load(ledger).records)
    return DataEstimate(n, n, 0, len(ledger), [], 1.0, "images")


# --------------------------------------------------------------------------------------------------
# Stages


@dataclass
class StagePlan:
    name: str
    kind: str
    data: DataEstimate
    micro_per_epoch: int  # micro-batches (of per_device_batch samples or packed rows) per epoch
    grad_accum: int
    steps: int
    steps_note: str
    tokens_per_step: float
    images_per_step: float
    params: dict[str, Any]  # set_trainable_parts' report
    flops: dict[str, float]
    memory: dict[str, float]  # bytes per GPU
    checkpointing: bool
    half: bool
    fits: bool | None = None


def _micro_per_epoch(st: StageSpec, est: DataEstimate) -> int:
    if est.method == "images":
        return max(1, math.ceil(est.samples / st.per_device_batch))
    kept = max(1.0, est.kept)
    if st.packing and est.lengths:
        from vitune.train.packing import pack_rows

        rows = len(pack_rows(est.lengths, st.max_length, seed=st.seed)) * kept / len(est.lengths)
        return max(1, math.ceil(rows / st.per_device_batch))
    return max(1, math.ceil(kept / st.per_device_batch))


def _worst_micro(st: StageSpec, est: DataEstimate, info: dict[str, int]) -> Any:
    """The micro-batch that needs the most activation memory: full rows of the longest samples."""
    from vitune.train.cost import StepLoad

    if est.method == "images":
        return StepLoad(0, st.per_device_batch, 0, info["vision_tokens"], info["image_features"])
    longest = st.max_length if st.packing or not est.lengths else min(st.max_length, max(est.lengths))
    per_row = max(1.0, longest / max(1.0, est.mean_tokens)) if st.packing else 1.0
    images = math.ceil(st.per_device_batch * per_row * est.image_frac) if est.image_frac else 0
    return StepLoad(
        st.per_device_batch * longest, images, est.mean_tokens, info["vision_tokens"], info["image_features"]
    )


def _half(st: StageSpec, launch: Launch) -> bool:
    mp = launch.mixed_precision or st.mixed_precision
    return mp in ("bf16", "fp16", "auto")  # auto is bf16 on any GPU that has it


def _trainable(config: Any, st: StageSpec) -> dict[str, Any]:
    from vitune.train.lora import LoraSettings
    from vitune.train.trainable import set_trainable_parts

    lora = LoraSettings.coerce(st.lora) if st.lora is not None else None
    _, report = set_trainable_parts(meta_model(config), st.train.model_dump(), lora)
    return report


def plan_stage(
    st: StageSpec,
    est: DataEstimate,
    launch: Launch,
    shapes: dict[str, Any],
    info: dict[str, Any],
    gpu_mem: int | None,
) -> StagePlan:
    """Steps, FLOPs per optimizer step and memory per GPU of one stage."""
    from vitune.train.cost import StepLoad, step_flops
    from vitune.train.trainable import checkpointed_parts

    dense = st.kind == "dense_vision"
    # A dense_vision stage runs on the main process alone, whatever the launch.
    launch = Launch() if dense else launch
    accum = st.grad_accum(launch.processes)
    micro = _micro_per_epoch(st, est)
    per_step = st.global_batch // st.per_device_batch  # micro-batches per optimizer step, all processes
    steps = st.max_steps or max(1, math.ceil(micro * st.epochs / per_step))
    note = (
        f"max_steps {st.max_steps}" if st.max_steps else f"{st.epochs:g} epoch(s) of {micro:,} micro-batches"
    )
    if st.time_budget_s:
        note += f", or fewer: time budget {st.time_budget_s:g} s"
    tokens_epoch = est.kept * est.mean_tokens
    images_epoch = est.samples if dense else est.kept * est.image_frac
    load = StepLoad(
        tokens_epoch / micro * per_step,
        images_epoch / micro * per_step,
        est.mean_tokens,
        info["vision_tokens"],
        info["image_features"],
    )
    report = _trainable(info["config"], st)
    modes = st.train.model_dump()
    ckpt = {p: st.gradient_checkpointing and on for p, on in checkpointed_parts(modes).items()}
    lora = {p: report[p]["lora"] for p in ("vision", "llm")}
    flops = step_flops(shapes, modes, load, lora=lora, checkpointing=ckpt, dense=dense)
    half = _half(st, launch)
    memory = _memory(st, est, launch, shapes, info, report, half)
    fits = None if gpu_mem is None else memory["total"] <= FIT_FRACTION * gpu_mem
    return StagePlan(
        st.name,
        st.kind,
        est,
        micro,
        accum,
        steps,
        note,
        load.tokens,
        load.images,
        report,
        flops,
        memory,
        st.gradient_checkpointing,
        half,
        fits,
    )


def _memory(
    st: StageSpec,
    est: DataEstimate,
    launch: Launch,
    shapes: dict[str, Any],
    info: dict[str, Any],
    report: dict[str, Any],
    half: bool,
) -> dict[str, float]:
    """Bytes per GPU: states, gathered layers and the worst micro-batch's activations (with and
    without gradient checkpointing; `activations` is the stage's own setting)."""
    from vitune.train.cost import activation_bytes, gathered_bytes, state_bytes
    from vitune.train.trainable import checkpointed_parts

    modes = st.train.model_dump()
    dense = st.kind == "dense_vision"
    states = state_bytes(
        report["total"],
        report["trainable"],
        launch.strategy,
        launch.processes,
        half=half,
        offload_optimizer=launch.offload_optimizer,
        offload_params=launch.offload_params,
    )
    worst = _worst_micro(st, est, info)
    act = {
        on: activation_bytes(
            shapes,
            modes,
            worst,
            half=half,
            checkpointing={p: on and c for p, c in checkpointed_parts(modes).items()},
            dense=dense,
        )
        for on in (False, True)
    }
    memory = {**states, "gathered": gathered_bytes(shapes, launch.strategy, half)}
    memory["activations"] = act[st.gradient_checkpointing]
    memory["activations_without_checkpointing"], memory["activations_with_checkpointing"] = (
        act[False],
        act[True],
    )
    memory["total"] = sum(memory[k] for k in ("weights", "gradients", "optimizer", "gathered", "activations"))
    return memory


@dataclass
class Plan:
    recipe: str
    launch: Launch
    gpu_mem: int | None
    model_source: str
    params: dict[str, int]  # per part, and "total"
    image_tokens: int
    stages: list[StagePlan]
    notes: list[str] = field(default_factory=list)


def plan_recipe(
    recipe: Recipe,
    launch: Launch | None = None,
    *,
    gpu_mem: int | None = None,
    run_dir: str | Path | None = None,
    sample: int = SAMPLE,
    only_stage: str | None = None,
) -> Plan:
    """Validate the recipe's paths and model, read its data, and plan every stage (or one)."""
    from vitune.train.cost import shapes_of

    launch = launch or Launch()
    problems = missing_inputs(recipe)
    for st in recipe.stages:
        try:
            st.grad_accum(launch.processes)
        except RecipeError as e:
            problems.append(str(e))
    if problems:
        raise RecipeError(f"recipe {recipe.name!r}:\n  " + "\n  ".join(problems))
    stages = [recipe.stage(only_stage)] if only_stage else recipe.stages
    minfo = model_info(recipe.model, None if run_dir is None else Path(run_dir))
    model = meta_model(minfo.config)
    shapes = shapes_of(model)
    vc = minfo.config.vision_config
    info = {
        "config": minfo.config,
        "vision_tokens": (vc.image_size // vc.patch_size) ** 2 + 1,
        "image_features": int(minfo.config.image_seq_length),
    }
    out = []
    for st in stages:
        if st.kind == "dense_vision":
            est = estimate_records(st)
        else:
            est = estimate_data(st, minfo.tokenizer, info["image_features"], sample)
        out.append(plan_stage(st, est, launch, shapes, info, gpu_mem))
    params = {p: s.params for p, s in shapes.items()}
    params["total"] = sum(p.numel() for p in model.parameters())
    return Plan(recipe.name, launch, gpu_mem, minfo.source, params, info["image_features"], out, minfo.notes)


# --------------------------------------------------------------------------------------------------
# The report


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (K, M, B, T; plain below a thousand)."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}" if float(n).is_integer() else f"{n:.2f}{unit}"


def gib(n: float) -> str:
    """Bytes in GiB, or MiB below one GiB (a tiny recipe's numbers stay readable)."""
    return f"{n / GiB:.1f} GiB" if n >= GiB or n == 0 else f"{n / 2**20:.1f} MiB"


def _data_line(sp: StagePlan) -> str:
    d = sp.data
    if d.method == "images":
        return f"{d.samples:,} images (dense patch supervision)"
    kept = f"{d.samples:,} read"
    if d.read_rejected:
        kept += f" ({d.read_rejected:,} malformed records refused)"
    if d.rejected:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(d.reasons.items()))
        kept += f", ~{d.kept:,.0f} kept ({d.rejected} of {d.measured:,} measured rejected: {reasons})"
    how = "exact" if d.exact else f"estimate from {d.measured:,} samples"
    if d.method == "characters":
        how = f"estimate from {d.measured:,} samples at {CHARS_PER_TOKEN:g} characters per token: no tokenizer found locally"
    line = f"{kept}; {d.mean_tokens:,.0f} tokens per sample, {d.image_frac:.0%} with an image ({how})"
    if d.missing_images:
        line += f"; {d.missing_images} of the measured samples' images are missing"
    if not d.lengths:
        line += "; NOTHING TO TRAIN ON: the run would stop at this stage"
    return line


def format_stage(sp: StagePlan, plan: Plan) -> list[str]:
    p = sp.params
    parts = ", ".join(
        f"{part} {human(p[part]['trainable'])} ({p[part]['mode']})" for part in ("vision", "projector", "llm")
    )
    m = sp.memory
    ckpt = "on" if sp.checkpointing else "off"
    lines = [
        f"stage {sp.name} ({sp.kind})",
        f"  samples     {_data_line(sp)}",
        f"  tokens      {human(sp.tokens_per_step)} per optimizer step, {sp.images_per_step:,.0f} images"
        if sp.kind != "dense_vision"
        else f"  images      {sp.images_per_step:,.0f} per optimizer step",
        f"  steps       {sp.steps:,} ({sp.steps_note}; gradient accumulation {sp.grad_accum})",
        f"  trainable   {human(p['trainable'])} of {human(p['total'])}: {parts}",
        f"  FLOPs/step  {sp.flops['model']:.3g} (+{sp.flops['recompute']:.3g} recomputed with checkpointing)",
        f"  memory/GPU  weights {gib(m['weights'])}, gradients {gib(m['gradients'])}, optimizer "
        f"{gib(m['optimizer'])}"
        + (f", gathered layers {gib(m['gathered'])}" if m["gathered"] else "")
        + f", activations {gib(m['activations'])} (checkpointing {ckpt}; "
        f"{gib(m['activations_with_checkpointing'])} with, {gib(m['activations_without_checkpointing'])} without)",
    ]
    verdict = f"  total       {gib(m['total'])} per GPU ({'bf16/fp16' if sp.half else 'fp32'} activations)"
    if sp.fits is not None:
        verdict += f": {'fits' if sp.fits else 'does NOT fit'} {gib(plan.gpu_mem or 0)}"
        if not sp.fits and not sp.checkpointing:
            with_ckpt = m["total"] - m["activations"] + m["activations_with_checkpointing"]
            if with_ckpt <= FIT_FRACTION * (plan.gpu_mem or 0):
                verdict += f" (fits with gradient_checkpointing: {gib(with_ckpt)})"
    return [*lines, verdict]


def format_plan(plan: Plan) -> str:
    """The plan as plain text, one stage after another (what `vitune train --plan` prints)."""
    pr = plan.params
    lines = [
        f"plan: {plan.recipe}",
        f"launch: {plan.launch.describe()}"
        + (
            f"; GPU memory {gib(plan.gpu_mem)}, fits = at most {FIT_FRACTION:.0%} of it"
            if plan.gpu_mem
            else ""
        ),
        f"model: {plan.model_source}",
        f"parameters: {human(pr['total'])} (vision {human(pr['vision'])}, projector {human(pr['projector'])}, "
        f"llm {human(pr['llm'])}); {plan.image_tokens} image tokens per image",
        *(f"note: {n}" for n in plan.notes),
    ]
    for sp in plan.stages:
        lines += ["", *format_stage(sp, plan)]
    if plan.gpu_mem is not None:
        bad = [sp.name for sp in plan.stages if not sp.fits]
        lines += ["", f"verdict: {'every stage fits' if not bad else 'does NOT fit: ' + ', '.join(bad)}"]
    return "\n".join(lines)
