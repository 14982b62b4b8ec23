"""Per-part freezing, LoRA (apply, train, merge, export) and gradient checkpointing on a micro LLaVA."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from vitune.train.export import save_pretrained
from vitune.train.lora import LoraSettings, apply_lora, merge_lora
from vitune.train.model import build_model, processor_for, set_trainable
from vitune.train.tokenizer import image_token_id, train_tokenizer
from vitune.train.trainable import (
    disable_gradient_checkpointing,
    enable_gradient_checkpointing,
    lora_parts,
    set_trainable_parts,
    trainable_by_part,
    unwrap,
)

LLM_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["what colour is the red square? it is red."] * 4, vocab_size=280)


def _model(tok, seed=0) -> LlavaForConditionalGeneration:
    return build_model("micro", tok, seed=seed)


def _batch(tok, n_img=16):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, len(tok), (2, 30), generator=g)
    ids[:, 0] = tok.bos_token_id
    ids[:, 2 : 2 + n_img] = image_token_id(tok)
    pixels = torch.randn(2, 3, 32, 32, generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pixels}


def _loss(model, batch):
    logits = model(**batch).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), batch["input_ids"][:, 1:].flatten()
    )


def test_modes_set_requires_grad_and_count(tok):
    model = _model(tok)
    model, r = set_trainable_parts(model, {"vision": "frozen", "projector": "full", "llm": "full"})
    m = model.model
    assert not any(p.requires_grad for p in m.vision_tower.parameters())
    assert all(
        p.requires_grad for p in [*m.multi_modal_projector.parameters(), *m.language_model.parameters()]
    )
    assert model.lm_head.weight.requires_grad
    total = sum(p.numel() for p in model.parameters())
    assert r["total"] == total and r["trainable"] == total - r["vision"]["total"]
    assert r["vision"] == {
        "mode": "frozen",
        "trainable": 0,
        "total": sum(p.numel() for p in m.vision_tower.parameters()),
        "lora": 0,
    }
    by_part = trainable_by_part(model)
    assert not by_part["vision"] and sum(p.numel() for p in by_part["projector"]) == r["projector"]["total"]

    # The boolean form used by train_tiny keeps its keys.
    counts = set_trainable(model, projector=True, llm=False, vision=True)
    assert counts["language_model.frozen"] > 0 and counts["vision_tower.trainable"] == r["vision"]["total"]
    assert counts["trainable"] == r["vision"]["total"] + r["projector"]["total"]
    assert not any(p.requires_grad for p in m.language_model.parameters())

    with pytest.raises(ValueError, match="unknown mode"):
        set_trainable_parts(model, {"llm": "half"})
    with pytest.raises(ValueError, match="unknown model parts"):
        set_trainable_parts(model, {"decoder": "full"})
    with pytest.raises(ValueError, match="projector"):
        set_trainable_parts(model, {"projector": "lora"})


def test_lora_targets_stay_in_their_part(tok):
    model, r = set_trainable_parts(
        _model(tok), {"vision": "frozen", "projector": "full", "llm": "lora"}, LoraSettings(r=4, alpha=8)
    )
    names = [n for n, _ in unwrap(model).named_parameters() if ".lora_" in n]
    assert names and all(n.startswith("model.language_model.layers.") for n in names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in names} == set(LLM_TARGETS)
    trainable = {n for n, p in unwrap(model).named_parameters() if p.requires_grad}
    assert trainable == set(names) | {n for n in trainable if n.startswith("model.multi_modal_projector.")}
    assert any(n.startswith("model.multi_modal_projector.") for n in trainable)
    assert r["llm"]["trainable"] == r["llm"]["lora"] and r["vision"]["trainable"] == 0
    # Re-running a stage with the same modes keeps the adapters; switching a LoRA part to full is refused.
    again, _ = set_trainable_parts(model, {"projector": "frozen", "llm": "lora"})
    assert again is model and lora_parts(model) == {"llm"}
    with pytest.raises(ValueError, match="merge_lora"):
        set_trainable_parts(model, {"llm": "full"})

    # Vision LoRA, and a recipe stage object (`train` modes + `lora` with one target list).
    stage = SimpleNamespace(
        train=SimpleNamespace(vision="lora", projector="full", llm="frozen"),
        lora=SimpleNamespace(r=2, alpha=4, dropout=0.0, target_modules=["q_proj"]),
    )
    vis = apply_lora(_model(tok), stage)
    names = [n for n, p in unwrap(vis).named_parameters() if ".lora_" in n]
    assert lora_parts(vis) == {"vision"} and all(n.startswith("model.vision_tower.") for n in names)
    assert all(
        p.requires_grad
        for n, p in unwrap(vis).named_parameters()
        if n.startswith("model.multi_modal_projector")
    )
    assert not any(
        p.requires_grad for n, p in unwrap(vis).named_parameters() if n.startswith("model.language_model")
    )
    with pytest.raises(ValueError, match=r"no LoRA target module matched in \['vision'\]"):
        apply_lora(_model(tok), LoraSettings(vision_targets=["nope_proj"]), parts=["llm", "vision"])


def test_lora_train_merge_equals_peft_and_exports_plain(tok, tmp_path):
    model = _model(tok, seed=3)
    before = copy.deepcopy(model.state_dict())
    model, _ = set_trainable_parts(
        model,
        {"vision": "frozen", "projector": "full", "llm": "lora"},
        LoraSettings(r=4, alpha=8, dropout=0.0),
    )
    batch = _batch(tok)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(4):
        loss = _loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    model.eval()

    # Before merging: base weights are untouched; only adapters and the projector moved.
    base = unwrap(model).state_dict()
    for k, v in before.items():
        key = k if k in base else k.replace(".weight", ".base_layer.weight")
        if k.startswith("model.multi_modal_projector."):
            assert not torch.equal(base[key], v), k
        else:
            assert torch.equal(base[key], v), k
    assert any(".lora_B." in k and base[k].abs().sum() > 0 for k in base)

    with torch.no_grad():
        want = model(**batch).logits
    merged = merge_lora(model)
    assert type(merged) is LlavaForConditionalGeneration
    with torch.no_grad():
        got = merged(**batch).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    after = merged.state_dict()
    assert after.keys() == before.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    targets = {k for k in before if k.startswith("model.language_model.") and k.split(".")[-2] in LLM_TARGETS}
    projector = {k for k in before if k.startswith("model.multi_modal_projector.")}
    assert changed == targets | projector

    out = save_pretrained(merged, processor_for(merged, tok), tmp_path / "export")
    assert not (out / "adapter_config.json").exists()
    plain = LlavaForConditionalGeneration.from_pretrained(out)
    with torch.no_grad():
        torch.testing.assert_close(plain(**batch).logits, want, rtol=0, atol=1e-5)
    gen = plain.generate(**{k: v[:1] for k, v in batch.items()}, max_new_tokens=3, do_sample=False)
    assert gen.shape[1] == batch["input_ids"].shape[1] + 3


def test_gradient_checkpointing_same_loss_and_grads(tok):
    model, _ = set_trainable_parts(
        _model(tok, seed=4),
        {"vision": "full", "projector": "full", "llm": "lora"},
        LoraSettings(r=4, dropout=0.0),
    )
    model.train()
    batch = _batch(tok)
    calls = []
    mlp = unwrap(model).model.language_model.layers[0].mlp
    forward = mlp.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    mlp.forward = counted  # counts forward runs, including the recomputation in backward

    def loss_and_grads():
        calls.clear()
        loss = _loss(model, batch)
        loss.backward()
        # The tower's last layer gets no gradient: LLaVA reads layer -2.
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        return float(loss.detach()), grads, len(calls)

    loss0, grads0, calls0 = loss_and_grads()
    enable_gradient_checkpointing(model)
    loss1, grads1, calls1 = loss_and_grads()
    # The layer really was recomputed in the backward pass (and the tower's layers are checkpointed)...
    assert unwrap(model).model.vision_tower.encoder.layers[0].gradient_checkpointing
    assert (calls0, calls1) == (1, 2)
    # ...and nothing else changed.
    assert loss1 == pytest.approx(loss0, abs=1e-6)
    assert grads1.keys() == grads0.keys() and any(".lora_" in n for n in grads0)
    assert any("vision_tower" in n for n in grads0)
    for n, g in grads0.items():
        torch.testing.assert_close(grads1[n], g, rtol=1e-5, atol=1e-6, msg=n)
    disable_gradient_checkpointing(model)
    assert loss_and_grads()[2] == 1
