"""Instance -> (input_ids, labels, pixel_values) with exact labels, and the training collate.

The template renders a conversation as labelled segments (`templates.py`); their joined text is
tokenized *whole*, exactly as the processor tokenizes a rendered chat at inference (special tokens
included: BOS for Llama-family tokenizers, nothing for Qwen2, whose tokenizer has no BOS). Each
token is labelled by the segment its characters come from (the tokenizer's offsets): assistant
replies and their turn terminator (`</s>` for vicuna_v1, `<|im_end|>` for chatml) are supervised,
everything else is -100. `<image>` is then expanded into `image_seq_length` image-token ids.

Why whole-text tokenization rather than tokenizing each segment and concatenating: SentencePiece
(Llama, Vicuna) tokenizers prepend `▁` to every piece of text they are given, so a segment tokenized
on its own starts with a token the joined text does not have (" red" alone gives `▁ ▁red`, in
context `▁red`; "USER:" after `</s>` gives `▁USER:` alone and, with a non-legacy tokenizer, `USER:`
in context). Training on those ids would teach sequences that inference never produces. With
offsets the ids are inference's ids by construction, and the labels are still exact: no
re-tokenization and per-round length arithmetic, so LLaVA's "tokenization mismatch" (whole samples
silently masked) cannot happen. A token whose characters span two segments cannot be labelled
exactly; that sample is rejected with a reason (the templates put boundaries before spaces and at
special tokens, where the usual tokenizers never merge, so this is a safeguard).

Where training and inference can still differ: inference tokenizes the prompt alone, training the
prompt followed by the reply. They agree when the prompt's ids are a prefix of the conversation's
ids (`prompt_is_consistent` checks that, and `compose` records it per tokenizer); a tokenizer whose
pre-tokenizer joins the prompt's last characters with the reply's first would break it (e.g. a reply
starting with a newline after chatml's `assistant\n`, which Qwen2's regex merges into one `\n\n`
token; that token spans two segments and the sample is rejected). Tokens a post-processor appends at
the end (an eos added by `add_eos_token`) are dropped: replies end with their own terminator.

Truncation drops whole (user, assistant) pairs from the end, so it never cuts a reply or the image
tokens; a sample whose first pair does not fit is rejected with a reason for the caller's ledger.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedTokenizerFast

from vitune.data.images import ImageLimits, check_image, expand2square, open_image, pad_color
from vitune.data.instance import IMAGE_TOKEN, Instance
from vitune.data.templates import Segment, generation_prompt, render_segments, turn_terminator
from vitune.sources.paths import UnsafePathError, resolve_image
from vitune.train.tokenizer import image_token_id

log = logging.getLogger(__name__)

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
class Compact:
    """An encoded sample with each image placeholder kept once (int32; `length` counts it expanded)."""

    id: str
    ids: np.ndarray
    labels: np.ndarray
    length: int
    image: str | None
    pairs_kept: int
    pairs_total: int


@dataclass(slots=True)
class Rejected:
    id: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Tokens:
    """One whole-text tokenization: unexpanded ids, each token's segment (-1: a special token the
    tokenizer adds in front, e.g. BOS) and the character offset where each token ends."""

    ids: np.ndarray
    seg: np.ndarray
    end: np.ndarray


class _Straddle(ValueError):
    def __init__(self, token: str, text: str) -> None:
        super().__init__(f"token {token!r} spans two label segments in {text!r}")
        self.detail = {"token": token, "context": text}


def _is_text(seq: list[int | None]) -> np.ndarray:
    """Mask of the tokens that come from the text (sequence id not None): one sequence, so the
    post-processor's tokens are a run at each end; counted in C, not per token in Python."""
    n, none = len(seq), seq.count(None)
    mask = np.ones(n, dtype=bool)
    if none:
        lead = next((i for i, s in enumerate(seq) if s is not None), n)
        trail = next((i for i, s in enumerate(reversed(seq)) if s is not None), 0)
        if lead + trail != none:  # a special token inside the text: check every token
            return np.fromiter((s is not None for s in seq), bool, n)
        mask[:lead] = False
        mask[n - trail :] = False
    return mask


_WRAPPER_METHODS = ("__call__", "_encode_plus", "_batch_encode_plus", "_convert_encoding", "encode")


def _bypassable(enc: LabelEncoder, template: str) -> Any:
    """The backend (Rust) tokenizer when calling it directly gives what the wrapper gives, else None.

    Bypassed only when no class between the tokenizer's own and `PreTrainedTokenizerFast` overrides
    how text is encoded, and a probe conversation (image, special tokens, non-ASCII) encodes to the
    same ids, offsets and special-token positions both ways.
    """
    tok, bt = enc.tok, getattr(enc.tok, "backend_tokenizer", None)
    if bt is None:
        return None
    for cls in type(tok).__mro__:
        if cls is PreTrainedTokenizerFast:
            break
        if any(m in cls.__dict__ for m in _WRAPPER_METHODS):
            return None
    turns = [("user", f"{IMAGE_TOKEN}\nWhat is  this? Über 12,5 ¿"), ("assistant", "A red star.\n")]
    text = "".join(s.text for s in render_segments(template, turns, True, enc.eos))
    wrapped = enc._encode_text(text)
    enc._backend = bt
    try:
        direct = enc._encode_text(text)
    finally:
        enc._backend = None
    same = all(a.shape == b.shape and (a == b).all() for a, b in zip(wrapped, direct, strict=True))
    return bt if same else None


def expand_image(ids: np.ndarray, labels: np.ndarray, image_id: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids/labels with each image placeholder repeated `n` times (one per image feature; the
    placeholder's label is already -100, so the copies are never supervised)."""
    reps = np.where(ids == image_id, n, 1)
    return np.repeat(ids, reps), np.repeat(labels, reps)


def _turns(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(r, t) for u, a in pairs for r, t in (("user", u), ("assistant", a))]


class LabelEncoder:
    """Encodes instances with one template and tokenizer (a fast one: labels come from offsets)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerFast,
        image_seq_length: int,
        template: str = "vicuna_v1",
        max_length: int = 512,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("LabelEncoder needs a fast (Rust) tokenizer: labels are assigned by offsets")
        self.tok = tokenizer
        self._backend = None
        self.template = template
        self.image_seq_length = image_seq_length
        self.max_length = max_length
        self.image_id = image_token_id(tokenizer)
        self.eos = tokenizer.eos_token
        self._backend = _bypassable(self, template)
        # Fails early for vicuna_v1 without an eos (a reply would end with the text "None").
        end = turn_terminator(template, self.eos)
        if end is not None and len(tokenizer.encode(end, add_special_tokens=False)) != 1:
            log.warning(
                "%s ends replies with %r, which this tokenizer splits into several tokens; "
                "generation cannot stop on it as one token",
                template,
                end,
            )

    def _tokenize(self, segs: list[Segment]) -> _Tokens:
        # Vectorised over tokens (numpy): this runs once per sample of the data set, and a
        # per-token Python loop was most of the preparation time at LLaVA's lengths.
        text = "".join(s.text for s in segs)
        starts = np.cumsum([0] + [len(s.text) for s in segs[:-1]])
        ids, offsets, is_text = self._encode_text(text)
        # Special tokens the post-processor adds in front (BOS) stay, with segment -1; those after
        # the text (an eos from add_eos_token) go: replies end with their own terminator.
        first = int(np.argmax(is_text)) if is_text.any() else len(ids)
        keep = is_text | (np.arange(len(ids)) < first)
        a, b = offsets[:, 0], offsets[:, 1]
        # The last segment starting at or before each token's first character (empty segments hold
        # no characters); a token whose last character lies in a later segment straddles two.
        seg = np.searchsorted(starts, a, side="right") - 1
        last = np.searchsorted(starts, b - 1, side="right") - 1
        straddle = is_text & (b > a) & (last != seg)
        if straddle.any():
            k = int(np.argmax(straddle))
            tok = self.tok.convert_ids_to_tokens(int(ids[k]))
            raise _Straddle(tok, text[max(0, int(a[k]) - 20) : int(b[k]) + 20])
        return _Tokens(ids[keep], np.where(is_text, seg, -1)[keep], np.where(is_text, b, 0)[keep])

    def _encode_text(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, (start, end) character offsets, is-text mask) of one whole-text tokenization.

        The Rust tokenizer is called directly when the wrapper would only forward to it (no
        truncation or padding state set on the backend): the wrapper's Python costs a third of the
        tokenization time, once per sample of the data set. Tests check both paths agree.
        """
        bt = self._backend
        if bt is not None and bt.truncation is None and bt.padding is None:
            e = bt.encode(text, add_special_tokens=True)
            seq = e.sequence_ids
            n = len(seq)
            offsets = np.fromiter(chain.from_iterable(e.offsets), np.int64, 2 * n).reshape(n, 2)
            is_text = _is_text(seq)
            return np.asarray(e.ids, dtype=np.int64), offsets, is_text
        enc = self.tok(text, add_special_tokens=True, return_offsets_mapping=True)
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        is_text = np.asarray([sid is not None for sid in enc.sequence_ids()], dtype=bool)
        return ids, offsets, is_text

    def _labels(self, toks: _Tokens, segs: list[Segment]) -> np.ndarray:
        """Each token's label: its id in a supervised segment, else -100 (image placeholders too)."""
        supervised = np.asarray([s.supervised for s in segs] + [False], dtype=bool)  # [-1]: seg -1
        return np.where(supervised[toks.seg] & (toks.ids != self.image_id), toks.ids, IGNORE_INDEX)

    def _expand(self, toks: _Tokens, segs: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
        return expand_image(toks.ids, self._labels(toks, segs), self.image_id, self.image_seq_length)

    def _length(self, toks: _Tokens, cut: int | None = None) -> int:
        """Expanded length of the tokens ending at or before character `cut` (None: all)."""
        per = np.where(toks.ids == self.image_id, self.image_seq_length, 1)
        return int(per.sum() if cut is None else per[toks.end <= cut].sum())

    def encode_turns(self, turns: list[tuple[str, str]], has_image: bool) -> tuple[list[int], list[int]]:
        """(input_ids, labels) of whole turns, no truncation; raises ValueError for a token that
        spans two label segments."""
        segs = render_segments(self.template, turns, has_image, self.eos)
        ids, labels = self._expand(self._tokenize(segs), segs)
        return ids.tolist(), labels.tolist()

    def encode(self, inst: Instance) -> Encoded | Rejected:
        r = self.encode_compact(inst)
        if isinstance(r, Rejected):
            return r
        ids, labels = expand_image(r.ids, r.labels, self.image_id, self.image_seq_length)
        return Encoded(r.id, ids.tolist(), labels.tolist(), r.image, r.pairs_kept, r.pairs_total)

    def encode_compact(self, inst: Instance) -> Compact | Rejected:
        """`encode` with the image placeholder kept once (what `prepare` stores; no expansion)."""
        pairs = inst.pairs()
        if not pairs:
            return Rejected(inst.id, "no assistant reply")
        has_image = inst.image is not None
        if any(IMAGE_TOKEN in t for p in pairs for t in p):
            # A stray placeholder would add image tokens with no features ("do not match" error).
            return Rejected(inst.id, f"{IMAGE_TOKEN} inside turn text")
        try:
            k, segs, toks = self._fit(pairs, has_image)
        except _Straddle as e:
            return Rejected(inst.id, "token spans a label boundary", e.detail)
        labels = self._labels(toks, segs)
        n_img = int((toks.ids == self.image_id).sum()) * self.image_seq_length
        length = self._length(toks)
        if k == 0:
            return Rejected(
                inst.id,
                "first turn pair longer than max_length",
                {"length": length, "max_length": self.max_length},
            )
        if n_img != (self.image_seq_length if has_image else 0):
            return Rejected(inst.id, "image placeholder count mismatch", {"count": n_img})
        if (labels == IGNORE_INDEX).all():
            return Rejected(inst.id, "nothing supervised")
        ids32, labels32 = toks.ids.astype(np.int32), labels.astype(np.int32)
        return Compact(inst.id, ids32, labels32, length, inst.image, k, len(pairs))

    def _fit(self, pairs: list[tuple[str, str]], has_image: bool) -> tuple[int, list[Segment], _Tokens]:
        """The longest prefix of whole pairs that fits max_length: (pairs kept, its segments, its
        tokens). 0 pairs kept means not even the first fits; the first pair's encoding comes back."""
        segs = render_segments(self.template, _turns(pairs), has_image, self.eos)
        toks = self._tokenize(segs)
        if self._length(toks) <= self.max_length:
            return len(pairs), segs, toks
        # Guess the largest fitting prefix from the full tokenization (each prefix's text is a prefix
        # of the full text), then tokenize that prefix on its own: its ids are exactly what a sample
        # with only those pairs gets.
        k = len(pairs) - 1
        while k > 1:
            text = "".join(
                s.text for s in render_segments(self.template, _turns(pairs[:k]), has_image, self.eos)
            )
            if self._length(toks, len(text)) <= self.max_length:
                break
            k -= 1
        while k >= 1:
            segs = render_segments(self.template, _turns(pairs[:k]), has_image, self.eos)
            toks = self._tokenize(segs)
            if self._length(toks) <= self.max_length:
                return k, segs, toks
            k -= 1
        return 0, segs, toks


def prompt_is_consistent(
    tokenizer: PreTrainedTokenizerFast,
    template: str,
    turns: list[tuple[str, str]],
    has_image: bool,
    reply: str = "It is red.",
) -> bool:
    """Does inference see the ids training saw?

    At inference the processor tokenizes `generation_prompt(turns)` on its own; training tokenizes
    the whole conversation including the reply. They agree when the prompt's ids (special tokens
    included) are exactly the conversation's ids before the final reply's first supervised token.
    """
    eos = tokenizer.eos_token
    prompt = tokenizer.encode(generation_prompt(template, turns, has_image, eos))
    try:
        # One image id per <image> (no expansion), as in the tokenized prompt text.
        ids, labels = LabelEncoder(tokenizer, 1, template).encode_turns(
            [*turns, ("assistant", reply)], has_image
        )
    except ValueError:
        return False
    n = len(prompt)
    # The final reply's supervised run must start right where the prompt ends.
    return (
        ids[:n] == prompt and n < len(labels) and labels[n] != IGNORE_INDEX and labels[n - 1] == IGNORE_INDEX
    )


class ImageCache:
    """Image path -> pixel values: resolve inside the root, the one image check + decode, pad to
    square with the processor's mean colour, image processor; optionally memoised in a bounded LRU.

    `cache_mb` = 0 (the default) keeps nothing: memory stays flat in the number of distinct images,
    which real data sets need. The tiny CPU recipes revisit a few thousand small images many times
    and turn the cache on in their YAML (`pixel_cache_mb`). With DataLoader workers each worker has
    its own cache (the bound holds per process).
    """

    def __init__(
        self,
        image_root: str | os.PathLike,
        image_processor: Any,
        cache_mb: float = 0.0,
        limits: ImageLimits | None = None,
    ) -> None:
        self.root = Path(image_root)
        self.proc = image_processor
        self.limits = limits or ImageLimits()
        self.max_bytes = int(cache_mb * 2**20)
        self.bytes = 0
        self._store: OrderedDict[str, torch.Tensor] = OrderedDict()

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        out = self.proc(images=expand2square(img, pad_color(self.proc)), return_tensors="pt")
        return out["pixel_values"][0]

    def path(self, rel: str) -> Path:
        """The image file of `rel`, refused (UnsafePathError, a ValueError) outside the root."""
        return resolve_image(self.root, rel)

    def check(self, rel: str) -> tuple[str, str] | None:
        """(ledger reason, detail) when image `rel` cannot be used, or None. Decodes the image within
        the pixel limit (header checked first), so a sample that passes never fails in a step."""
        try:
            path = self.path(rel)
        except UnsafePathError as e:
            return "unsafe image path", str(e)
        why = check_image(path, self.limits)
        return None if why is None else ("unreadable image", why)

    def __call__(self, rel: str) -> torch.Tensor:
        t = self._store.get(rel)
        if t is not None:
            self._store.move_to_end(rel)
            return t
        t = self.preprocess(open_image(self.path(rel), self.limits))
        size = t.numel() * t.element_size()
        if size <= self.max_bytes:
            self._store[rel] = t
            self.bytes += size
            while self.bytes > self.max_bytes:  # least recently used first
                _, old = self._store.popitem(last=False)
                self.bytes -= old.numel() * old.element_size()
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
    reason before training starts rather than crashing a step minutes in. In memory, for tests and
    small tools; stages prepare their data once on disk with `train/prepare.py`."""
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
                why = images.check(r.image)
                if why is not None:
                    r = Rejected(inst.id, why[0], {"image": r.image, "error": why[1]})
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
