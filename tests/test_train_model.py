"""Tiny Llava from configs: processor expansion, mixed batches, loss falls, export round trip."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

from vitune.data.instance import Instance, Turn
from vitune.data.templates import generation_prompt
from vitune.eval.generate import Generator, GenItem
from vitune.train.export import load_pretrained, save_pretrained
from vitune.train.labels import ImageCache, LabelEncoder, build_dataset, collate
from vitune.train.loop import TrainConfig, train
from vitune.train.model import PRESETS, build_model, processor_for, set_trainable
from vitune.train.tokenizer import corpus_texts, image_token_id, train_tokenizer

PRESET = "micro"
N_IMG = PRESETS[PRESET].image_seq_length
COLORS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 40)}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    insts = []
    for i, (name, rgb) in enumerate(COLORS.items()):
        # Non-square on purpose: exercises pad-to-square.
        Image.new("RGB", (48, 32), rgb).save(root / f"{i}.png")
        insts.append(
            Instance(f"i{i}", f"{i}.png", "vqa", [Turn("user", "What color is it?"), Turn("assistant", name)])
        )
    insts.append(Instance("t0", None, "chat", [Turn("user", "Say hi."), Turn("assistant", "hi there")]))
    tok = train_tokenizer(corpus_texts(insts * 4), vocab_size=300)
    return root, insts, tok


def _model(tok, seed=0):
    model = build_model(PRESET, tok, seed=seed)
    return model, processor_for(model, tok)


def test_processor_expands_image_token(world):
    root, _, tok = world
    model, proc = _model(tok)
    prompt = generation_prompt("vicuna_v1", [("user", "What color is it?")], True)
    out = proc(text=prompt, images=Image.open(root / "0.png"), return_tensors="pt")
    ids = out["input_ids"][0].tolist()
    assert ids[0] == tok.bos_token_id
    assert ids.count(image_token_id(tok)) == N_IMG == model.config.image_seq_length
    assert out["pixel_values"].shape == (1, 3, 32, 32)
    assert model.config.image_token_id == image_token_id(tok)


def test_frozen_parts_are_counted():
    tok = train_tokenizer(["a b c"] * 3, vocab_size=270)
    model = build_model(PRESET, tok)
    counts = set_trainable(model, projector=True, llm=True, vision=False)
    assert not any(p.requires_grad for p in model.model.vision_tower.parameters())
    assert all(p.requires_grad for p in model.model.multi_modal_projector.parameters())
    assert counts["trainable"] == counts["total"] - counts["vision_tower.frozen"]


def test_mixed_batch_forward_and_loss_falls(world, tmp_path):
    root, insts, tok = world
    model, proc = _model(tok)
    enc = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=256)
    ds, rejected, stats = build_dataset(insts, enc, ImageCache(root, proc.image_processor))
    assert rejected == [] and stats["image"] == 3 and stats["text_only"] == 1
    coll = partial(collate, pad_id=tok.pad_token_id)
    batch = coll([ds[3], ds[0], ds[1]])  # text-only first, then two image samples
    assert batch["pixel_values"].shape[0] == 2
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if k != "labels"})
    assert out.logits.shape[:2] == batch["input_ids"].shape

    cfg = TrainConfig(lr=3e-3, max_steps=20, batch_size=4, warmup_ratio=0.0, log_every=1, seed=0)
    seen = []
    res = train(model, ds, coll, cfg, out_dir=tmp_path, progress=seen.append)
    assert res["steps"] == 20 and len(seen) == 20
    losses = [r["loss"] for r in seen]
    assert res["last_loss"] < 0.5 * res["first_loss"]
    assert sum(losses[-5:]) < sum(losses[:5])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 20
    assert {"loss", "lr", "tokens_per_s", "pad_frac"} <= set(seen[-1])


def test_export_reload_generate_same_tokens(world, tmp_path):
    root, insts, tok = world
    model, proc = _model(tok, seed=1)
    enc = LabelEncoder(tok, N_IMG, "vicuna_v1", max_length=256)
    ds, _, _ = build_dataset(insts, enc, ImageCache(root, proc.image_processor))
    cfg = TrainConfig(lr=3e-3, max_steps=5, batch_size=4, log_every=5)
    train(model, ds, partial(collate, pad_id=tok.pad_token_id), cfg)

    out_dir = save_pretrained(model, proc, tmp_path / "export", extra={"note": "test"})
    # Plain transformers, no vitune code involved in loading.
    model2 = LlavaForConditionalGeneration.from_pretrained(out_dir)
    proc2 = AutoProcessor.from_pretrained(out_dir)
    model2.eval()
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is it?"}]}]
    prompt = proc2.apply_chat_template(msgs, add_generation_prompt=True)
    assert prompt == generation_prompt("vicuna_v1", [("user", "What color is it?")], True)
    img = Image.open(root / "1.png").convert("RGB")
    gen = {"max_new_tokens": 6, "do_sample": False}
    a = model.generate(**proc(text=prompt, images=img, return_tensors="pt"), **gen)
    b = model2.generate(**proc2(text=prompt, images=img, return_tensors="pt"), **gen)
    assert a.tolist() == b.tolist()
    assert a.shape[1] > proc(text=prompt, images=img, return_tensors="pt")["input_ids"].shape[1]
    # The batched helper (left padding, mixed image/text-only) agrees with the one-by-one call.
    m3, p3 = load_pretrained(out_dir)
    gen3 = Generator(m3, p3, max_new_tokens=6)
    answers = gen3.generate([GenItem("What color is it?", img), GenItem("Say hi.")])
    n_in = proc(text=prompt, images=img, return_tensors="pt")["input_ids"].shape[1]
    assert answers[0] == tok.decode(a[0, n_in:], skip_special_tokens=True).strip()
    assert len(answers) == 2
