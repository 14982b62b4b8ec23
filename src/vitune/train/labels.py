"""Instance -> (input_ids, labels, pixel_values) with exact labels, and the training collate.

Each template segment is tokenized on its own (no special tokens), the pieces are concatenated
after a BOS, and `<image>` is expanded into `image_seq_length` image-token ids. Labels are the ids of
supervised segments (assistant replies and their `</s>`) and -100 everywhere else, so they are right
by construction; LLaVA's "tokenization mismatch" (whole samples silently masked) cannot happen.

Truncation drops whole (user, assistant) pairs from the end, so it never cuts a reply or the image
tokens; a sample whose first pair does not fit is rejected with a reason for the caller's ledger.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import PreTrainedTokenizerFast

from vitune.data.images import expand2square, load_rgb, pad_color
from vitune.data.instance import IMAGE_TOKEN, Instance
from vitune.train.templates import generation_prompt, render_segments
from vitune.train.tokenizer import image_token_id

IGNORE_INDEX = -100


@dataclass(slots=True)
class Encoded:
    id: str
    input_ids: list[int]
    labels: list[int]
    image: str | None  # relative image path (pixel values are looked up by the dataset)
    pairs_kept: int
    pairs_total: int

    @property
    def truncated(self) -> bool:
        return self.pairs_kept < self.pairs_total


@dataclass(slots=True)
class Rejected:
    id: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


class LabelEncoder:
    """Encodes instances with one template and tokenizer; caches per-segment tokenizations."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerFast,
        image_seq_length: int,
        template: str = "vicuna_v1",
        max_length: int = 512,
    ) -> None:
        self.tok = tokenizer
        self.template = template
        self.image_seq_length = image_seq_length
        self.max_length = max_length
        self.image_id = image_token_id(tokenizer)
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token
        self._cache: dict[str, list[int]] = {}

    def _ids(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self.tok.encode(text, add_special_tokens=False)
            if len(self._cache) < 200_000:  # system prompts and role tags repeat in every sample
                self._cache[text] = ids
        return ids

    def _build(self, pairs: list[tuple[str, str]], has_image: bool) -> tuple[list[int], list[int]]:
        turns = [(r, t) for u, a in pairs for r, t in (("user", u), ("assistant", a))]
        ids, labels = [self.bos], [IGNORE_INDEX]
        for seg in render_segments(self.template, turns, has_image, self.eos):
            for i in self._ids(seg.text):
                if i == self.image_id:
                    # One placeholder per image feature; never supervised.
                    ids.extend([i] * self.image_seq_length)
                    labels.extend([IGNORE_INDEX] * self.image_seq_length)
                else:
                    ids.append(i)
                    labels.append(i if seg.supervised else IGNORE_INDEX)
        return ids, labels

    def encode(self, inst: Instance) -> Encoded | Rejected:
        pairs = inst.pairs()
        if not pairs:
            return Rejected(inst.id, "no assistant reply")
        has_image = inst.image is not None
        if any(IMAGE_TOKEN in t for p in pairs for t in p):
            # A stray placeholder would add image tokens with no features ("do not match" error).
            return Rejected(inst.id, f"{IMAGE_TOKEN} inside turn text")
        # Longest prefix of whole pairs that fits; the first pair must fit or the sample is rejected.
        for k in range(len(pairs), 0, -1):
            ids, labels = self._build(pairs[:k], has_image)
            if len(ids) <= self.max_length:
                break
        else:
            return Rejected(
                inst.id,
                "first turn pair longer than max_length",
                {"length": len(ids), "max_length": self.max_length},
            )
        n_img = sum(1 for i in ids if i == self.image_id)
        if n_img != (self.image_seq_length if has_image else 0):
            return Rejected(inst.id, "image placeholder count mismatch", {"count": n_img})
        if all(lab == IGNORE_INDEX for lab in labels):
            return Rejected(inst.id, "nothing supervised")
        return Encoded(inst.id, ids, labels, inst.image, k, len(pairs))


def prompt_ids_by_segments(
    tokenizer: PreTrainedTokenizerFast, template: str, turns: list[tuple[str, str]], has_image: bool
) -> list[int]:
    """BOS + per-segment tokenization of a generation prompt (the training-side view)."""
    ids = [tokenizer.bos_token_id]
    for seg in render_segments(template, turns, has_image, tokenizer.eos_token):
        ids.extend(tokenizer.encode(seg.text, add_special_tokens=False))
    return ids


def prompt_is_consistent(
    tokenizer: PreTrainedTokenizerFast, template: str, turns: list[tuple[str, str]], has_image: bool
) -> bool:
    """Does the training-side tokenization of the prompt equal `tokenizer(generation_prompt)`?

    At inference the processor tokenizes the joined prompt text in one go; if that differed from the
    segment-wise ids the model would see token sequences it was never trained on.
    """
    joined = generation_prompt(template, turns, has_image, tokenizer.eos_token)
    return prompt_ids_by_segments(tokenizer, template, turns, has_image) == tokenizer.encode(joined)


class ImageCache:
    """load_rgb -> expand2square (the processor's mean colour) -> image processor, memoised per path."""

    def __init__(self, image_root: str | os.PathLike, image_processor: Any, cache: bool = True) -> None:
        self.root = Path(image_root)
        self.proc = image_processor
        self.cache = cache
        self._store: dict[str, torch.Tensor] = {}

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        out = self.proc(images=expand2square(img, pad_color(self.proc)), return_tensors="pt")
        return out["pixel_values"][0]

    def __call__(self, rel: str) -> torch.Tensor:
        t = self._store.get(rel)
        if t is None:
            t = self.preprocess(load_rgb(self.root / rel))
            if self.cache:
                self._store[rel] = t
        return t


class TrainDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[Encoded], images: ImageCache | None) -> None:
        self.items = items
        self.images = images

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        e = self.items[i]
        pv = None
        if e.image is not None:
            assert self.images is not None, "image sample without an image root"
            pv = self.images(e.image)
        return {"input_ids": e.input_ids, "labels": e.labels, "pixel_values": pv}


def build_dataset(
    instances: Sequence[Instance],
    encoder: LabelEncoder,
    images: ImageCache | None,
) -> tuple[TrainDataset, list[Rejected], dict[str, int]]:
    """Encode every instance and check its image up front, so bad samples are rejected with a
    reason before training starts rather than crashing a step minutes in."""
    kept: list[Encoded] = []
    rejected: list[Rejected] = []
    stats = {"seen": 0, "kept": 0, "rejected": 0, "truncated": 0, "image": 0, "text_only": 0}
    for inst in instances:
        stats["seen"] += 1
        r = encoder.encode(inst)
        if isinstance(r, Encoded) and r.image is not None:
            if images is None:
                r = Rejected(inst.id, "image sample but no image root")
            else:
                try:
                    images(r.image)
                except (ValueError, OSError) as e:
                    r = Rejected(inst.id, "unreadable image", {"image": r.image, "error": str(e)})
        if isinstance(r, Rejected):
            rejected.append(r)
            continue
        kept.append(r)
        stats["truncated"] += r.truncated
        stats["image" if r.image is not None else "text_only"] += 1
    stats["kept"], stats["rejected"] = len(kept), len(rejected)
    return TrainDataset(kept, images), rejected, stats


def collate(batch: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad ids (pad id, attention 0) and labels (-100); stack pixel values of image samples only.

    transformers' Llava scatters image features into the placeholder positions in batch order, so
    `pixel_values` holds one row per image sample, in the order those samples appear.
    """
    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for r, b in enumerate(batch):
        k = len(b["input_ids"])
        ids[r, :k] = torch.tensor(b["input_ids"])
        labels[r, :k] = torch.tensor(b["labels"])
        mask[r, :k] = 1
    pvs = [b["pixel_values"] for b in batch if b["pixel_values"] is not None]
    return {
        "input_ids": ids,
        "labels": labels,
        "attention_mask": mask,
        "pixel_values": torch.stack(pvs) if pvs else None,
    }
