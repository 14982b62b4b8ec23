"""Run a training recipe: build the model once, then each stage in order, resumable per stage.

    out/
      recipe.json            the resolved recipe (variables filled, paths absolute)
      base/                  the starting model + processor (for a preset: fresh weights, our tokenizer)
      prepared/<key>/        each data entry encoded and image-checked once (train/prepare.py),
                             memory-mapped by every stage and process that uses the same key
      stages/<name>/         metrics.jsonl, checkpoint.pt (while running), rejected.jsonl,
                             summary.json, model/ (the stage's export), done.json (written last)
      model -> stages/<last>/model

A finished stage (its `done.json` matches the stage spec and the previous stage's result) is skipped
on a re-run; an interrupted one restarts from its last checkpoint with `resume=True`. Each stage
starts from the previous stage's export, so `--stage NAME` can re-run one stage alone.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from vitune import __version__
from vitune.data.images import CLIP_MEAN, CLIP_STD, check_image
from vitune.data.instance import Instance
from vitune.data.ledger import Ledger
from vitune.train.distributed import is_sharded
from vitune.train.export import load_pretrained, save_pretrained
from vitune.train.labels import ImageCache, LabelEncoder, collate
from vitune.train.loop import ProgressFn, TrainConfig, make_accelerator, random_plan, train
from vitune.train.prepare import PreparedDataset, PreparedPart
from vitune.train.recipe import DataSpec, Recipe, RecipeError, StageSpec
from vitune.utils.atomic import write_json
from vitune.utils.hashing import derive_seed
from vitune.utils.steps import is_done, mark_done, read_result

log = logging.getLogger(__name__)


def load_stage_data(spec: DataSpec, ledger: Ledger, seed: int) -> list[Instance]:
    """Instances of one data entry: an instance set folder or a LLaVA/Vision-Flan JSON(L) file."""
    from vitune.data.llava import read_llava_json
    from vitune.data.store import read_instances

    path = Path(spec.path)
    if not path.exists():
        raise RecipeError(f"data {path}: does not exist")
    items = read_instances(path) if path.is_dir() else read_llava_json(path, ledger)
    if spec.tasks is not None:
        keep = set(spec.tasks)
        items = [i for i in items if i.task in keep]
        if not items:
            raise RecipeError(f"data {path}: no instance of tasks {sorted(keep)}")
    if spec.limit is not None and len(items) > spec.limit:
        # Keyed on the file name, not its absolute path: moving a work folder keeps the sample.
        rng = random.Random(derive_seed(seed, "limit", path.name))
        items = [items[i] for i in sorted(rng.sample(range(len(items)), spec.limit))]
    return items


_PIXEL_CACHES: dict[tuple[str, str, float], ImageCache] = {}


def pixel_cache(image_root: str | os.PathLike, image_processor: Any, cache_mb: float = 0.0) -> ImageCache:
    """The image loader of a folder; with `cache_mb` > 0 one bounded LRU per (folder, preprocessing,
    size) for the whole process, so stages that share images (every stage of the tiny recipes)
    decode each image once. Without a cache every call gets a fresh loader that keeps nothing."""
    if cache_mb <= 0:
        return ImageCache(image_root, image_processor)
    key = (str(Path(image_root).resolve()), image_processor.to_json_string(), cache_mb)
    if key not in _PIXEL_CACHES:
        if len(_PIXEL_CACHES) >= 2:  # the bound is per cache: keep few of them
            _PIXEL_CACHES.pop(next(iter(_PIXEL_CACHES)))
        _PIXEL_CACHES[key] = ImageCache(image_root, image_processor, cache_mb)
    return _PIXEL_CACHES[key]


def recipe_data(recipe: Recipe, ledger: Ledger) -> list[tuple[DataSpec, list[Instance]]]:
    """Every data entry of every stage with its instances, read once (tokenizer + pixel statistics)."""
    return [(d, load_stage_data(d, ledger, st.seed)) for st in recipe.stages for d in st.data]


def build_base(recipe: Recipe, out: Path) -> Path:
    """Create (or reuse) `out/base`: the starting model and processor of the first stage."""
    base = out / "base"
    params = {"model": recipe.model.model_dump(), "version": __version__}
    if is_done(base, params):
        return base / "model"
    m = recipe.model
    if m.preset is not None:
        model, processor = _from_preset(recipe)
    else:
        from vitune.train import compose

        if m.checkpoint is not None:
            model, processor = compose.from_llava_checkpoint(m.checkpoint)
        else:
            model, processor = compose.from_pretrained_parts(
                m.vision_tower,
                m.llm,
                projector=m.projector,
                image_size=m.image_size,
                feature_layer=-2 if m.feature_layer is None else m.feature_layer,
                select_strategy=m.select_strategy,
                seed=m.seed,
            )
    save_pretrained(model, processor, base / "model", extra={"recipe": recipe.name, "model": m.model_dump()})
    mark_done(base, params, {"model_dir": str(base / "model")})
    return base / "model"


def _from_preset(recipe: Recipe):
    from vitune.data.images import pixel_statistics
    from vitune.train.model import build_model, get_preset, processor_for
    from vitune.train.tokenizer import corpus_texts, train_tokenizer

    m = recipe.model
    loaded = recipe_data(recipe, Ledger())
    instances = [i for _, items in loaded for i in items]
    templates = {st.template for st in recipe.stages if st.kind == "instruct"}
    texts = [t for tpl in sorted(templates) for t in corpus_texts(instances, tpl)]
    tokenizer = train_tokenizer(texts, vocab_size=m.vocab_size)
    preset = get_preset(m.preset)
    if m.feature_layer is not None or m.image_size is not None:
        from dataclasses import replace

        preset = replace(
            preset,
            feature_layer=preset.feature_layer if m.feature_layer is None else m.feature_layer,
            image_size=preset.image_size if m.image_size is None else m.image_size,
        )
    model = build_model(preset, tokenizer, seed=m.seed)
    mean, std = CLIP_MEAN, CLIP_STD
    if m.pixel_norm == "dataset":
        paths = _sample_images(recipe, loaded, m.seed)
        if paths:
            mean, std = pixel_statistics(paths)
    return model, processor_for(model, tokenizer, mean, std)


def _sample_images(
    recipe: Recipe, loaded: list[tuple[DataSpec, list[Instance]]], seed: int, n: int = 256
) -> list[Path]:
    """A seeded sample of the recipe's training images (for pixel statistics)."""
    found: set[Path] = set()
    ledger = Ledger()
    for st in recipe.stages:
        if st.records is not None:
            # The stage's own split only: held-out images must not shape the normalization.
            res = st.records.load(ledger)
            found.update(Path(res.image_root) / r.file_name for r in res.records)
    for d, items in loaded:
        if d.image_root is None:
            continue
        # A missing, unsafe or broken image is the stage's to reject (with a reason), not a reason
        # to fail here: only paths inside the root count, and only images that pass the check.
        found.update(p for i in items if i.image and (p := _inside(d.image_root, i.image)) and p.is_file())
    paths = sorted(found)
    if len(paths) > n:
        paths = sorted(random.Random(seed).sample(paths, n))
    return [p for p in paths if check_image(p) is None]


def _inside(root: str, rel: str) -> Path | None:
    """`root / rel` when it stays inside the root, else None. The path is kept as written (not
    resolved), like the dense stage's, so the seeded sample of images does not change."""
    from vitune.sources.paths import UnsafePathError, resolve_image

    try:
        resolve_image(root, rel)
    except UnsafePathError:
        return None
    return Path(root) / rel


def stage_train_config(st: StageSpec, processes: int) -> TrainConfig:
    return TrainConfig(
        lr=st.lr,
        epochs=st.epochs,
        max_steps=st.max_steps,
        time_budget_s=st.time_budget_s,
        batch_size=st.per_device_batch,
        grad_accum=st.grad_accum(processes),
        warmup_ratio=st.warmup_ratio,
        min_lr_ratio=st.min_lr_ratio,
        weight_decay=st.weight_decay,
        max_grad_norm=st.max_grad_norm,
        seed=st.seed,
        log_every=st.log_every,
        save_every=st.save_every,
        mixed_precision=st.mixed_precision,
        tensorboard=st.tensorboard,
        num_workers=st.loader_workers(),
    )


def set_modules(model: Any, st: StageSpec) -> tuple[Any, dict[str, Any]]:
    """Freeze / train / LoRA-adapt the three parts as the stage says (the model comes back
    peft-wrapped when a part is "lora"); returns the model and the logged parameter counts."""
    from vitune.train.lora import LoraSettings
    from vitune.train.trainable import checkpointed_parts, enable_gradient_checkpointing, set_trainable_parts

    lora = LoraSettings.coerce(st.lora) if st.lora is not None else None
    model, report = set_trainable_parts(model, st.train.model_dump(), lora)
    if st.gradient_checkpointing:
        # The parts that keep activations: trained ones, and a frozen LLM gradients pass through.
        enable_gradient_checkpointing(model, **checkpointed_parts(st.train.model_dump()))
    return model, report


def run_instruct_stage(
    st: StageSpec, model_dir: Path, stage_dir: Path, resume: bool, progress: ProgressFn | None
) -> dict[str, Any]:
    model, processor = load_pretrained(model_dir)
    tok = processor.tokenizer
    acc = make_accelerator(stage_train_config(st, 1), stage_dir)
    cfg = stage_train_config(st, acc.num_processes)
    uses_lora = "lora" in (st.train.llm, st.train.vision)
    model, counts = set_modules(model, st)
    encoder = LabelEncoder(tok, model.config.image_seq_length, st.template, st.max_length)
    ledger = Ledger()
    dataset, stats = prepared_stage_data(st, encoder, processor.image_processor, stage_dir, acc, ledger)
    if acc.is_main_process:
        stage_dir.mkdir(parents=True, exist_ok=True)
        ledger.write(stage_dir / "rejected.jsonl")
    align = modality_alignment(st, acc.num_processes, is_sharded(acc), dataset.has_image())
    data, plan, collate_fn, dropped = _plan_and_collate(st, dataset, tok.pad_token_id, align)
    if align > 1:
        log.log(
            logging.WARNING if dropped else logging.INFO,
            "stage %s: each micro-step's micro-batches share a modality (aligned for %d processes); "
            "%d samples per epoch dropped (a modality's last samples, too few for one per process)",
            st.name,
            align,
            dropped,
        )
    result = train(
        model, data, collate_fn, cfg, stage_dir, progress, plan=plan, resume=resume, accelerator=acc
    )
    if align > 1:
        result["modality_aligned"] = {"processes": align, "dropped_per_epoch": dropped}
    if is_sharded(acc):
        model = _gather_for_export(acc, model, model_dir, st)
    if uses_lora and acc.is_main_process:
        from vitune.train.lora import merge_lora

        model = merge_lora(model)
    if acc.is_main_process:
        match_chat_template(model, processor, st.template)
        save_pretrained(
            model, processor, stage_dir / "model", extra={"stage": st.model_dump(), "train": result}
        )
    acc.wait_for_everyone()
    return {**result, "params": counts, "data": stats, "rejected": len(ledger)}


def match_chat_template(model: Any, processor: Any, template: str) -> None:
    """Export with the chat template the stage trained on, so inference prompts as training did
    (`plain`, the alignment format, has none: the previous template stays), and make generation
    stop at that template's turn terminator."""
    from vitune.data.templates import CHAT_TEMPLATES
    from vitune.train.compose import add_stop_token

    if template in CHAT_TEMPLATES:
        processor.chat_template = processor.tokenizer.chat_template = CHAT_TEMPLATES[template]
        add_stop_token(model.generation_config, processor.tokenizer)


def _gather_for_export(acc: Any, model: Any, model_dir: Path, st: StageSpec) -> Any:
    """Under FSDP the trained weights are shards (DTensors) that only exist together: gather the
    full state (collective, every process calls this) into a plain copy of the stage's model on the
    main process, which merges LoRA and exports it like an unsharded run; None elsewhere."""
    state = acc.get_state_dict(model)  # full tensors on the main process, on CPU; {} elsewhere
    if not acc.is_main_process:
        return None
    plain, _ = load_pretrained(model_dir)
    plain, _ = set_modules(plain, st)  # the same parts (and LoRA adapters) as the trained model
    plain.load_state_dict(state)  # strict: every weight must come from the trained shards
    return plain


def modality_alignment(st: StageSpec, processes: int, sharded: bool, has_image: Sequence[bool]) -> int:
    """How many consecutive micro-batches of the stage's plan must share a modality (1: any plan).

    Under FSDP a micro-step's micro-batches (one per process) must all have images or all be
    text-only (`loop._check_same_modules`). Data of one modality needs nothing, so such a stage
    keeps the plan of an unsharded run.
    """
    if all(has_image) or not any(has_image):
        return 1
    unit = st.modality_aligned_processes or (processes if sharded else 1)
    if sharded and unit % processes:
        raise RecipeError(
            f"stage {st.name!r}: FSDP on {processes} processes with text-only samples needs the "
            f"micro-batches of each micro-step to share a modality; modality_aligned_processes must "
            f"be a multiple of {processes} (or unset), not {unit}"
        )
    return unit


def prepared_stage_data(
    st: StageSpec, encoder: LabelEncoder, image_processor: Any, stage_dir: Path, acc: Any, ledger: Ledger
) -> tuple[PreparedDataset, list[dict[str, Any]]]:
    """The stage's data entries, prepared once under `<run>/prepared/` (`train/prepare.py`): the main
    process reads, encodes and checks what is not prepared yet, the others wait and map the same
    files. Every rejection goes into `ledger`; returns the dataset and per-entry counts."""
    from accelerate.utils import broadcast_object_list

    root = stage_dir.parent.parent / "prepared"
    parts, caches, stats = [], [], []
    for d in st.data:
        images = pixel_cache(d.image_root, image_processor, st.pixel_cache_mb) if d.image_root else None
        folder = [None]
        if acc.is_main_process:
            folder = [str(_prepare_entry(d, st.seed, encoder, image_processor, images, root))]
        if acc.num_processes > 1:
            broadcast_object_list(folder)  # also the barrier: the others wait for the files
        part = PreparedPart.open(folder[0])
        for r in part.rejections():
            if r["stage"]:  # the reader's, recorded as they were
                ledger.reject(r["stage"], r["file"], r["locator"], r["reason"], **r["detail"])
            else:
                ledger.reject(f"train.{st.name}", d.path, r["locator"], r["reason"], **r["detail"])
        parts.append(part)
        caches.append(images)
        stats.append({"path": d.path, **part.stats})
    return PreparedDataset(parts, caches, encoder.image_id, encoder.image_seq_length), stats


def _prepare_entry(
    d: DataSpec, seed: int, encoder: LabelEncoder, image_processor: Any, images: Any, root: Path
) -> Path:
    from vitune.train.prepare import cache_key, prepare

    folder = root / cache_key(d.model_dump(), seed, encoder, image_processor, images)
    if (folder / "stats.json").exists():
        log.info("data %s: prepared in %s", d.path, folder)
        return folder
    reader = Ledger()
    instances = load_stage_data(d, reader, seed)
    log.info("data %s: preparing %d samples in %s", d.path, len(instances), folder)
    return prepare(instances, encoder, images, folder, reader_ledger=reader)


def _plan_and_collate(st: StageSpec, dataset: PreparedDataset, pad_id: int, align: int = 1):
    """(dataset, plan, collate, samples dropped from epoch 0) for the stage's batching: random
    (LLaVA's default), grouped by modality and length (`group_by_length`), or packed rows of several
    samples (`packing`); with `align` > 1, each variant's modality-aligned form (sampler.py)."""
    # Micro-batches per optimizer step whatever the process count (processes x accumulation), so
    # the aligned plan of N processes and of 1 process emulating them are the same.
    group = st.global_batch // st.per_device_batch
    if st.packing:
        from vitune.train.packing import PackedBatchSampler, PackedDataset, collate_packed

        aligned = {"group": group, "has_image": dataset.has_image(), "align": align} if align > 1 else {}
        sampler = PackedBatchSampler(
            dataset.lengths(), st.max_length, st.per_device_batch, seed=st.seed, **aligned
        )
        collate_rows = partial(collate_packed, pad_id=pad_id)
        return PackedDataset(dataset), sampler.batches, collate_rows, sampler.dropped_in_epoch(0)
    collate_fn = partial(collate, pad_id=pad_id)
    if st.group_by_length:
        from vitune.train.sampler import ModalityLengthGroupedBatchSampler

        grouped = ModalityLengthGroupedBatchSampler(
            dataset.lengths(),
            dataset.has_image(),
            st.per_device_batch,
            seed=st.seed,
            **({"group": group, "align": align} if align > 1 else {}),
        )
        return dataset, grouped.batches, collate_fn, grouped.dropped_per_epoch()
    if align > 1:
        from vitune.train.sampler import dropped_samples, modality_random_batches

        flags = dataset.has_image()
        plan = partial(modality_random_batches, flags, st.per_device_batch, align, st.seed)
        counts = (sum(flags), len(flags) - sum(flags))
        return dataset, plan, collate_fn, sum(dropped_samples(n, st.per_device_batch, align) for n in counts)
    return dataset, random_plan(len(dataset), st.per_device_batch, st.seed), collate_fn, 0


def run_dense_stage(
    st: StageSpec, model_dir: Path, stage_dir: Path, progress: ProgressFn | None
) -> dict[str, Any]:
    from vitune.train.dense import DenseConfig, pretrain_vision

    assert st.records is not None
    model, processor = load_pretrained(model_dir)
    ledger = Ledger()
    loaded = st.records.load(ledger)
    records = loaded.records
    pixels = pixel_cache(loaded.image_root, processor.image_processor, st.pixel_cache_mb)
    cfg = DenseConfig(
        lr=st.lr,
        batch_size=st.per_device_batch,
        max_steps=st.max_steps,
        time_budget_s=st.time_budget_s,
        epochs=st.epochs,
        warmup_ratio=st.warmup_ratio,
        min_lr_ratio=st.min_lr_ratio,
        seed=st.seed,
        log_every=st.log_every,
    )
    torch.manual_seed(st.seed)
    result = pretrain_vision(model, records, pixels, cfg, progress)
    stage_dir.mkdir(parents=True, exist_ok=True)
    ledger.write(stage_dir / "rejected.jsonl")
    save_pretrained(model, processor, stage_dir / "model", extra={"stage": st.model_dump(), "train": result})
    return {**result, "rejected": len(ledger)}


def run_recipe(
    recipe: Recipe,
    out_dir: str | os.PathLike,
    *,
    only_stage: str | None = None,
    resume: bool = True,
    progress: Any = None,
) -> dict[str, Any]:
    """Run every stage not yet done (or only `only_stage`); returns each stage's summary.

    `progress(stage_name, record)` receives the training metrics lines.
    """
    from accelerate import PartialState

    # Under `accelerate launch` every process runs this function.
    state = PartialState(cpu=not torch.cuda.is_available())
    main = state.is_main_process
    out = Path(out_dir)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "recipe.json", recipe.model_dump(), indent=2)
        build_base(recipe, out)
    state.wait_for_everyone()
    model_dir = out / "base" / "model"
    results: dict[str, Any] = {}
    previous: dict[str, Any] = {"base": read_result(out / "base")}
    stages = recipe.stages
    if only_stage is not None:
        recipe.stage(only_stage)  # a clear error for an unknown name
    for st in stages:
        stage_dir = out / "stages" / st.name
        # How data is loaded (workers, pixel cache) does not change a stage's result.
        spec = st.model_dump(exclude={"num_workers", "pixel_cache_mb"})
        params = {"stage": spec, "previous": previous, "version": __version__}
        if only_stage is not None and st.name != only_stage:
            if not is_done(stage_dir, params) and stages.index(st) < stages.index(recipe.stage(only_stage)):
                raise RecipeError(f"stage {st.name!r} must finish before {only_stage!r}")
        elif not is_done(stage_dir, params):
            if not resume and stage_dir.exists():
                (stage_dir / "checkpoint.pt").unlink(missing_ok=True)
            log.info("stage %s: starting from %s", st.name, model_dir)
            stage_progress = (lambda rec, name=st.name: progress(name, rec)) if progress else None
            if st.kind == "dense_vision":
                # A tiny tower's pretraining: one process does it, the others wait for its export.
                summary = run_dense_stage(st, model_dir, stage_dir, stage_progress) if main else {}
            else:
                summary = run_instruct_stage(st, model_dir, stage_dir, resume, stage_progress)
            if main:
                summary["model_dir"] = str(stage_dir / "model")
                write_json(stage_dir / "summary.json", json.loads(json.dumps(summary, default=str)), indent=2)
                keep = ("model_dir", "steps", "first_loss", "last_loss")
                mark_done(stage_dir, params, {k: summary.get(k) for k in keep})
                (stage_dir / "checkpoint.pt").unlink(missing_ok=True)
            state.wait_for_everyone()
        if is_done(stage_dir, params):
            previous = read_result(stage_dir)
            results[st.name] = previous
            model_dir = Path(previous["model_dir"])
        if only_stage is not None and st.name == only_stage:
            break
    if main:
        link = out / "model"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(model_dir, out))
    return {"stages": results, "model_dir": str(model_dir)}
